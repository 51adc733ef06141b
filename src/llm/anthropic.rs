//! Anthropic Messages API client.
//!
//! `POST {base}/v1/messages` with `x-api-key` and `anthropic-version: 2023-06-01`. The
//! OpenAI-shaped conversation is translated: system messages go to the top-level `system`
//! field; assistant tool calls become `tool_use` blocks; tool results become `tool_result`
//! blocks in a `user` turn; consecutive messages of one side (several tool results, then the
//! user's text) merge into one turn, because Anthropic requires user/assistant alternation.
//!
//! A `tool_use` block needs an object `input`, but a recorded tool call may carry arguments
//! that are not a JSON object (the model produced malformed JSON and the agent answered with an
//! error). Empty arguments are sent as `{}`; other non-object text is sent as
//! `{"raw_arguments": "<the text>"}` so the model still sees what it wrote.
//!
//! Usage follows the OpenAI meaning: `prompt_tokens` counts every input token, cached or not
//! (`input_tokens + cache_read_input_tokens + cache_creation_input_tokens`).
//!
//! Prompt caching (on unless turned off) sets OpenHands' two breakpoints: `cache_control` on
//! the first system block (the static system prompt; tools come before it in the cached
//! prefix, so they are covered) and on the last block of the last user turn (a tool result or
//! the user's text). Later system messages are volatile context and go in blocks *after* the
//! cached one. With the 1-hour TTL the marker is `{"type":"ephemeral","ttl":"1h"}`.
//!
//! Extended thinking (`thinking_budget_tokens`) asks for `thinking: {type: enabled,
//! budget_tokens}` with the interleaved-thinking beta header; the `thinking` and
//! `redacted_thinking` blocks of an answer are kept verbatim (signatures included) and sent
//! back first in their assistant turn, as Anthropic requires within a tool loop.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::retry::{http_client, send_with_retries};
use super::{
    CacheTtl, ChatMessage, ChatRequest, ChatResponse, LlmClient, LlmConfig, LlmError,
    LlmSetupError, Role, ToolCall, ToolSpec, Usage,
};
use crate::http::retry::RetryPolicy;

/// The `anthropic-version` header value.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// `max_tokens` when the config sets none (the API requires one).
pub const DEFAULT_MAX_TOKENS: u32 = 8192;

/// The `anthropic-beta` value that lets thinking happen between tool calls.
pub const INTERLEAVED_THINKING_BETA: &str = "interleaved-thinking-2025-05-14";

/// A client for one Anthropic model.
pub struct AnthropicClient {
    http: reqwest::Client,
    display_name: String,
    model: String,
    endpoint: String,
    api_key: Option<String>,
    policy: RetryPolicy,
    max_tokens: u32,
    temperature: Option<f32>,
    /// The `cache_control` marker, or `None` with caching off.
    cache_control: Option<Value>,
    thinking_budget: Option<u32>,
}

impl AnthropicClient {
    /// A client sending `model` to `{base_url}/v1/messages` (a base that already ends in `/v1`
    /// is accepted too); key, retries, timeout and sampling settings come from `config`.
    pub fn new(config: &LlmConfig, model: &str, base_url: &str) -> Result<Self, LlmSetupError> {
        let base = base_url.trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base);
        Ok(AnthropicClient {
            http: http_client(config.timeout)?,
            display_name: config.model.clone(),
            model: model.to_string(),
            endpoint: format!("{base}/v1/messages"),
            api_key: config.api_key.clone().filter(|k| !k.trim().is_empty()),
            policy: super::retry::policy(config),
            max_tokens: config.max_output_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            temperature: config.temperature,
            cache_control: config
                .prompt_caching
                .then(|| match config.prompt_cache_ttl {
                    CacheTtl::FiveMinutes => json!({"type": "ephemeral"}),
                    CacheTtl::OneHour => json!({"type": "ephemeral", "ttl": "1h"}),
                }),
            thinking_budget: config.thinking_budget_tokens.filter(|n| *n > 0),
        })
    }

    fn request_body(&self, request: &ChatRequest) -> Value {
        let mut messages = wire_messages(&request.messages);
        let mut system = system_blocks(&request.messages);
        if let Some(marker) = &self.cache_control {
            if let Some(first) = system.first_mut() {
                first["cache_control"] = marker.clone();
            }
            mark_last_user_block(&mut messages, marker);
        }
        let mut body = json!({
            "model": self.model,
            "max_tokens": self.max_tokens,
            "messages": messages,
        });
        if !system.is_empty() {
            body["system"] = Value::Array(system);
        }
        if !request.tools.is_empty() {
            body["tools"] = request.tools.iter().map(wire_tool).collect();
        }
        if let Some(budget) = self.thinking_budget {
            // max_tokens must exceed the thinking budget; temperature must be left unset.
            body["max_tokens"] = json!(self.max_tokens.max(budget + 4096));
            body["thinking"] = json!({"type": "enabled", "budget_tokens": budget});
        } else if let Some(temperature) = self.temperature {
            body["temperature"] = super::openai::wire_f32(temperature);
        }
        body
    }

    fn post(&self, body: &Value) -> reqwest::RequestBuilder {
        let mut builder = self
            .http
            .post(&self.endpoint)
            .header("anthropic-version", ANTHROPIC_VERSION)
            .json(body);
        if self.thinking_budget.is_some() {
            builder = builder.header("anthropic-beta", INTERLEAVED_THINKING_BETA);
        }
        match &self.api_key {
            Some(key) => builder.header("x-api-key", key),
            None => builder,
        }
    }
}

