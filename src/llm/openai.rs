//! OpenAI-compatible chat completions client (OpenAI, OpenRouter, Ollama, vLLM, LiteLLM...).
//!
//! Non-streaming `POST {base}/chat/completions`. The response is read leniently, because
//! "compatible" servers differ: tool-call `arguments` may come as a JSON object instead of a
//! string, a tool call may lack an id (one is generated), `content` may be a list of text
//! parts, and OpenRouter/LiteLLM report the USD cost in `usage.cost`.
//!
//! OpenAI caches prompt prefixes by itself; with prompt caching on, a request to OpenAI or
//! OpenRouter carries `prompt_cache_key` = the conversation id (so every call of a conversation
//! is routed to the same cache) and, for the models that take it, `prompt_cache_retention`
//! (OpenHands' rule: gpt-5* and gpt-4.1, not the mini ones except gpt-5.1-codex-mini).
//! `reasoning_effort` is sent when configured.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use super::retry::{http_client, send_with_retries};
use super::{
    ChatMessage, ChatRequest, ChatResponse, LlmClient, LlmConfig, LlmError, LlmSetupError, Role,
    ToolCall, ToolSpec, Usage,
};
use crate::http::retry::RetryPolicy;

/// A client for one model on one OpenAI-compatible server.
pub struct OpenAiClient {
    http: reqwest::Client,
    /// The model string as configured (for metrics).
    display_name: String,
    /// The model name sent on the wire.
    model: String,
    endpoint: String,
    api_key: Option<String>,
    policy: RetryPolicy,
    max_tokens: Option<u32>,
    temperature: Option<f32>,
    cache: PromptCache,
    reasoning_effort: Option<&'static str>,
}

/// What a request to an OpenAI endpoint (chat or Responses) says about the prompt cache.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PromptCache {
    /// Send `prompt_cache_key`.
    pub key: bool,
    /// Send `prompt_cache_retention: "24h"`.
    pub retention: bool,
}

impl PromptCache {
    pub(crate) fn of(config: &LlmConfig, model: &str) -> Self {
        let key = config.prompt_caching && super::takes_prompt_cache_key(config);
        PromptCache {
            key,
            retention: key && config.model.starts_with("openai/") && takes_cache_retention(model),
        }
    }

    /// Adds the cache fields for `request` to `body`.
    pub(crate) fn apply(&self, body: &mut Value, request: &ChatRequest) {
        if let (true, Some(id)) = (self.key, &request.conversation_id) {
            body["prompt_cache_key"] = json!(id);
        }
        if self.retention {
            body["prompt_cache_retention"] = json!("24h");
        }
    }
}

/// OpenHands' list of models that take `prompt_cache_retention`.
fn takes_cache_retention(model: &str) -> bool {
    let family = model.starts_with("gpt-5") || model.starts_with("gpt-4.1");
    family && (!model.contains("mini") || model.starts_with("gpt-5.1-codex-mini"))
}

impl OpenAiClient {
    /// A client sending `model` to `{base_url}/chat/completions`; the key, retries, timeout
    /// and sampling settings come from `config`.
    pub fn new(config: &LlmConfig, model: &str, base_url: &str) -> Result<Self, LlmSetupError> {
        Ok(OpenAiClient {
            http: http_client(config.timeout)?,
            display_name: config.model.clone(),
            model: model.to_string(),
            endpoint: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            api_key: config.api_key.clone().filter(|k| !k.trim().is_empty()),
            policy: super::retry::policy(config),
            max_tokens: config.max_output_tokens,
            temperature: config.temperature,
            cache: PromptCache::of(config, model),
            reasoning_effort: config.reasoning_effort.map(|e| e.as_str()),
        })
    }

    /// The JSON body of a chat completions request.
    fn request_body(&self, request: &ChatRequest) -> Value {
        let messages: Vec<Value> = request.messages.iter().map(wire_message).collect();
        let mut body = json!({ "model": self.model, "messages": messages });
        if !request.tools.is_empty() {
            body["tools"] = request.tools.iter().map(wire_tool).collect();
        }
        if let Some(max_tokens) = self.max_tokens {
            body["max_tokens"] = json!(max_tokens);
        }
        if let Some(temperature) = self.temperature {
            body["temperature"] = wire_f32(temperature);
        }
        if let Some(effort) = self.reasoning_effort {
            body["reasoning_effort"] = json!(effort);
        }
        self.cache.apply(&mut body, request);
        body
    }
}

