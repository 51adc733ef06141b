//! Provider-neutral chat types: what the agent sends to a model and what comes back.
//!
//! The shapes follow OpenAI chat completions (the lingua franca of tool calling); each client
//! translates them to its provider's wire format.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

/// One tool call the model asked for. `arguments` is the raw JSON text the model produced; it
/// may be malformed, and the agent (not the client) decides what to do about that.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// One message of the conversation as the model sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    /// Text content; `None` for an assistant turn that only calls tools.
    pub content: Option<String>,
    /// Tool calls of an assistant turn.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For `Role::Tool`: the call this message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// For `Role::Tool`: the tool's name (Anthropic does not need it, some OpenAI-compatible
    /// servers do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// For `Role::Assistant`: the provider's reasoning blocks of this turn, sent back verbatim
    /// (Anthropic `thinking` / `redacted_thinking` blocks with their signatures).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thinking_blocks: Vec<Value>,
    /// For `Role::Assistant`: the OpenAI Responses `reasoning` item of this turn (with its
    /// `encrypted_content`), sent back verbatim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_item: Option<Value>,
}

impl ChatMessage {
    pub fn system(text: impl Into<String>) -> Self {
        Self::text(Role::System, text)
    }

    pub fn user(text: impl Into<String>) -> Self {
        Self::text(Role::User, text)
    }

    pub fn assistant(text: impl Into<String>) -> Self {
        Self::text(Role::Assistant, text)
    }

    pub fn tool_result(call_id: &str, tool_name: &str, text: impl Into<String>) -> Self {
        ChatMessage {
            role: Role::Tool,
            content: Some(text.into()),
            tool_calls: Vec::new(),
            tool_call_id: Some(call_id.to_string()),
            name: Some(tool_name.to_string()),
            thinking_blocks: Vec::new(),
            reasoning_item: None,
        }
    }

    fn text(role: Role, text: impl Into<String>) -> Self {
        ChatMessage {
            role,
            content: Some(text.into()),
            tool_calls: Vec::new(),
            tool_call_id: None,
            name: None,
            thinking_blocks: Vec::new(),
            reasoning_item: None,
        }
    }
}

/// A tool the model may call: name, description and a JSON schema of its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: Value,
}

/// One completion request.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    pub tools: Vec<ToolSpec>,
    /// The conversation this call belongs to: OpenAI's `prompt_cache_key`, so every call of
    /// one conversation lands on the same cache.
    pub conversation_id: Option<String>,
}

/// Token counts of one completion.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
}

/// What the model answered.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatResponse {
    /// The provider's response id (or a generated one).
    pub id: String,
    pub content: Option<String>,
    /// Reasoning text, where the provider returns it.
    pub reasoning: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    pub usage: Usage,
    /// Cost in USD when the provider reports it (OpenRouter, LiteLLM proxies).
    pub cost: Option<f64>,
    pub finish_reason: Option<String>,
    /// Anthropic `thinking` / `redacted_thinking` blocks, verbatim (signatures included): a
    /// tool loop must send them back unchanged.
    pub thinking_blocks: Vec<Value>,
    /// The OpenAI Responses `reasoning` item, verbatim (encrypted content included).
    pub reasoning_item: Option<Value>,
}