#[async_trait]
impl LlmClient for AnthropicClient {
    fn model_name(&self) -> &str {
        &self.display_name
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let body = self.request_body(request);
        let send = || self.post(&body);
        let text = send_with_retries(&self.policy, self.api_key.as_deref(), send).await?;
        parse_response(&text)
    }
}

/// One text block per non-empty system message, in order: the static prompt first.
fn system_blocks(messages: &[ChatMessage]) -> Vec<Value> {
    messages
        .iter()
        .filter(|m| m.role == Role::System)
        .flat_map(text_block)
        .collect()
}

/// Puts `marker` on the last block of the last user turn (the conversation's newest input).
fn mark_last_user_block(turns: &mut [Value], marker: &Value) {
    let last_user = turns.iter_mut().rev().find(|t| t["role"] == "user");
    if let Some(block) = last_user
        .and_then(|t| t["content"].as_array_mut())
        .and_then(|blocks| blocks.last_mut())
    {
        block["cache_control"] = marker.clone();
    }
}

/// The conversation as alternating `user`/`assistant` turns of content blocks.
fn wire_messages(messages: &[ChatMessage]) -> Vec<Value> {
    let mut turns: Vec<(&str, Vec<Value>)> = Vec::new();
    for message in messages {
        let (role, blocks) = match message.role {
            Role::System => continue,
            Role::User => ("user", text_block(message)),
            Role::Tool => ("user", vec![tool_result_block(message)]),
            Role::Assistant => ("assistant", assistant_blocks(message)),
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last_role, last_blocks)) if *last_role == role => last_blocks.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    turns
        .into_iter()
        .map(|(role, blocks)| json!({ "role": role, "content": blocks }))
        .collect()
}

/// A text block, or nothing for empty text (the API rejects empty text blocks).
fn text_block(message: &ChatMessage) -> Vec<Value> {
    match message.content.as_deref() {
        Some(text) if !text.is_empty() => vec![json!({ "type": "text", "text": text })],
        _ => Vec::new(),
    }
}

fn tool_result_block(message: &ChatMessage) -> Value {
    json!({
        "type": "tool_result",
        "tool_use_id": message.tool_call_id.as_deref().unwrap_or(""),
        "content": message.content.as_deref().unwrap_or(""),
    })
}

fn assistant_blocks(message: &ChatMessage) -> Vec<Value> {
    let mut blocks = message.thinking_blocks.clone();
    blocks.extend(text_block(message));
    for call in &message.tool_calls {
        blocks.push(json!({
            "type": "tool_use",
            "id": call.id,
            "name": call.name,
            "input": tool_input(&call.arguments),
        }));
    }
    blocks
}

/// The arguments as the object `tool_use.input` must be (see the module doc).
fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return Value::Object(Map::new());
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(object @ Value::Object(_)) => object,
        _ => json!({ "raw_arguments": arguments }),
    }
}

fn wire_tool(tool: &ToolSpec) -> Value {
    json!({
        "name": tool.name,
        "description": tool.description,
        "input_schema": tool.parameters,
    })
}

#[derive(Deserialize)]
struct WireResponse {
    id: Option<String>,
    content: Vec<Value>,
    stop_reason: Option<String>,
    #[serde(default)]
    usage: WireUsage,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    Thinking {
        thinking: String,
    },
    RedactedThinking {},
    #[serde(other)]
    Other,
}

#[derive(Deserialize, Default)]
struct WireUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
}