/// POSTs `body` as JSON to `endpoint` with the key as a bearer token (OpenAI and compatible
/// servers, chat completions and the Responses API alike), retried by `policy`.
pub(super) async fn post_bearer(
    http: &reqwest::Client,
    endpoint: &str,
    api_key: Option<&str>,
    policy: &RetryPolicy,
    body: &Value,
) -> Result<String, LlmError> {
    let send = || {
        let builder = http.post(endpoint).json(body);
        match api_key {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        }
    };
    send_with_retries(policy, api_key, send).await
}

#[async_trait]
impl LlmClient for OpenAiClient {
    fn model_name(&self) -> &str {
        &self.display_name
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        let body = self.request_body(request);
        let key = self.api_key.as_deref();
        let text = post_bearer(&self.http, &self.endpoint, key, &self.policy, &body).await?;
        parse_response(&text)
    }
}

/// An `f32` as the JSON number it reads as (`0.7`, not `0.699999988079071`).
pub(crate) fn wire_f32(value: f32) -> Value {
    let shortest: f64 = value.to_string().parse().unwrap_or(f64::from(value));
    json!(shortest)
}

fn wire_message(message: &ChatMessage) -> Value {
    match message.role {
        Role::System => json!({ "role": "system", "content": text_of(message) }),
        Role::User => json!({ "role": "user", "content": text_of(message) }),
        Role::Assistant => wire_assistant(message),
        Role::Tool => wire_tool_result(message),
    }
}

fn text_of(message: &ChatMessage) -> &str {
    message.content.as_deref().unwrap_or("")
}

/// An assistant turn; `content` is `null` when it only calls tools.
fn wire_assistant(message: &ChatMessage) -> Value {
    if message.tool_calls.is_empty() {
        return json!({ "role": "assistant", "content": text_of(message) });
    }
    let content = message.content.as_deref().filter(|text| !text.is_empty());
    let calls: Vec<Value> = message.tool_calls.iter().map(wire_tool_call).collect();
    json!({ "role": "assistant", "content": content, "tool_calls": calls })
}

fn wire_tool_call(call: &ToolCall) -> Value {
    json!({
        "id": call.id,
        "type": "function",
        "function": { "name": call.name, "arguments": call.arguments },
    })
}

/// A tool result, in the OpenAI schema (`role`, `tool_call_id`, `content` only: strict
/// servers reject a `name` here).
fn wire_tool_result(message: &ChatMessage) -> Value {
    json!({
        "role": "tool",
        "tool_call_id": message.tool_call_id.as_deref().unwrap_or(""),
        "content": text_of(message),
    })
}

pub(crate) fn wire_tool(tool: &ToolSpec) -> Value {
    json!({
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    })
}

#[derive(Deserialize)]
struct WireResponse {
    id: Option<String>,
    #[serde(default)]
    choices: Vec<WireChoice>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: WireMessage,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    content: Option<Value>,
    reasoning_content: Option<String>,
    /// OpenRouter's name for the reasoning text.
    reasoning: Option<String>,
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Deserialize)]
struct WireToolCall {
    id: Option<String>,
    function: WireFunction,
}

#[derive(Deserialize)]
struct WireFunction {
    #[serde(default)]
    name: String,
    arguments: Option<Value>,
}

#[derive(Deserialize, Default)]
struct WireUsage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    prompt_tokens_details: Option<PromptDetails>,
    completion_tokens_details: Option<CompletionDetails>,
    cost: Option<Value>,
}

#[derive(Deserialize)]
struct PromptDetails {
    cached_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    reasoning_tokens: Option<u64>,
}

