//! What a `RemoteConversation` asks the agent-server for: the agent (`RemoteAgentSpec`: model,
//! LLM endpoint, tools), the set-up (`RemoteOptions`) and the `POST /api/conversations` body
//! built from them, with tool class names turned into the server's registry names.

use serde_json::{json, Map, Value};

use crate::agent::condenser::CondenserConfig;

/// The tools an agent gets unless told otherwise.
pub const DEFAULT_TOOLS: [&str; 3] = ["TerminalTool", "FileEditorTool", "TaskTrackerTool"];

/// The agent the server should run.
#[derive(Debug, Clone)]
pub struct RemoteAgentSpec {
    /// As the server's LLM layer (LiteLLM for OpenHands) names it, e.g. `openai/gpt-4o`.
    pub model: String,
    pub base_url: Option<String>,
    /// Also hidden from every event.
    pub api_key: Option<String>,
    /// OpenHands tool spec names (`terminal`, or the class name `TerminalTool`).
    pub tools: Vec<String>,
    /// More `agent.llm` fields: caching, prices, reasoning (`llm::settings::to_openhands`).
    pub llm_settings: Map<String, Value>,
}

impl RemoteAgentSpec {
    pub fn new(model: impl Into<String>) -> Self {
        RemoteAgentSpec {
            model: model.into(),
            base_url: None,
            api_key: None,
            tools: DEFAULT_TOOLS.iter().map(|t| t.to_string()).collect(),
            llm_settings: Map::new(),
        }
    }

    /// The `agent` object of the create request.
    fn to_json(&self) -> Value {
        let mut llm = Value::Object(self.llm_settings.clone());
        llm["model"] = json!(self.model);
        llm["usage_id"] = json!("agent");
        if let Some(url) = &self.base_url {
            llm["base_url"] = json!(url);
        }
        if let Some(key) = &self.api_key {
            llm["api_key"] = json!(key);
        }
        let tools: Vec<Value> = self
            .tools
            .iter()
            .map(|t| json!({"name": tool_spec_name(t)}))
            .collect();
        json!({"kind": "Agent", "llm": llm, "tools": tools})
    }
}

/// The registry name OpenHands derives from a tool class name: `TerminalTool` → `terminal`,
/// `FileEditorTool` → `file_editor`. Names without capitals are kept.
pub fn tool_spec_name(name: &str) -> String {
    if !name.chars().any(|c| c.is_ascii_uppercase()) {
        return name.to_string();
    }
    let chars: Vec<char> = name.chars().collect();
    let mut snake = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|p| chars[p]);
        let next = chars.get(i + 1);
        let boundary = c.is_ascii_uppercase()
            && prev.is_some_and(|p| {
                p.is_ascii_lowercase()
                    || p.is_ascii_digit()
                    || (p.is_ascii_uppercase() && next.is_some_and(|n| n.is_ascii_lowercase()))
            });
        if boundary {
            snake.push('_');
        }
        snake.push(c.to_ascii_lowercase());
    }
    match snake.strip_suffix("_tool") {
        Some(short) if !short.is_empty() => short.to_string(),
        _ => snake,
    }
}

/// How the conversation is set up.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// Attach to this conversation when the server has it, else create it with this id
    /// (OpenHands wants a UUID).
    pub conversation_id: Option<String>,
    pub max_iterations: u32,
    pub stuck_detection: bool,
    /// Values hidden from every event.
    pub secrets: Vec<String>,
    /// Sent as `max_budget_per_run` (OpenHands ignores it; sandcrab's server enforces it).
    pub max_budget_usd: Option<f64>,
    /// Context condensation of the server's agent (`agent.condenser`); `None`: none.
    pub condenser: Option<CondenserConfig>,
    /// The repository's instructions and skills (`agent.agent_context`).
    pub agent_context: Option<Value>,
    /// Hooks the server runs where the agent runs (`hook_config`).
    pub hook_config: Option<Value>,
    /// MCP servers of the server's agent (`agent.mcp_config`, OpenHands' flat map).
    pub mcp_config: crate::mcp::McpConfig,
    /// The secrets those servers name, sent as the request's `secrets` (name → value).
    pub mcp_secrets: Vec<(String, String)>,
    /// The server agent's confirmation policy and analyser.
    pub security: crate::agent::security::SecuritySettings,
    /// How this client answers when actions wait for confirmation; `None`: `run` returns.
    pub headless: Option<crate::agent::security::Headless>,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            conversation_id: None,
            max_iterations: 100,
            stuck_detection: true,
            secrets: Vec::new(),
            max_budget_usd: None,
            condenser: None,
            agent_context: None,
            hook_config: None,
            mcp_config: crate::mcp::McpConfig::new(),
            mcp_secrets: Vec::new(),
            security: Default::default(),
            headless: None,
        }
    }
}

