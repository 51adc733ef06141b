//! OpenAI Responses API client (`POST {base}/responses`), for the models that keep their
//! reasoning between calls only there (GPT-5 family, o-series, codex).
//!
//! Stateless, as Codex and OpenHands use it: `store: false` and
//! `include: ["reasoning.encrypted_content"]`, so each answer's `reasoning` item comes back
//! with its encrypted content and is sent again, verbatim, before the function calls it led to.
//! The conversation maps to input items: system messages join into `instructions`; user and
//! assistant text become `message` items; a tool call is a `function_call` item
//! (`call_id`, `name`, `arguments`) and its result a `function_call_output` item.
//! `prompt_cache_key` and `prompt_cache_retention` follow the chat client's rule, and
//! `reasoning.effort` is sent when configured.
//!
//! Usage: `input_tokens` (all input, cached included), `input_tokens_details.cached_tokens`,
//! `output_tokens`, `output_tokens_details.reasoning_tokens`.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use super::openai::{number, post_bearer, preview, PromptCache};
use super::retry::http_client;
use super::{
    ChatMessage, ChatRequest, ChatResponse, LlmClient, LlmConfig, LlmError, LlmSetupError, Role,
    ToolCall, ToolSpec, Usage,
};
use crate::http::retry::RetryPolicy;

/// A client for one model on the Responses API.
pub struct ResponsesClient {
    http: reqwest::Client,
    display_name: String,
    model: String,
    endpoint: String,
    api_key: Option<String>,
    policy: RetryPolicy,
    max_tokens: Option<u32>,
    cache: PromptCache,
    reasoning_effort: Option<&'static str>,
}

impl ResponsesClient {
    /// A client sending `model` to `{base_url}/responses`.
    pub fn new(config: &LlmConfig, model: &str, base_url: &str) -> Result<Self, LlmSetupError> {
        Ok(ResponsesClient {
            http: http_client(config.timeout)?,
            display_name: config.model.clone(),
            model: model.to_string(),
            endpoint: format!("{}/responses", base_url.trim_end_matches('/')),
            api_key: config.api_key.clone().filter(|k| !k.trim().is_empty()),
            policy: super::retry::policy(config),
            max_tokens: config.max_output_tokens,
            cache: PromptCache::of(config, model),
            reasoning_effort: config.reasoning_effort.map(|e| e.as_str()),
        })
    }

    fn request_body(&self, request: &ChatRequest) -> Value {
        let mut body = json!({
            "model": self.model,
            "input": input_items(&request.messages),
            "store": false,
            "include": ["reasoning.encrypted_content"],
        });
        let system: Vec<&str> = request
            .messages
            .iter()
            .filter(|m| m.role == Role::System)
            .filter_map(|m| m.content.as_deref())
            .filter(|t| !t.is_empty())
            .collect();
        if !system.is_empty() {
            body["instructions"] = json!(system.join("\n\n"));
        }
        if !request.tools.is_empty() {
            body["tools"] = request.tools.iter().map(wire_tool).collect();
        }
        if let Some(max) = self.max_tokens {
            body["max_output_tokens"] = json!(max);
        }
        if let Some(effort) = self.reasoning_effort {
            body["reasoning"] = json!({ "effort": effort });
        }
        self.cache.apply(&mut body, request);
        body
    }
}

