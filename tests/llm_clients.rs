//! Integration tests of the LLM clients through the public API: the HTTP clients against small
//! scripted axum servers that record every request, the scripted model, and `build_client`.

use std::collections::VecDeque;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use sandcrab::llm::scripted::ScriptedModel;
use sandcrab::llm::{
    build_client, build_client_for_workspace, ChatMessage, ChatRequest, LlmClient, LlmConfig,
    LlmError, LlmSetupError, ToolCall, ToolSpec,
};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// A scripted HTTP server

/// One canned answer.
#[derive(Clone)]
struct Canned {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

impl Canned {
    fn json(body: Value) -> Self {
        Canned::status(200, &body.to_string())
    }

    fn status(status: u16, body: &str) -> Self {
        Canned {
            status,
            headers: Vec::new(),
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }
}

/// One request the server received.
#[derive(Clone, Debug)]
struct Recorded {
    path: String,
    headers: HeaderMap,
    body: Value,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Clone, Default)]
struct Mock {
    queue: Arc<Mutex<VecDeque<Canned>>>,
    seen: Arc<Mutex<Vec<Recorded>>>,
}

impl Mock {
    fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().clone()
    }
}

async fn answer(
    axum::extract::State(mock): axum::extract::State<Mock>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = uri.path().to_string();
    mock.seen.lock().unwrap().push(Recorded {
        path,
        headers,
        body,
    });
    let next = mock.queue.lock().unwrap().pop_front();
    let Some(canned) = next else {
        return (StatusCode::GONE, "no canned response left").into_response();
    };
    tokio::time::sleep(canned.delay).await;
    let mut response = (
        StatusCode::from_u16(canned.status).unwrap(),
        [("content-type", "application/json")],
        canned.body,
    )
        .into_response();
    for (name, value) in canned.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// Starts a server answering from `canned` in order; returns its base URL.
async fn serve(canned: Vec<Canned>) -> (String, Mock) {
    let mock = Mock::default();
    mock.queue.lock().unwrap().extend(canned);
    let app = Router::new().fallback(answer).with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), mock)
}

// ---------------------------------------------------------------------------------------------
// Helpers

const KEY: &str = "sk-test-very-secret-key";

/// A config for `model` at `base_url` with a key and tiny retry waits.
fn config(model: &str, base_url: &str) -> LlmConfig {
    let mut config = LlmConfig::new(model);
    config.base_url = Some(base_url.to_string());
    config.api_key = Some(KEY.to_string());
    config.num_retries = 2;
    config.retry_min_wait = Duration::from_millis(5);
    config.retry_max_wait = Duration::from_millis(20);
    config.timeout = Duration::from_secs(5);
    config
}

fn client(config: &LlmConfig) -> Arc<dyn LlmClient> {
    build_client(config).unwrap_or_else(|e| panic!("build_client: {e}"))
}

fn terminal_tool() -> ToolSpec {
    ToolSpec {
        name: "terminal".into(),
        description: "Run a shell command".into(),
        parameters: json!({"type": "object", "properties": {"command": {"type": "string"}}}),
    }
}

fn request(messages: Vec<ChatMessage>) -> ChatRequest {
    ChatRequest {
        messages,
        tools: vec![terminal_tool()],
        conversation_id: None,
    }
}

fn first_turn() -> ChatRequest {
    request(vec![
        ChatMessage::system("You fix bugs."),
        ChatMessage::user("Fix calc.sh"),
    ])
}

fn assistant_calls(text: Option<&str>, calls: &[(&str, &str, &str)]) -> ChatMessage {
    let mut message = ChatMessage::assistant(text.unwrap_or(""));
    message.content = text.map(str::to_string);
    message.tool_calls = calls
        .iter()
        .map(|(id, name, arguments)| ToolCall {
            id: id.to_string(),
            name: name.to_string(),
            arguments: arguments.to_string(),
        })
        .collect();
    message
}

fn openai_tool_call(arguments: &str) -> Value {
    json!({
        "id": "chatcmpl-1",
        "choices": [{
            "message": {
                "role": "assistant",
                "content": null,
                "tool_calls": [{
                    "id": "call_abc",
                    "type": "function",
                    "function": {"name": "terminal", "arguments": arguments}
                }]
            },
            "finish_reason": "tool_calls"
        }],
        "usage": {
            "prompt_tokens": 120,
            "completion_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 100},
            "completion_tokens_details": {"reasoning_tokens": 7},
            "cost": 0.0042
        }
    })
}

