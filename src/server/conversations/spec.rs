//! `StartConversationRequest`: the OpenHands create body, and how it becomes our agent (model
//! client from `agent.llm`, tools from `agent.tools` by OpenHands' tool names).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::agent::condenser::{Condenser, CondenserConfig};
use crate::agent::hooks::run::HookRunner;
use crate::agent::hooks::HookConfig;
use crate::agent::prompt::system_prompt;
use crate::agent::skills::AgentContext;
use crate::agent::tools::{default_tools, Tool, ToolContext};
use crate::agent::Agent;
use crate::llm::context_window::window_for;
use crate::llm::{build_client_for_workspace, LlmConfig};

pub use crate::protocol::server::{SendMessage, StartRequest};

impl StartRequest {
    /// The working directory asked for, made absolute against the server's.
    pub fn working_dir(&self, server_dir: &Path) -> PathBuf {
        let asked = self
            .workspace
            .as_ref()
            .and_then(|w| w["working_dir"].as_str());
        asked.map_or(server_dir.to_path_buf(), |d| server_dir.join(d))
    }

    /// Secret values, whether sent as plain strings or `{kind: StaticSecret, value}`.
    pub fn secret_values(&self) -> Vec<(String, String)> {
        secret_values(&self.secrets)
    }

    /// The request's confirmation policy and security analyser.
    pub fn security(&self) -> Result<crate::agent::security::SecuritySettings, String> {
        use crate::agent::security::{ConfirmationPolicy, SecurityAnalyzer, SecuritySettings};
        Ok(SecuritySettings {
            policy: ConfirmationPolicy::from_wire(&self.confirmation_policy)?,
            analyzer: SecurityAnalyzer::from_wire(&self.security_analyzer)?,
        })
    }

    /// `agent.mcp_config` (OpenHands' flat map, read strictly).
    pub fn mcp_config(&self) -> Result<crate::mcp::McpConfig, String> {
        crate::mcp::config::from_wire(&self.agent["mcp_config"])
    }

    /// Starts the MCP servers of `agent.mcp_config` in `working_dir` (their `${NAME}`s come
    /// from this request's secrets); `Err` when a required one cannot start.
    pub async fn start_mcp(&self, working_dir: &Path) -> Result<Vec<Arc<dyn Tool>>, String> {
        let config = self.mcp_config()?;
        if config.is_empty() {
            return Ok(Vec::new());
        }
        let secrets = self.secret_values().into_iter().collect();
        let taken = ["terminal", "file_editor", "task_tracker", "finish", "think"];
        let started = crate::mcp::start(&config, working_dir, &secrets, &taken).await?;
        for warning in &started.warnings {
            tracing::warn!("{warning}");
        }
        Ok(started.tools)
    }

    /// The agent as this request describes it, acting in `working_dir`, with the tools of its
    /// MCP servers (`mcp_tools`, started by `start_mcp`).
    pub fn build_agent(
        &self,
        working_dir: &Path,
        env_remove: &[String],
        mcp_tools: Vec<Arc<dyn Tool>>,
    ) -> Result<Agent, String> {
        let llm = llm_config(&self.agent["llm"])?;
        let client =
            build_client_for_workspace(&llm, Some(working_dir)).map_err(|e| e.to_string())?;
        let mut ctx = ToolContext::new(working_dir);
        ctx.env = self.secret_values();
        ctx.env_remove = env_remove.to_vec();
        let mut tools = select_tools(&self.agent["tools"], default_tools(&ctx));
        tools.extend(mcp_tools);
        let prices = llm.prices();
        let prompt = system_prompt(&working_dir.to_string_lossy());
        let agent = Agent::new(client, tools, prompt, prices)
            .with_security(self.security()?)
            .with_context(agent_context(&self.agent)?, working_dir)
            .with_hooks(HookRunner::new(
                hook_config(self.hook_config.as_ref())?,
                working_dir.to_path_buf(),
                env_remove.to_vec(),
            ));
        let Some((config, condenser_llm)) = condenser_config(&self.agent)? else {
            return Ok(agent);
        };
        let llm = match condenser_llm {
            Some(llm) => llm_config(llm)?,
            None => llm,
        };
        let client =
            build_client_for_workspace(&llm, Some(working_dir)).map_err(|e| e.to_string())?;
        let prices = llm.prices();
        Ok(agent.with_condenser(Condenser::new(client, prices, config)))
    }

