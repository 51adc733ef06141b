//! `StartConversationRequest`: the OpenHands create body, and how it becomes our agent (model
//! client from `agent.llm`, tools from `agent.tools` by OpenHands' tool names).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agent::prompt::system_prompt;
use crate::agent::tools::{default_tools, Tool, ToolContext};
use crate::agent::Agent;
use crate::conversation::event::text_of;
use crate::llm::metrics::Prices;
use crate::llm::{build_client_for_workspace, LlmConfig};

/// The fields of OpenHands' `StartConversationRequest` we use; the rest are kept as sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StartRequest {
    pub agent: Value,
    #[serde(default)]
    pub workspace: Option<Value>,
    #[serde(default)]
    pub conversation_id: Option<String>,
    #[serde(default)]
    pub initial_message: Option<SendMessage>,
    #[serde(default = "default_max_iterations")]
    pub max_iterations: u32,
    #[serde(default = "yes")]
    pub stuck_detection: bool,
    #[serde(default)]
    pub secrets: BTreeMap<String, Value>,
    #[serde(default)]
    pub tags: BTreeMap<String, Value>,
}

fn default_max_iterations() -> u32 {
    500
}

fn yes() -> bool {
    true
}

/// OpenHands' `SendMessageRequest`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendMessage {
    #[serde(default = "user_role")]
    pub role: String,
    #[serde(default)]
    pub content: Vec<Value>,
    #[serde(default)]
    pub run: bool,
}

fn user_role() -> String {
    "user".into()
}

impl SendMessage {
    pub fn text(&self) -> String {
        text_of(&self.content)
    }
}

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

    /// The agent as this request describes it, acting in `working_dir`.
    pub fn build_agent(&self, working_dir: &Path, env_remove: &[String]) -> Result<Agent, String> {
        let llm = llm_config(&self.agent["llm"])?;
        let client =
            build_client_for_workspace(&llm, Some(working_dir)).map_err(|e| e.to_string())?;
        let mut ctx = ToolContext::new(working_dir);
        ctx.env = self.secret_values();
        ctx.env_remove = env_remove.to_vec();
        let tools = select_tools(&self.agent["tools"], default_tools(&ctx));
        let prices = Prices {
            input: llm.input_cost_per_token,
            output: llm.output_cost_per_token,
        };
        let prompt = system_prompt(&working_dir.to_string_lossy());
        Ok(Agent::new(client, tools, prompt, prices))
    }

    /// The agent JSON for responses, with the API key masked as pydantic masks secrets.
    pub fn masked_agent(&self) -> Value {
        let mut agent = self.agent.clone();
        if let Some(key) = agent.pointer_mut("/llm/api_key") {
            if !key.is_null() {
                *key = Value::String("**********".into());
            }
        }
        agent
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
    config.input_cost_per_token = llm["input_cost_per_token"].as_f64();
    config.output_cost_per_token = llm["output_cost_per_token"].as_f64();
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