fn openai_text(text: &str) -> Value {
    json!({
        "id": "chatcmpl-2",
        "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 2}
    })
}

// ---------------------------------------------------------------------------------------------
// OpenAI-compatible client

#[tokio::test]
async fn openai_tool_call_response_is_parsed() {
    let (base, mock) = serve(vec![Canned::json(openai_tool_call(r#"{"command":"ls"}"#))]).await;
    let client = client(&config("openai/gpt-4o", &base));
    let response = client.complete(&first_turn()).await.unwrap();

    assert_eq!(client.model_name(), "openai/gpt-4o");
    assert_eq!(response.id, "chatcmpl-1");
    assert_eq!(response.content, None);
    assert_eq!(response.finish_reason.as_deref(), Some("tool_calls"));
    let call = &response.tool_calls[0];
    assert_eq!(call.id, "call_abc");
    assert_eq!(call.name, "terminal");
    assert_eq!(call.arguments, r#"{"command":"ls"}"#);
    assert_eq!(response.usage.prompt_tokens, 120);
    assert_eq!(response.usage.completion_tokens, 15);
    assert_eq!(response.usage.cache_read_tokens, 100);
    assert_eq!(response.usage.reasoning_tokens, 7);
    assert_eq!(response.cost, Some(0.0042));
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn openai_request_has_the_chat_completions_shape() {
    let (base, mock) = serve(vec![Canned::json(openai_text("hi"))]).await;
    client(&config("openai/gpt-4o", &base))
        .complete(&first_turn())
        .await
        .unwrap();

    let sent = &mock.requests()[0];
    assert_eq!(sent.path, "/chat/completions");
    assert_eq!(sent.body["model"], "gpt-4o");
    assert_eq!(
        sent.body["messages"][0],
        json!({"role": "system", "content": "You fix bugs."})
    );
    assert_eq!(
        sent.body["messages"][1],
        json!({"role": "user", "content": "Fix calc.sh"})
    );
    let tool = json!({"type": "function", "function": {
        "name": "terminal",
        "description": "Run a shell command",
        "parameters": terminal_tool().parameters,
    }});
    assert_eq!(sent.body["tools"], json!([tool]));
    assert!(sent.body.get("max_tokens").is_none());
    assert!(sent.body.get("temperature").is_none());
}

#[tokio::test]
async fn openai_second_request_carries_the_tool_call_and_its_result() {
    let canned = vec![
        Canned::json(openai_tool_call(r#"{"command":"ls"}"#)),
        Canned::json(openai_text("done")),
    ];
    let (base, mock) = serve(canned).await;
    let mut config = config("openai/gpt-4o", &base);
    config.max_output_tokens = Some(256);
    config.temperature = Some(0.7);
    let client = client(&config);

    let mut conversation = first_turn();
    let first = client.complete(&conversation).await.unwrap();
    let mut turn = ChatMessage::assistant("");
    turn.content = first.content.clone();
    turn.tool_calls = first.tool_calls.clone();
    conversation.messages.push(turn);
    conversation
        .messages
        .push(ChatMessage::tool_result("call_abc", "terminal", "calc.sh"));
    let second = client.complete(&conversation).await.unwrap();
    assert_eq!(second.content.as_deref(), Some("done"));
    assert!(second.tool_calls.is_empty());

    let sent = &mock.requests()[1].body;
    assert_eq!(sent["max_tokens"], 256);
    assert_eq!(sent["temperature"], 0.7);
    let assistant = json!({
        "role": "assistant",
        "content": null,
        "tool_calls": [{"id": "call_abc", "type": "function",
            "function": {"name": "terminal", "arguments": "{\"command\":\"ls\"}"}}],
    });
    assert_eq!(sent["messages"][2], assistant);
    let result = json!({"role": "tool", "tool_call_id": "call_abc", "content": "calc.sh"});
    assert_eq!(sent["messages"][3], result);
}

#[tokio::test]
async fn openai_429_with_retry_after_waits_then_succeeds() {
    let canned = vec![
        Canned::status(429, r#"{"error":"rate limited"}"#).header("retry-after", "1"),
        Canned::json(openai_text("ok")),
    ];
    let (base, mock) = serve(canned).await;
    let client = client(&config("openai/gpt-4o", &base));
    let started = Instant::now();
    let response = client.complete(&first_turn()).await.unwrap();

    assert_eq!(response.content.as_deref(), Some("ok"));
    assert_eq!(mock.requests().len(), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn openai_500s_beyond_the_retry_budget_fail_with_http_error() {
    let canned = vec![Canned::status(500, "boom"); 5];
    let (base, mock) = serve(canned).await;
    let config = config("openai/gpt-4o", &base);
    let error = client(&config).complete(&first_turn()).await.unwrap_err();

    match error {
        LlmError::Http {
            status,
            attempts,
            body,
        } => {
            assert_eq!(status, 500);
            assert_eq!(attempts, config.num_retries + 1);
            assert_eq!(body, "boom");
        }
        other => panic!("expected an HTTP error, got {other:?}"),
    }
    assert_eq!(mock.requests().len(), 3);
}

#[tokio::test]
async fn openai_400_is_not_retried() {
    let canned = vec![
        Canned::status(400, r#"{"error":"bad request"}"#),
        Canned::json(openai_text("never")),
    ];
    let (base, mock) = serve(canned).await;
    let error = client(&config("openai/gpt-4o", &base))
        .complete(&first_turn())
        .await
        .unwrap_err();

    assert!(
        matches!(
            error,
            LlmError::Http {
                status: 400,
                attempts: 1,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn openai_malformed_arguments_pass_through_verbatim() {
    let malformed = r#"{"command": "ls"#;
    let (base, _mock) = serve(vec![Canned::json(openai_tool_call(malformed))]).await;
    let response = client(&config("openai/gpt-4o", &base))
        .complete(&first_turn())
        .await
        .unwrap();
    assert_eq!(response.tool_calls[0].arguments, malformed);
}

#[tokio::test]
async fn openai_authorization_header_carries_the_key() {
    let (base, mock) = serve(vec![Canned::json(openai_text("hi"))]).await;
    client(&config(
        "openrouter/meta-llama/llama-3-70b",
        &format!("{base}/"),
    ))
    .complete(&first_turn())
    .await
    .unwrap();

    let sent = &mock.requests()[0];
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(sent.body["model"], "meta-llama/llama-3-70b");
    assert_eq!(sent.path, "/chat/completions");
}

#[tokio::test]
async fn openai_without_key_sends_no_authorization() {
    let (base, mock) = serve(vec![Canned::json(openai_text("hi"))]).await;
    let mut config = config("my-local-model", &base);
    config.api_key = None;
    client(&config).complete(&first_turn()).await.unwrap();

    let sent = &mock.requests()[0];
    assert_eq!(sent.header("authorization"), None);
    assert_eq!(sent.body["model"], "my-local-model");
}

#[tokio::test]
async fn openai_unreadable_200_is_a_decode_error() {
    let canned = vec![
        Canned::status(200, "<html>proxy error</html>"),
        Canned::json(json!({"id": "x", "choices": []})),
    ];
    let (base, _mock) = serve(canned).await;
    let client = client(&config("openai/gpt-4o", &base));
    let garbage = client.complete(&first_turn()).await.unwrap_err();
    assert!(matches!(garbage, LlmError::Decode(_)), "{garbage:?}");
    let no_choices = client.complete(&first_turn()).await.unwrap_err();
    assert!(matches!(no_choices, LlmError::Decode(_)), "{no_choices:?}");
}

#[tokio::test]
async fn connection_refused_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let config = config("openai/gpt-4o", &base);
    let error = client(&config).complete(&first_turn()).await.unwrap_err();

    match error {
        LlmError::Transport { message, attempts } => {
            assert_eq!(attempts, 3);
            assert!(!message.is_empty());
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_slow_server_times_out_as_a_transport_error() {
    let mut slow = Canned::json(openai_text("late"));
    slow.delay = Duration::from_secs(3);
    let (base, mock) = serve(vec![slow]).await;
    let mut config = config("openai/gpt-4o", &base);
    config.timeout = Duration::from_millis(200);
    config.num_retries = 0;
    let error = client(&config).complete(&first_turn()).await.unwrap_err();

    assert!(
        matches!(error, LlmError::Transport { attempts: 1, .. }),
        "{error:?}"
    );
    assert_eq!(mock.requests().len(), 1);
}

/// A writer collecting log output, for checking the retry lines.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn retries_are_logged_and_the_key_never_leaks() {
    let echo = format!("invalid key {KEY}");
    let canned = vec![Canned::status(503, &echo), Canned::status(401, &echo)];
    let (base, _mock) = serve(canned).await;
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let error = client(&config("openai/gpt-4o", &base))
        .complete(&first_turn())
        .await
        .unwrap_err();

    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("model provider answered 503"), "{logged}");
    assert!(logged.contains("(attempt 2 of 3)"), "{logged}");
    assert!(!logged.contains(KEY), "{logged}");
    let shown = error.to_string();
    assert!(shown.contains("HTTP 401 after 2 attempt(s)"), "{shown}");
    assert!(!shown.contains(KEY), "{shown}");
}

// ---------------------------------------------------------------------------------------------
// Anthropic client

fn anthropic_answer() -> Value {
    json!({
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "Let me look.", "signature": "sig"},
            {"type": "text", "text": "I'll list the files."},
            {"type": "tool_use", "id": "toolu_1", "name": "terminal", "input": {"command": "ls"}}
        ],
        "stop_reason": "tool_use",
        "usage": {
            "input_tokens": 50,
            "output_tokens": 20,
            "cache_read_input_tokens": 30,
            "cache_creation_input_tokens": 5
        }
    })
}

fn anthropic_conversation() -> ChatRequest {
    request(vec![
        ChatMessage::system("You fix bugs."),
        ChatMessage::user("Fix calc.sh"),
        assistant_calls(
            Some("Looking."),
            &[
                ("toolu_a", "terminal", r#"{"command":"ls"}"#),
                ("toolu_b", "terminal", r#"{"command":"cat calc.sh"#),
            ],
        ),
        ChatMessage::tool_result("toolu_a", "terminal", "calc.sh"),
        ChatMessage::tool_result("toolu_b", "terminal", "echo $((1+1))"),
        ChatMessage::user("Also add a test."),
    ])
}

#[tokio::test]
async fn anthropic_request_has_the_messages_api_shape() {
    let (base, mock) = serve(vec![Canned::json(anthropic_answer())]).await;
    let client = client(&config("anthropic/claude-sonnet-4-5", &base));
    client.complete(&anthropic_conversation()).await.unwrap();

    let sent = &mock.requests()[0];
    assert_eq!(sent.path, "/v1/messages");
    assert_eq!(sent.header("x-api-key"), Some(KEY));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(sent.header("authorization"), None);
    let body = &sent.body;
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert_eq!(body["max_tokens"], 8192);
    let cached = json!({"type": "ephemeral"});
    let system = json!([{"type": "text", "text": "You fix bugs.", "cache_control": cached}]);
    assert_eq!(body["system"], system);
    let tool = json!({"name": "terminal", "description": "Run a shell command",
        "input_schema": terminal_tool().parameters});
    assert_eq!(body["tools"], json!([tool]));
    let expected = json!([
        {"role": "user", "content": [{"type": "text", "text": "Fix calc.sh"}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Looking."},
            {"type": "tool_use", "id": "toolu_a", "name": "terminal", "input": {"command": "ls"}},
            {"type": "tool_use", "id": "toolu_b", "name": "terminal",
                "input": {"raw_arguments": "{\"command\":\"cat calc.sh"}}
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_a", "content": "calc.sh"},
            {"type": "tool_result", "tool_use_id": "toolu_b", "content": "echo $((1+1))"},
            {"type": "text", "text": "Also add a test.", "cache_control": cached}
        ]}
    ]);
    assert_eq!(body["messages"], expected);
}

#[tokio::test]
async fn anthropic_response_is_parsed_with_usage() {
    let (base, _mock) = serve(vec![Canned::json(anthropic_answer())]).await;
    let response = client(&config("anthropic/claude-sonnet-4-5", &base))
        .complete(&first_turn())
        .await
        .unwrap();

    assert_eq!(response.id, "msg_01");
    assert_eq!(response.content.as_deref(), Some("I'll list the files."));
    assert_eq!(response.reasoning.as_deref(), Some("Let me look."));
    assert_eq!(response.finish_reason.as_deref(), Some("tool_use"));
    let call = &response.tool_calls[0];
    assert_eq!(
        (call.id.as_str(), call.name.as_str()),
        ("toolu_1", "terminal")
    );
    let arguments: Value = serde_json::from_str(&call.arguments).unwrap();
    assert_eq!(arguments, json!({"command": "ls"}));
    let usage = response.usage;
    assert_eq!(usage.prompt_tokens, 85, "input + cache read + cache write");
    assert_eq!(usage.completion_tokens, 20);
    assert_eq!(usage.cache_read_tokens, 30);
    assert_eq!(usage.cache_write_tokens, 5);
    assert_eq!(response.cost, None);
}

#[tokio::test]
async fn anthropic_529_overloaded_is_retried() {
    let overloaded = r#"{"type":"error","error":{"type":"overloaded_error"}}"#;
    let canned = vec![
        Canned::status(529, overloaded),
        Canned::json(anthropic_answer()),
    ];
    let (base, mock) = serve(canned).await;
    let mut config = config("anthropic/claude-sonnet-4-5", &format!("{base}/v1/"));
    config.max_output_tokens = Some(1000);
    let response = client(&config).complete(&first_turn()).await.unwrap();

    assert_eq!(response.id, "msg_01");
    let requests = mock.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].path, "/v1/messages");
    assert_eq!(requests[1].body["max_tokens"], 1000);
}

// ---------------------------------------------------------------------------------------------
// Scripted model

const SCRIPT: &str = r#"
# each item is one model turn
- thought: "Let me look at the script."
  tool: terminal
  args: {command: "cat ${WORKSPACE}/calc.sh"}
- tools:
    - {tool: terminal, args: {command: "ls"}}
    - {tool: think, args: {thought: "nested ${WORKSPACE}", list: ["${WORKSPACE}/a"]}}
- tool: terminal
  raw_args: '{"command": "ls"'
- message: "All done."
"#;

fn scripted(workspace: Option<&str>) -> ScriptedModel {
    ScriptedModel::from_yaml("scripted:demo", SCRIPT, workspace.map(Into::into)).unwrap()
}

/// A conversation with `assistant_turns` assistant messages already in it.
fn history(assistant_turns: usize) -> ChatRequest {
    let mut messages = vec![ChatMessage::system("sys"), ChatMessage::user("go")];
    for i in 0..assistant_turns {
        let id = format!("call_{i}");
        messages.push(assistant_calls(None, &[(&id, "terminal", "{}")]));
        messages.push(ChatMessage::tool_result(&id, "terminal", "output"));
    }
    request(messages)
}

#[tokio::test]
async fn scripted_step_follows_the_assistant_count() {
    let model = scripted(Some("/ws"));
    let first = model.complete(&history(0)).await.unwrap();
    assert_eq!(first.id, "scripted-1");
    assert_eq!(first.content.as_deref(), Some("Let me look at the script."));
    assert_eq!(first.tool_calls[0].id, "call_1_1");
    assert_eq!(first.tool_calls[0].name, "terminal");
    let arguments: Value = serde_json::from_str(&first.tool_calls[0].arguments).unwrap();
    assert_eq!(arguments, json!({"command": "cat /ws/calc.sh"}));
    assert!(first.usage.prompt_tokens > 0 && first.usage.completion_tokens > 0);
    assert_eq!(first.cost, Some(0.0), "a scripted run spends nothing");

    let last = model.complete(&history(3)).await.unwrap();
    assert_eq!(last.id, "scripted-4");
    assert_eq!(last.content.as_deref(), Some("All done."));
    assert!(last.tool_calls.is_empty());
    assert_eq!(last.finish_reason.as_deref(), Some("stop"));
}

#[tokio::test]
async fn scripted_tools_step_makes_several_calls_with_substitution() {
    let response = scripted(Some("/ws")).complete(&history(1)).await.unwrap();
    let names: Vec<&str> = response
        .tool_calls
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, vec!["terminal", "think"]);
    let ids: Vec<&str> = response.tool_calls.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, vec!["call_2_1", "call_2_2"]);
    let think: Value = serde_json::from_str(&response.tool_calls[1].arguments).unwrap();
    assert_eq!(think, json!({"thought": "nested /ws", "list": ["/ws/a"]}));
    assert_eq!(response.content, None);
}

#[tokio::test]
async fn scripted_without_workspace_keeps_the_placeholder() {
    let response = scripted(None).complete(&history(0)).await.unwrap();
    assert!(
        response.tool_calls[0]
            .arguments
            .contains("${WORKSPACE}/calc.sh"),
        "{}",
        response.tool_calls[0].arguments
    );
}

#[tokio::test]
async fn scripted_raw_args_are_sent_verbatim() {
    let response = scripted(None).complete(&history(2)).await.unwrap();
    assert_eq!(response.tool_calls[0].arguments, r#"{"command": "ls""#);
}

#[tokio::test]
async fn scripted_exhausted_script_is_an_error() {
    let error = scripted(None).complete(&history(4)).await.unwrap_err();
    let LlmError::Script(message) = error else {
        panic!("expected a script error, got {error:?}")
    };
    assert!(
        message.contains("the script has 4 steps and the agent asked for step 5"),
        "{message}"
    );
    assert!(message.contains("`finish`"), "{message}");
}

#[test]
fn scripted_yaml_errors_name_the_problem() {
    let unknown = ScriptedModel::from_yaml("s", "- tool: terminal\n  argz: {}\n", None);
    let unknown = unknown.unwrap_err();
    assert!(unknown.contains("argz"), "{unknown}");
    assert!(unknown.contains("line 2"), "{unknown}");

    let yaml = "- message: hi\n- thought: only a thought\n";
    let missing = ScriptedModel::from_yaml("s", yaml, None).unwrap_err();
    assert!(missing.contains("step 2"), "{missing}");
    assert!(missing.contains("exactly one of"), "{missing}");

    let both = "- tool: terminal\n  message: hi\n";
    let both = ScriptedModel::from_yaml("s", both, None).unwrap_err();
    assert!(both.contains("step 1"), "{both}");

    let nameless = "- tools:\n    - {args: {command: ls}}\n";
    let nameless = ScriptedModel::from_yaml("s", nameless, None).unwrap_err();
    assert!(nameless.contains("missing field `tool`"), "{nameless}");

    let broken = ScriptedModel::from_yaml("s", "- tool: [unclosed\n", None).unwrap_err();
    assert!(!broken.is_empty());
    assert!(ScriptedModel::from_yaml("s", "", None).is_err());
}

// ---------------------------------------------------------------------------------------------
// build_client

fn write_script(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

#[tokio::test]
async fn build_client_loads_a_scripted_model_from_a_file() {
    let file = write_script(SCRIPT);
    let model = format!("scripted:{}", file.path().display());
    let client = build_client_for_workspace(&LlmConfig::new(&model), Some("/ws".as_ref())).unwrap();
    assert_eq!(client.model_name(), model);
    let response = client.complete(&history(0)).await.unwrap();
    assert!(response.tool_calls[0].arguments.contains("/ws/calc.sh"));
}

fn setup_error(config: &LlmConfig) -> LlmSetupError {
    match build_client(config) {
        Ok(client) => panic!("expected a setup error, got {}", client.model_name()),
        Err(error) => error,
    }
}

#[test]
fn build_client_reports_script_problems_with_the_path() {
    let missing = setup_error(&LlmConfig::new("scripted:/no/such/script.yaml"));
    assert!(
        matches!(&missing, LlmSetupError::Script { path, .. } if path == "/no/such/script.yaml"),
        "{missing:?}"
    );
    let file = write_script("- tool: terminal\n  bogus: 1\n");
    let invalid = setup_error(&LlmConfig::new(format!(
        "scripted:{}",
        file.path().display()
    )));
    let LlmSetupError::Script { reason, .. } = invalid else {
        panic!("expected a script error, got {invalid:?}")
    };
    assert!(reason.contains("bogus"), "{reason}");
}

#[test]
fn build_client_rejects_unknown_models_and_missing_keys() {
    let unknown = setup_error(&LlmConfig::new("gpt-4o"));
    assert!(
        matches!(unknown, LlmSetupError::UnknownModel { .. }),
        "{unknown:?}"
    );
    let no_key = setup_error(&LlmConfig::new("anthropic/claude-sonnet-4-5"));
    assert!(
        matches!(no_key, LlmSetupError::MissingApiKey { .. }),
        "{no_key:?}"
    );
    let ollama = build_client(&LlmConfig::new("ollama/qwen2.5-coder")).unwrap();
    assert_eq!(ollama.model_name(), "ollama/qwen2.5-coder");
}