    /// The agent JSON for responses, with the API key masked as pydantic masks secrets.
    pub fn masked_agent(&self) -> Value {
        let mut agent = self.agent.clone();
        for pointer in ["/llm/api_key", "/condenser/llm/api_key"] {
            if let Some(key) = agent.pointer_mut(pointer) {
                if !key.is_null() {
                    *key = Value::String("**********".into());
                }
            }
        }
        if let Ok(config) = self.mcp_config() {
            if !config.is_empty() {
                agent["mcp_config"] = crate::mcp::config::masked(&config);
            }
        }
        agent
    }
}

/// `agent.condenser` as OpenHands sends it: `LLMSummarizingCondenser` (its class defaults for
/// fields left out: max_size 240, keep_first 2), `NoOpCondenser` or none, or a
/// `PipelineCondenser` holding one. The window is the agent LLM's `max_input_tokens`, else the
/// model's. Returns the config and the condenser's own `llm`, if it has one.
fn condenser_config(agent: &Value) -> Result<Option<(CondenserConfig, Option<&Value>)>, String> {
    let mut condenser = &agent["condenser"];
    if condenser["kind"] == "PipelineCondenser" {
        let inner = condenser["condensers"].as_array().into_iter().flatten();
        condenser = inner
            .into_iter()
            .find(|c| c["kind"] == "LLMSummarizingCondenser")
            .unwrap_or(&Value::Null);
    }
    match condenser["kind"].as_str() {
        None | Some("NoOpCondenser") => return Ok(None),
        Some("LLMSummarizingCondenser") => {}
        Some(other) => return Err(format!("agent.condenser kind '{other}' is not supported: use LLMSummarizingCondenser or NoOpCondenser")),
    }
    let model = agent["llm"]["model"].as_str().unwrap_or_default();
    let window = window_for(model, agent["llm"]["max_input_tokens"].as_u64());
    let mut config = CondenserConfig::new(window);
    let field = |name: &str| condenser[name].as_u64();
    config.max_size = field("max_size").map_or(240, |n| n as usize);
    config.keep_first = field("keep_first").map_or(2, |n| n as usize);
    config.max_tokens = field("max_tokens");
    if let Some(p) = condenser["minimum_progress"].as_f64() {
        config.minimum_progress = p;
    }
    config
        .validate()
        .map_err(|e| format!("agent.condenser: {e}"))?;
    let llm = condenser
        .get("llm")
        .filter(|l| l.is_object() && !l["model"].is_null());
    Ok(Some((config, llm)))
}

/// `agent.agent_context` (OpenHands' `AgentContext`): the skills the client loaded. Skills are
/// never read from the server's own working dir (`load_project_skills` is not honoured), so
/// what a pull request's head holds there cannot become instructions.
fn agent_context(agent: &Value) -> Result<AgentContext, String> {
    match agent.get("agent_context") {
        None | Some(Value::Null) => Ok(AgentContext::default()),
        Some(ctx) => serde_json::from_value(ctx.clone())
            .map_err(|e| format!("agent.agent_context is not an OpenHands AgentContext: {e}")),
    }
}

/// `hook_config` (OpenHands' `HookConfig`, either casing).
fn hook_config(config: Option<&Value>) -> Result<HookConfig, String> {
    match config {
        None | Some(Value::Null) => Ok(HookConfig::default()),
        Some(v) => HookConfig::parse(v).map_err(|e| format!("hook_config: {e}")),
    }
}

pub fn secret_values(secrets: &BTreeMap<String, Value>) -> Vec<(String, String)> {
    secrets
        .iter()
        .filter_map(|(name, v)| {
            let value = v.as_str().or_else(|| v["value"].as_str())?;
            Some((name.clone(), value.to_string()))
        })
        .collect()
}

/// `agent.llm` (OpenHands' `LLM`) as our client config. Bare model names follow litellm:
/// `claude-*` is Anthropic, anything else OpenAI-compatible.
fn llm_config(llm: &Value) -> Result<LlmConfig, String> {
    let model = llm["model"]
        .as_str()
        .filter(|m| !m.is_empty())
        .ok_or("agent.llm.model is required")?;
    let base_url = llm["base_url"]
        .as_str()
        .filter(|u| !u.is_empty())
        .map(String::from);
    let known = [
        "anthropic/",
        "openai/",
        "openrouter/",
        "ollama/",
        "scripted:",
    ];
    let model = if known.iter().any(|p| model.starts_with(p)) || base_url.is_some() {
        model.to_string()
    } else if model.starts_with("claude") {
        format!("anthropic/{model}")
    } else {
        format!("openai/{model}")
    };
    let mut config = LlmConfig::new(model);
    config.base_url = base_url;
    config.api_key = llm["api_key"]
        .as_str()
        .filter(|k| !k.is_empty() && *k != "**********")
        .map(String::from);
    if let Some(n) = llm["num_retries"].as_u64() {
        config.num_retries = n as u32;
    }
    if let Some(t) = llm["timeout"].as_f64() {
        config.timeout = crate::duration::seconds("agent.llm.timeout", t.max(1.0))?;
    }
    config.max_output_tokens = llm["max_output_tokens"].as_u64().map(|n| n as u32);
    config.temperature = llm["temperature"].as_f64().map(|t| t as f32);
    crate::llm::settings::apply_openhands(llm, &mut config);
    Ok(config)
}