/// The body of `POST /api/conversations`: the agent, a `LocalWorkspace` (local to the server)
/// at `working_dir`, the limits, and the wanted id if any.
pub(super) fn create_body(
    spec: &RemoteAgentSpec,
    options: &RemoteOptions,
    working_dir: &str,
) -> Value {
    let mut agent = spec.to_json();
    if let Some(condenser) = &options.condenser {
        // OpenHands' shape: the condenser's own copy of the agent's LLM, usage id `condenser`;
        // the window travels as the LLM's `max_input_tokens`.
        agent["llm"]["max_input_tokens"] = json!(condenser.context_window);
        let mut llm = agent["llm"].clone();
        llm["usage_id"] = json!("condenser");
        agent["condenser"] = condenser.to_openhands_json(llm);
    }
    if let Some(context) = &options.agent_context {
        agent["agent_context"] = context.clone();
    }
    let mut body = json!({
        "agent": agent,
        "workspace": {"kind": "LocalWorkspace", "working_dir": working_dir},
        "max_iterations": options.max_iterations,
        "stuck_detection": options.stuck_detection,
    });
    if let Some(id) = &options.conversation_id {
        body["conversation_id"] = json!(id);
    }
    if let Some(hooks) = &options.hook_config {
        body["hook_config"] = hooks.clone();
    }
    if let Some(budget) = options.max_budget_usd {
        body["max_budget_per_run"] = json!(budget);
    }
    let security = &options.security;
    if security.policy != crate::agent::security::ConfirmationPolicy::NeverConfirm {
        body["confirmation_policy"] = json!(security.policy);
    }
    if let Some(analyzer) = &security.analyzer {
        body["security_analyzer"] = json!(analyzer);
    }
    if !options.mcp_config.is_empty() {
        body["agent"]["mcp_config"] = json!(options.mcp_config);
    }
    if !options.mcp_secrets.is_empty() {
        let secrets: Map<String, Value> = options
            .mcp_secrets
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        body["secrets"] = Value::Object(secrets);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_become_registry_names() {
        assert_eq!(tool_spec_name("TerminalTool"), "terminal");
        assert_eq!(tool_spec_name("FileEditorTool"), "file_editor");
        assert_eq!(tool_spec_name("TaskTrackerTool"), "task_tracker");
        assert_eq!(tool_spec_name("XMLHttpRequest"), "xml_http_request");
        assert_eq!(tool_spec_name("terminal"), "terminal");
    }

    #[test]
    fn create_body_names_tools_and_usage() {
        let mut spec = RemoteAgentSpec::new("openai/m");
        spec.base_url = Some("http://llm/v1".into());
        let agent = spec.to_json();
        assert_eq!(agent["llm"]["usage_id"], "agent");
        assert_eq!(agent["llm"]["base_url"], "http://llm/v1");
        assert!(agent["llm"].get("api_key").is_none());
        assert_eq!(agent["tools"][0]["name"], "terminal");
    }

    #[test]
    fn create_body_carries_the_condenser_in_openhands_shape() {
        let spec = RemoteAgentSpec::new("anthropic/claude-sonnet-4-5");
        let options = RemoteOptions {
            condenser: Some(CondenserConfig::new(60_000)),
            ..RemoteOptions::default()
        };
        let body = create_body(&spec, &options, "/workspace");
        let condenser = &body["agent"]["condenser"];
        assert_eq!(condenser["kind"], "LLMSummarizingCondenser");
        assert_eq!(condenser["max_size"], 80);
        assert_eq!(condenser["keep_first"], 4);
        assert_eq!(condenser["llm"]["usage_id"], "condenser");
        assert_eq!(condenser["llm"]["model"], "anthropic/claude-sonnet-4-5");
        assert_eq!(body["agent"]["llm"]["max_input_tokens"], 60_000);
        let none = create_body(&spec, &RemoteOptions::default(), "/w");
        assert!(none["agent"].get("condenser").is_none());
    }
}
