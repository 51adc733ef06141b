//! The agent-server's request bodies: OpenHands' `StartConversationRequest` (the fields we use,
//! the rest kept as sent) and `SendMessageRequest`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::event::text_of;

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
    /// Hooks run where the agent runs (OpenHands' `HookConfig`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_config: Option<Value>,
    /// OpenHands' `confirmation_policy` (`NeverConfirm` when absent).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub confirmation_policy: Value,
    /// OpenHands' `security_analyzer` (none when absent or null).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub security_analyzer: Value,
    /// sandcrab's extra: stop the run once its LLM calls cost this many USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_budget_per_run: Option<f64>,
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