/// The tools `agent.tools` names (OpenHands' `TerminalTool`... or our `terminal`...), plus
/// `finish` and `think`, which every agent has. Names we do not have are skipped with a warning.
fn select_tools(asked: &Value, all: Vec<Arc<dyn Tool>>) -> Vec<Arc<dyn Tool>> {
    let Some(asked) = asked.as_array().filter(|a| !a.is_empty()) else {
        return all;
    };
    let mut wanted: Vec<&str> = vec!["finish", "think"];
    for spec in asked {
        let name = spec["name"].as_str().or(spec.as_str()).unwrap_or_default();
        match our_tool_name(name) {
            Some(ours) => wanted.push(ours),
            None => tracing::warn!("agent tool '{name}' is not available in sandcrab; skipping it"),
        }
    }
    all.into_iter()
        .filter(|t| wanted.contains(&t.name()))
        .collect()
}

fn our_tool_name(name: &str) -> Option<&'static str> {
    match name {
        "TerminalTool" | "terminal" | "BashTool" | "execute_bash" => Some("terminal"),
        "FileEditorTool" | "file_editor" | "str_replace_editor" => Some("file_editor"),
        "TaskTrackerTool" | "task_tracker" => Some("task_tracker"),
        "FinishTool" | "finish" => Some("finish"),
        "ThinkTool" | "think" => Some("think"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bare_model_names_follow_litellm() {
        assert_eq!(
            llm_config(&json!({"model": "claude-x"})).unwrap().model,
            "anthropic/claude-x"
        );
        assert_eq!(
            llm_config(&json!({"model": "gpt-4o"})).unwrap().model,
            "openai/gpt-4o"
        );
        let with_url =
            llm_config(&json!({"model": "m", "base_url": "http://h/v1", "api_key": "**********"}))
                .unwrap();
        assert_eq!((with_url.model.as_str(), with_url.api_key), ("m", None));
        assert!(llm_config(&json!({})).is_err());
    }

    #[test]
    fn the_condenser_comes_from_the_agent_json() {
        let agent = json!({"llm": {"model": "claude-x", "max_input_tokens": 60000},
            "condenser": {"kind": "LLMSummarizingCondenser", "llm": {"model": "gpt-4o"},
                          "max_size": 80, "keep_first": 4}});
        let (config, llm) = condenser_config(&agent).unwrap().unwrap();
        assert_eq!((config.max_size, config.keep_first), (80, 4));
        assert_eq!(config.context_window, 60_000);
        assert_eq!(llm.unwrap()["model"], "gpt-4o");
        let defaults = json!({"llm": {"model": "claude-x"},
            "condenser": {"kind": "LLMSummarizingCondenser", "llm": {}}});
        let (config, llm) = condenser_config(&defaults).unwrap().unwrap();
        assert_eq!(
            (config.max_size, config.keep_first, config.context_window),
            (240, 2, 200_000)
        );
        assert!(llm.is_none());
        assert!(condenser_config(&json!({"llm": {}})).unwrap().is_none());
        let noop = json!({"condenser": {"kind": "NoOpCondenser"}});
        assert!(condenser_config(&noop).unwrap().is_none());
        let bad = json!({"condenser": {"kind": "LLMSummarizingCondenser", "max_size": 4}});
        assert!(condenser_config(&bad).is_err());
    }

    #[test]
    fn tools_map_from_openhands_names() {
        let ctx = ToolContext::new("/tmp");
        let picked = select_tools(
            &json!([{"name": "TerminalTool"}, {"name": "BrowserToolSet"}]),
            default_tools(&ctx),
        );
        let names: Vec<&str> = picked.iter().map(|t| t.name()).collect();
        assert_eq!(names, vec!["terminal", "finish", "think"]);
    }

    #[test]
    fn secrets_accept_strings_and_static_secrets() {
        let secrets = BTreeMap::from([
            ("A".to_string(), json!("x1")),
            (
                "B".to_string(),
                json!({"kind": "StaticSecret", "value": "y2"}),
            ),
        ]);
        assert_eq!(
            secret_values(&secrets),
            vec![("A".into(), "x1".into()), ("B".into(), "y2".into())]
        );
    }
}