/// Reads a 200 body; no choices is a decode error.
fn parse_response(text: &str) -> Result<ChatResponse, LlmError> {
    let wire: WireResponse = serde_json::from_str(text)
        .map_err(|e| LlmError::Decode(format!("{e} in {}", preview(text))))?;
    let usage = wire.usage.unwrap_or_default();
    let Some(choice) = wire.choices.into_iter().next() else {
        return Err(LlmError::Decode(format!("no choices in {}", preview(text))));
    };
    let reasoning = reasoning_text(&choice.message);
    let calls = choice.message.tool_calls.unwrap_or_default();
    Ok(ChatResponse {
        id: wire
            .id
            .unwrap_or_else(|| format!("chatcmpl-{}", uuid::Uuid::new_v4())),
        content: choice.message.content.and_then(content_text),
        reasoning,
        tool_calls: calls.into_iter().map(tool_call).collect(),
        cost: usage.cost.as_ref().and_then(number),
        usage: usage_of(&usage),
        finish_reason: choice.finish_reason,
        ..ChatResponse::default()
    })
}

fn reasoning_text(message: &WireMessage) -> Option<String> {
    let text = message
        .reasoning_content
        .as_ref()
        .or(message.reasoning.as_ref())?;
    (!text.is_empty()).then(|| text.clone())
}

/// Message content: a string, or a list of `{type: "text", text}` parts joined.
fn content_text(content: Value) -> Option<String> {
    match content {
        Value::String(text) => Some(text),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts.iter().filter_map(|p| p["text"].as_str()).collect();
            (!texts.is_empty()).then(|| texts.join(""))
        }
        _ => None,
    }
}

fn tool_call(wire: WireToolCall) -> ToolCall {
    let arguments = match wire.function.arguments {
        Some(Value::String(text)) => text,
        None | Some(Value::Null) => "{}".to_string(),
        Some(other) => other.to_string(),
    };
    ToolCall {
        id: wire
            .id
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| format!("call_{}", uuid::Uuid::new_v4().simple())),
        name: wire.function.name,
        arguments,
    }
}

fn usage_of(wire: &WireUsage) -> Usage {
    Usage {
        prompt_tokens: wire.prompt_tokens.unwrap_or(0),
        completion_tokens: wire.completion_tokens.unwrap_or(0),
        cache_read_tokens: wire
            .prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .unwrap_or(0),
        cache_write_tokens: 0,
        reasoning_tokens: wire
            .completion_tokens_details
            .as_ref()
            .and_then(|d| d.reasoning_tokens)
            .unwrap_or(0),
    }
}

/// A cost given as a number or as a numeric string.
pub(crate) fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The start of a body, for decode errors.
pub(crate) fn preview(text: &str) -> String {
    let cut: String = text.chars().take(200).collect();
    if cut.len() < text.len() {
        format!("'{cut}…'")
    } else {
        format!("'{cut}'")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_arguments_are_serialized_and_missing_ids_generated() {
        let body = r#"{"choices":[{"message":{"content":null,"tool_calls":[
            {"function":{"name":"terminal","arguments":{"command":"ls"}}}]},
            "finish_reason":"tool_calls"}]}"#;
        let response = parse_response(body).unwrap();
        let call = &response.tool_calls[0];
        assert_eq!(call.arguments, r#"{"command":"ls"}"#);
        assert!(call.id.starts_with("call_"), "{}", call.id);
        assert!(response.id.starts_with("chatcmpl-"));
        assert_eq!(response.content, None);
    }

    #[test]
    fn content_parts_and_string_costs_are_read() {
        let body = r#"{"id":"x","choices":[{"message":{"content":[
            {"type":"text","text":"a"},{"type":"text","text":"b"}]}}],
            "usage":{"prompt_tokens":3,"completion_tokens":1,"cost":"0.25"}}"#;
        let response = parse_response(body).unwrap();
        assert_eq!(response.content.as_deref(), Some("ab"));
        assert_eq!(response.cost, Some(0.25));
        assert_eq!(response.usage.prompt_tokens, 3);
    }

    #[test]
    fn cache_retention_follows_openhands_model_list() {
        for model in ["gpt-5", "gpt-5.1", "gpt-4.1", "gpt-5.1-codex-mini"] {
            assert!(takes_cache_retention(model), "{model}");
        }
        for model in ["gpt-4o", "gpt-5-mini", "gpt-4.1-mini", "o3"] {
            assert!(!takes_cache_retention(model), "{model}");
        }
    }

    #[test]
    fn missing_choices_and_garbage_are_decode_errors() {
        assert!(matches!(
            parse_response(r#"{"choices":[]}"#),
            Err(LlmError::Decode(_))
        ));
        assert!(matches!(parse_response("<html>"), Err(LlmError::Decode(_))));
    }
}