/// Reads a 200 body into a response.
fn parse_response(text: &str) -> Result<ChatResponse, LlmError> {
    let wire: WireResponse = serde_json::from_str(text).map_err(|e| {
        let start: String = text.chars().take(200).collect();
        LlmError::Decode(format!("{e} in '{start}'"))
    })?;
    let mut response = ChatResponse {
        id: wire
            .id
            .unwrap_or_else(|| format!("msg_{}", uuid::Uuid::new_v4().simple())),
        usage: usage_of(&wire.usage),
        finish_reason: wire.stop_reason,
        ..ChatResponse::default()
    };
    let (mut texts, mut thoughts) = (Vec::new(), Vec::new());
    for raw in wire.content {
        let Ok(block) = WireBlock::deserialize(&raw) else {
            continue;
        };
        match block {
            WireBlock::Text { text } => texts.push(text),
            WireBlock::Thinking { thinking } => {
                thoughts.push(thinking);
                response.thinking_blocks.push(raw);
            }
            WireBlock::RedactedThinking {} => response.thinking_blocks.push(raw),
            WireBlock::ToolUse { id, name, input } => {
                response.tool_calls.push(tool_call(id, name, input))
            }
            WireBlock::Other => {}
        }
    }
    response.content = joined(texts, "");
    response.reasoning = joined(thoughts, "\n");
    Ok(response)
}

fn tool_call(id: String, name: String, input: Value) -> ToolCall {
    let arguments = match input {
        Value::Null => "{}".to_string(),
        other => other.to_string(),
    };
    ToolCall {
        id,
        name,
        arguments,
    }
}

fn joined(parts: Vec<String>, separator: &str) -> Option<String> {
    (!parts.is_empty()).then(|| parts.join(separator))
}

fn usage_of(wire: &WireUsage) -> Usage {
    let cache_read = wire.cache_read_input_tokens.unwrap_or(0);
    let cache_write = wire.cache_creation_input_tokens.unwrap_or(0);
    Usage {
        prompt_tokens: wire.input_tokens.unwrap_or(0) + cache_read + cache_write,
        completion_tokens: wire.output_tokens.unwrap_or(0),
        cache_read_tokens: cache_read,
        cache_write_tokens: cache_write,
        reasoning_tokens: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_input_is_always_an_object() {
        assert_eq!(tool_input(r#"{"a":1}"#), json!({"a": 1}));
        assert_eq!(tool_input("  "), json!({}));
        assert_eq!(tool_input(r#"{"a":"#), json!({"raw_arguments": r#"{"a":"#}));
        assert_eq!(tool_input("[1]"), json!({"raw_arguments": "[1]"}));
    }

    #[test]
    fn volatile_system_text_follows_the_cached_block_unmarked() {
        let mut config = LlmConfig::new("anthropic/claude-sonnet-4-5");
        config.api_key = Some("k".into());
        let client = AnthropicClient::new(&config, "claude-sonnet-4-5", "http://h").unwrap();
        let request = ChatRequest {
            messages: vec![
                ChatMessage::system("static"),
                ChatMessage::system("today is Monday"),
                ChatMessage::user("task"),
            ],
            ..ChatRequest::default()
        };
        let body = client.request_body(&request);
        assert_eq!(
            body["system"],
            json!([
                {"type": "text", "text": "static", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "today is Monday"}
            ])
        );
    }

    #[test]
    fn empty_assistant_turns_are_dropped_and_users_merge() {
        let messages = vec![
            ChatMessage::user("a"),
            ChatMessage::assistant(""),
            ChatMessage::user("b"),
        ];
        let wire = wire_messages(&messages);
        assert_eq!(wire.len(), 1);
        assert_eq!(wire[0]["content"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn unknown_blocks_are_ignored_and_thinking_is_kept_verbatim() {
        let body = r#"{"id":"m","content":[{"type":"redacted_thinking","data":"x"},
            {"type":"server_tool_use","id":"s"},
            {"type":"text","text":"hi"}],"stop_reason":"end_turn",
            "usage":{"input_tokens":5,"output_tokens":2,"cache_read_input_tokens":10}}"#;
        let response = parse_response(body).unwrap();
        assert_eq!(response.content.as_deref(), Some("hi"));
        assert_eq!(response.usage.prompt_tokens, 15);
        assert_eq!(response.usage.cache_read_tokens, 10);
        assert_eq!(
            response.thinking_blocks,
            vec![json!({"type": "redacted_thinking", "data": "x"})]
        );
    }
}