#[async_trait]
impl LlmClient for ResponsesClient {
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

/// The conversation (system messages aside) as Responses input items.
fn input_items(messages: &[ChatMessage]) -> Vec<Value> {
    let mut items = Vec::with_capacity(messages.len());
    for message in messages {
        let text = message.content.as_deref().unwrap_or("");
        match message.role {
            Role::System => {}
            Role::User => items.push(json!({
                "type": "message", "role": "user",
                "content": [{"type": "input_text", "text": text}],
            })),
            Role::Assistant => {
                items.extend(message.reasoning_item.clone());
                if !text.is_empty() {
                    items.push(json!({
                        "type": "message", "role": "assistant",
                        "content": [{"type": "output_text", "text": text}],
                    }));
                }
                items.extend(message.tool_calls.iter().map(|call| {
                    json!({
                        "type": "function_call", "call_id": call.id,
                        "name": call.name, "arguments": call.arguments,
                    })
                }));
            }
            Role::Tool => items.push(json!({
                "type": "function_call_output",
                "call_id": message.tool_call_id.as_deref().unwrap_or(""),
                "output": text,
            })),
        }
    }
    items
}

/// A function tool, in the Responses (flat) shape.
fn wire_tool(tool: &ToolSpec) -> Value {
    json!({
        "type": "function",
        "name": tool.name,
        "description": tool.description,
        "parameters": tool.parameters,
    })
}

#[derive(Deserialize)]
struct WireResponse {
    id: Option<String>,
    #[serde(default)]
    output: Vec<Value>,
    status: Option<String>,
    #[serde(default)]
    usage: Option<Value>,
}

/// Reads a 200 body: `message` items give the text, `function_call` items the tool calls, the
/// `reasoning` item is kept verbatim (its summary text becomes the reasoning text).
fn parse_response(text: &str) -> Result<ChatResponse, LlmError> {
    let wire: WireResponse = serde_json::from_str(text)
        .map_err(|e| LlmError::Decode(format!("{e} in {}", preview(text))))?;
    let usage = wire.usage.unwrap_or(Value::Null);
    let mut response = ChatResponse {
        id: wire
            .id
            .unwrap_or_else(|| format!("resp_{}", uuid::Uuid::new_v4().simple())),
        usage: usage_of(&usage),
        cost: usage.get("cost").and_then(number),
        finish_reason: wire.status,
        ..ChatResponse::default()
    };
    let (mut texts, mut summaries) = (Vec::new(), Vec::new());
    for item in wire.output {
        match item["type"].as_str() {
            Some("message") => texts.extend(
                item["content"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|part| part["text"].as_str().map(String::from)),
            ),
            Some("function_call") => response.tool_calls.push(tool_call(&item)),
            Some("reasoning") => {
                summaries.extend(
                    item["summary"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|part| part["text"].as_str().map(String::from)),
                );
                response.reasoning_item = Some(item);
            }
            _ => {}
        }
    }
    response.content = (!texts.is_empty()).then(|| texts.join(""));
    response.reasoning = (!summaries.is_empty()).then(|| summaries.join("\n"));
    Ok(response)
}

fn tool_call(item: &Value) -> ToolCall {
    let arguments = match &item["arguments"] {
        Value::String(text) => text.clone(),
        Value::Null => "{}".to_string(),
        other => other.to_string(),
    };
    let id = item["call_id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .map_or_else(
            || format!("call_{}", uuid::Uuid::new_v4().simple()),
            String::from,
        );
    ToolCall {
        id,
        name: item["name"].as_str().unwrap_or_default().to_string(),
        arguments,
    }
}

fn usage_of(usage: &Value) -> Usage {
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    Usage {
        prompt_tokens: n(&usage["input_tokens"]),
        completion_tokens: n(&usage["output_tokens"]),
        cache_read_tokens: n(&usage["input_tokens_details"]["cached_tokens"]),
        cache_write_tokens: 0,
        reasoning_tokens: n(&usage["output_tokens_details"]["reasoning_tokens"]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reasoning_item_and_function_call_are_read() {
        let body = r#"{"id":"resp_1","status":"completed","output":[
            {"type":"reasoning","id":"rs_1","summary":[{"type":"summary_text","text":"plan"}],
             "encrypted_content":"gAAA"},
            {"type":"function_call","id":"fc_1","call_id":"call_1","name":"terminal",
             "arguments":"{\"command\":\"ls\"}"}],
            "usage":{"input_tokens":100,"input_tokens_details":{"cached_tokens":64},
                     "output_tokens":20,"output_tokens_details":{"reasoning_tokens":12}}}"#;
        let response = parse_response(body).unwrap();
        assert_eq!(response.tool_calls[0].id, "call_1");
        assert_eq!(response.reasoning.as_deref(), Some("plan"));
        assert_eq!(
            response.reasoning_item.as_ref().unwrap()["encrypted_content"],
            "gAAA"
        );
        assert_eq!(
            (
                response.usage.prompt_tokens,
                response.usage.cache_read_tokens
            ),
            (100, 64)
        );
        assert_eq!(response.usage.reasoning_tokens, 12);
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert!(matches!(parse_response("<html>"), Err(LlmError::Decode(_))));
    }
}
