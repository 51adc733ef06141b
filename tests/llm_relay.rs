//! Integration tests of the LLM relay: a fake upstream (axum on loopback) records every request
//! it gets, and the tests check what reaches it through the relay and what comes back: key
//! swapping, token checks, path joining, SSE streaming, error pass-through, and the real
//! `build_client` clients talking through the relay.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use futures_util::StreamExt as _;
use sandcrab::llm::relay::{self, Relay, RelayConfig, RelayProvider};
use sandcrab::llm::{build_client, ChatMessage, ChatRequest, LlmConfig};
use serde_json::{json, Value};
use tokio::sync::Notify;

const KEY: &str = "sk-real-provider-key-do-not-leak";

// ---------------------------------------------------------------------------------------------
// The fake upstream

/// One request the fake upstream received.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    /// Path and query.
    target: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Clone, Default)]
struct Fake {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Opened by the streaming test once it has seen the first chunk.
    gate: Arc<Notify>,
}

impl Fake {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Records the request, then answers by path.
async fn fake_answer(
    State(fake): State<Fake>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let target = uri.path_and_query().map(|p| p.to_string()).unwrap();
    let seen = Seen {
        method,
        target,
        headers,
        body,
    };
    fake.seen.lock().unwrap().push(seen);
    // How to answer comes in the query (the relay forwards only model-call paths).
    match (uri.path(), uri.query().unwrap_or_default()) {
        (_, "fake=stream") => return sse(fake.gate.clone()),
        (_, "fake=limited") => return rate_limited(),
        (_, "fake=slow") => return slow().await,
        (p, _) if p.ends_with("/chat/completions") => Json(openai_answer()),
        (p, _) if p.ends_with("/messages") => Json(anthropic_answer()),
        _ => Json(json!({"echo": uri.to_string()})),
    }
    .into_response()
}

fn openai_answer() -> Value {
    json!({
        "id": "chatcmpl-1",
        "choices": [{
            "message": {"role": "assistant", "content": "hello through the relay"},
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 3, "completion_tokens": 4}
    })
}

fn anthropic_answer() -> Value {
    json!({
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "content": [{"type": "text", "text": "hello from claude"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 3, "output_tokens": 4}
    })
}

/// Three SSE events: the first at once, the rest only after the gate opens (or 10 s pass),
/// with a delay between them.
fn sse(gate: Arc<Notify>) -> Response {
    let events = futures_util::stream::unfold(0u32, move |n| {
        let gate = gate.clone();
        async move {
            match n {
                0 => {}
                1 => {
                    let _ = tokio::time::timeout(Duration::from_secs(10), gate.notified()).await;
                }
                2 => tokio::time::sleep(Duration::from_millis(50)).await,
                _ => return None,
            }
            let event = format!("data: {{\"chunk\": {n}}}\n\n");
            Some((Ok::<_, std::io::Error>(Bytes::from(event)), n + 1))
        }
    });
    let headers = [
        ("content-type", "text/event-stream"),
        ("cache-control", "no-cache"),
    ];
    (headers, Body::from_stream(events)).into_response()
}

fn rate_limited() -> Response {
    let headers = [
        ("retry-after", "7"),
        ("x-ratelimit-remaining-requests", "0"),
        ("content-type", "application/json"),
    ];
    let body = json!({"error": {"message": "slow down", "type": "rate_limit"}});
    (StatusCode::TOO_MANY_REQUESTS, headers, body.to_string()).into_response()
}

async fn slow() -> Response {
    tokio::time::sleep(Duration::from_secs(3)).await;
    "late".into_response()
}

/// Starts the fake upstream; returns its address.
async fn fake_upstream() -> (SocketAddr, Fake) {
    let fake = Fake::default();
    let app = Router::new().fallback(fake_answer).with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, fake)
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn start_relay(upstream_base: &str, provider: RelayProvider) -> Relay {
    let config = RelayConfig::new(upstream_base, Some(KEY.to_string()), provider, loopback());
    relay::start(config).await.unwrap()
}

/// A fake upstream and a relay in front of it at `http://UPSTREAM{base_path}`.
async fn setup(base_path: &str, provider: RelayProvider) -> (Relay, Fake) {
    let (address, fake) = fake_upstream().await;
    let relay = start_relay(&format!("http://{address}{base_path}"), provider).await;
    (relay, fake)
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// Whether any header the upstream saw contains `needle`.
fn any_header_contains(seen: &Seen, needle: &str) -> bool {
    seen.headers
        .values()
        .any(|v| String::from_utf8_lossy(v.as_bytes()).contains(needle))
}

async fn json_body(response: reqwest::Response) -> Value {
    response.json().await.unwrap()
}

// ---------------------------------------------------------------------------------------------
// Key swapping and tokens

#[tokio::test]
async fn openai_bearer_token_is_swapped_for_the_real_key() {
    let (relay, fake) = setup("/v1", RelayProvider::OpenAi).await;
    let body = json!({"model": "x", "messages": []}).to_string();
    let response = http()
        .post(format!("{}/chat/completions", relay.base_url()))
        .bearer_auth(relay.token())
        .header("x-custom", "dropped")
        .header("openai-organization", "org-elsewhere")
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(json_body(response).await, openai_answer());
    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.method, Method::POST);
    assert_eq!(request.target, "/v1/chat/completions");
    assert_eq!(
        request.header("authorization"),
        Some(&*format!("Bearer {KEY}"))
    );
    assert_eq!(request.header("x-api-key"), None);
    assert_eq!(
        request.header("x-custom"),
        None,
        "only the model call's headers go on"
    );
    assert_eq!(request.header("openai-organization"), None);
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.body, body.as_bytes());
    assert!(!any_header_contains(request, relay.token()));
    assert_eq!(relay.requests(), 1);
}

#[tokio::test]
async fn anthropic_x_api_key_token_is_swapped_for_the_real_key() {
    let (relay, fake) = setup("", RelayProvider::Anthropic).await;
    assert!(!relay.base_url().ends_with('/'));
    let response = http()
        .post(format!("{}/v1/messages", relay.base_url()))
        .header("x-api-key", relay.token())
        .header("anthropic-version", "2023-06-01")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let request = &fake.seen()[0];
    assert_eq!(request.target, "/v1/messages");
    assert_eq!(request.header("x-api-key"), Some(KEY));
    assert_eq!(request.header("authorization"), None);
    assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
    assert!(!any_header_contains(request, relay.token()));
}

#[tokio::test]
async fn either_token_header_works_with_either_provider() {
    let (relay, fake) = setup("/v1", RelayProvider::OpenAi).await;
    let url = format!("{}/models", relay.base_url());
    let response = http()
        .get(&url)
        .header("x-api-key", relay.token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let request = &fake.seen()[0];
    assert_eq!(request.method, Method::GET);
    assert_eq!(
        request.header("authorization"),
        Some(&*format!("Bearer {KEY}"))
    );
    assert_eq!(request.header("x-api-key"), None);

    let (relay, fake) = setup("", RelayProvider::Anthropic).await;
    let url = format!("{}/v1/messages", relay.base_url());
    let response = http()
        .post(&url)
        .bearer_auth(relay.token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let request = &fake.seen()[0];
    assert_eq!(request.header("x-api-key"), Some(KEY));
    assert_eq!(request.header("authorization"), None);
}

#[tokio::test]
async fn missing_or_wrong_tokens_get_401_and_nothing_is_forwarded() {
    let (relay, fake) = setup("/v1", RelayProvider::OpenAi).await;
    let url = format!("{}/chat/completions", relay.base_url());
    let wrong = format!("{}x", relay.token());
    let attempts = [
        http().post(&url),
        http().post(&url).bearer_auth(&wrong),
        http().post(&url).header("x-api-key", &wrong),
        http().post(&url).bearer_auth(KEY),
        http().post(&url).header("authorization", relay.token()),
    ];
    for attempt in attempts {
        let response = attempt.body("{}").send().await.unwrap();
        assert_eq!(response.status(), 401);
        let body = json_body(response).await;
        assert_eq!(body["error"]["type"], "relay_error");
        assert!(!body.to_string().contains(KEY));
    }
    assert!(fake.seen().is_empty());
    assert_eq!(relay.requests(), 0);
}

#[tokio::test]
async fn tokens_are_random_per_relay() {
    let (first, _) = setup("/v1", RelayProvider::OpenAi).await;
    let (second, _) = setup("/v1", RelayProvider::OpenAi).await;
    assert_ne!(first.token(), second.token());
    assert!(first.token().len() >= 32);
    assert!(!first.token().contains(KEY));
}

// ---------------------------------------------------------------------------------------------
// Paths

/// Sends an authorized GET to `path` on the relay; returns the status.
async fn get_status(relay: &Relay, path_and_query: &str) -> u16 {
    let origin = relay.base_url();
    let origin = origin.trim_end_matches(&*relay_prefix(relay));
    let response = http()
        .get(format!("{origin}{path_and_query}"))
        .bearer_auth(relay.token())
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

/// Sends an authorized POST of `{}` to `path` on the relay; returns the status.
async fn post_status(relay: &Relay, path_and_query: &str) -> u16 {
    let origin = relay.base_url();
    let origin = origin.trim_end_matches(&*relay_prefix(relay));
    let response = http()
        .post(format!("{origin}{path_and_query}"))
        .bearer_auth(relay.token())
        .body("{}")
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

/// Sends an authorized request with `method` to `path_and_query`; returns the status and the
/// body.
async fn status_and_body(relay: &Relay, method: Method, path_and_query: &str) -> (u16, String) {
    let origin = relay.base_url();
    let origin = origin.trim_end_matches(&*relay_prefix(relay));
    let response = http()
        .request(method, format!("{origin}{path_and_query}"))
        .bearer_auth(relay.token())
        .body("{}")
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn only_model_calls_are_forwarded() {
    let (relay, fake) = setup("/v1", RelayProvider::OpenAi).await;
    for (method, path) in [
        (Method::GET, "/v1/chat/completions"),
        (Method::DELETE, "/v1/chat/completions"),
        (Method::POST, "/v1/files"),
        (Method::GET, "/v1/files"),
        (Method::POST, "/v1/batches"),
        (Method::POST, "/v1/fine_tuning/jobs"),
        (Method::DELETE, "/v1/models/ft-model"),
        (Method::POST, "/v1/models"),
    ] {
        let (status, body) = status_and_body(&relay, method.clone(), path).await;
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert!(body.contains("forwards only model calls"), "{body}");
        assert!(body.contains("POST /chat/completions"), "{body}");
    }
    assert!(
        fake.seen().is_empty(),
        "a refused call reached the provider"
    );
    assert_eq!(relay.requests(), 0);

    let (relay, fake) = setup("", RelayProvider::Anthropic).await;
    for (method, path) in [
        (Method::GET, "/v1/messages"),
        (Method::POST, "/v1/files"),
        (Method::POST, "/v1/messages/batches"),
        (Method::DELETE, "/v1/files/file_1"),
        (Method::POST, "/v1/organizations/api_keys"),
    ] {
        let (status, body) = status_and_body(&relay, method.clone(), path).await;
        assert_eq!(status, 403, "{method} {path}: {body}");
        assert!(body.contains("POST /v1/messages"), "{body}");
    }
    assert_eq!(post_status(&relay, "/v1/messages/count_tokens").await, 200);
    assert_eq!(fake.seen().len(), 1);
}

/// Sends an authorized GET with `path` verbatim (no client-side URL normalization); returns
/// the status.
async fn raw_get_status(relay: &Relay, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(relay_address(relay))
        .await
        .unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: relay\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        relay.token()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer[9..12].parse().unwrap()
}

/// `host:port` of the relay.
fn relay_address(relay: &Relay) -> String {
    let url = url::Url::parse(&relay.base_url()).unwrap();
    format!("{}:{}", url.host_str().unwrap(), url.port().unwrap())
}

/// The path part of the relay's base URL.
fn relay_prefix(relay: &Relay) -> String {
    let url = url::Url::parse(&relay.base_url()).unwrap();
    url.path().trim_end_matches('/').to_string()
}

#[tokio::test]
async fn relay_base_url_keeps_the_upstream_path() {
    let (relay, _) = setup("/api/v1/", RelayProvider::OpenAi).await;
    assert!(relay.base_url().starts_with("http://127.0.0.1:"));
    assert!(
        relay.base_url().ends_with("/api/v1"),
        "{}",
        relay.base_url()
    );
    let (relay, _) = setup("", RelayProvider::Anthropic).await;
    assert_eq!(relay_prefix(&relay), "");
}

#[tokio::test]
async fn paths_and_queries_join_onto_an_openai_style_base() {
    let (relay, fake) = setup("/api/v1", RelayProvider::OpenAi).await;
    assert_eq!(post_status(&relay, "/api/v1/chat/completions").await, 200);
    assert_eq!(
        get_status(&relay, "/api/v1/models?limit=2&x=a%20b").await,
        200
    );
    let targets: Vec<String> = fake.seen().into_iter().map(|s| s.target).collect();
    let expected = ["/api/v1/chat/completions", "/api/v1/models?limit=2&x=a%20b"];
    assert_eq!(targets, expected);
    for outside in [
        "/",
        "/api/v2/models",
        "/api/v1x/models",
        "/other",
        "/api/v1/../../admin",
        "/api/v1/%2e%2e/%2E%2E/admin",
        "/api/v1/./models",
        "/api/v1/..%2fadmin",
        "/api/v1/%5c..%5cadmin",
    ] {
        assert_eq!(raw_get_status(&relay, outside).await, 404, "{outside}");
    }
    assert_eq!(fake.seen().len(), 2);
    assert_eq!(relay.requests(), 2);
}

#[tokio::test]
async fn paths_and_queries_join_onto_a_bare_anthropic_base() {
    let (relay, fake) = setup("", RelayProvider::Anthropic).await;
    assert_eq!(post_status(&relay, "/v1/messages?beta=true").await, 200);
    assert_eq!(get_status(&relay, "/v1/models").await, 200);
    assert_eq!(raw_get_status(&relay, "/v1/../v1/models").await, 404);
    let targets: Vec<String> = fake.seen().into_iter().map(|s| s.target).collect();
    assert_eq!(targets, ["/v1/messages?beta=true", "/v1/models"]);
}

// ---------------------------------------------------------------------------------------------
// Answers

#[tokio::test]
async fn sse_streams_pass_through_incrementally() {
    let (relay, fake) = setup("/v1", RelayProvider::OpenAi).await;
    let response = http()
        .post(format!("{}/chat/completions?fake=stream", relay.base_url()))
        .bearer_auth(relay.token())
        .body("{\"stream\": true}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let mut chunks = response.bytes_stream();
    // The upstream holds the later events until the gate opens: a buffering relay would
    // deliver nothing here.
    let first = tokio::time::timeout(Duration::from_secs(5), chunks.next())
        .await
        .expect("the first event arrives before the upstream finishes")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"data: {\"chunk\": 0}\n\n");
    fake.gate.notify_one();
    let mut rest = Vec::new();
    while let Some(chunk) = chunks.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    let rest = String::from_utf8(rest).unwrap();
    assert_eq!(rest, "data: {\"chunk\": 1}\n\ndata: {\"chunk\": 2}\n\n");
}

#[tokio::test]
async fn upstream_rate_limits_pass_back_unchanged() {
    let (relay, _) = setup("/v1", RelayProvider::OpenAi).await;
    let response = http()
        .post(format!(
            "{}/chat/completions?fake=limited",
            relay.base_url()
        ))
        .bearer_auth(relay.token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    assert_eq!(response.headers()["x-ratelimit-remaining-requests"], "0");
    let body = json_body(response).await;
    assert_eq!(body["error"]["message"], "slow down");
}

#[tokio::test]
async fn oversized_bodies_get_413_and_are_not_forwarded() {
    let (address, fake) = fake_upstream().await;
    let base = format!("http://{address}/v1");
    let mut config = RelayConfig::new(&base, Some(KEY.into()), RelayProvider::OpenAi, loopback());
    config.max_body_bytes = 1024;
    let relay = relay::start(config).await.unwrap();
    let response = http()
        .post(format!("{}/chat/completions", relay.base_url()))
        .bearer_auth(relay.token())
        .body(vec![b'x'; 4096])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert!(fake.seen().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Relay errors

#[tokio::test]
async fn unreachable_upstream_gives_502_without_the_key() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let relay = start_relay(&format!("http://{address}/v1"), RelayProvider::OpenAi).await;
    let response = http()
        .post(format!("{}/chat/completions", relay.base_url()))
        .bearer_auth(relay.token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let body = response.text().await.unwrap();
    assert!(body.contains("relay_error"), "{body}");
    assert!(
        !body.contains(KEY) && !body.contains(relay.token()),
        "{body}"
    );
}

#[tokio::test]
async fn slow_upstream_gives_504_without_the_key() {
    let (address, _) = fake_upstream().await;
    let base = format!("http://{address}/v1");
    let mut config = RelayConfig::new(&base, Some(KEY.into()), RelayProvider::OpenAi, loopback());
    config.timeout = Duration::from_millis(200);
    assert!(!format!("{config:?}").contains(KEY));
    let relay = relay::start(config).await.unwrap();
    assert!(!format!("{relay:?}").contains(KEY));
    let response = http()
        .post(format!("{}/chat/completions?fake=slow", relay.base_url()))
        .bearer_auth(relay.token())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504);
    assert!(!response.text().await.unwrap().contains(KEY));
}

#[tokio::test]
async fn bad_upstream_urls_and_keys_fail_to_start_without_echoing_the_key() {
    for base in [
        "not a url",
        "ftp://example.com",
        "http://example.com/v1?key=1",
    ] {
        let config = RelayConfig::new(base, None, RelayProvider::OpenAi, loopback());
        assert!(relay::start(config).await.is_err(), "{base}");
    }
    let bad_key = format!("{KEY}\n");
    let config = RelayConfig::new(
        "http://127.0.0.1:1/v1",
        Some(bad_key),
        RelayProvider::OpenAi,
        loopback(),
    );
    let error = relay::start(config).await.unwrap_err();
    assert!(!format!("{error:#}").contains(KEY));
}

// ---------------------------------------------------------------------------------------------
// Lifecycle

/// Whether a TCP connection to the relay's port is refused.
async fn refused(address: &str) -> bool {
    for _ in 0..50 {
        if tokio::net::TcpStream::connect(&address).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn shutdown_and_drop_stop_the_relay() {
    let (relay, _) = setup("/v1", RelayProvider::OpenAi).await;
    let address = relay_address(&relay);
    assert_eq!(get_status(&relay, "/v1/models").await, 200);
    relay.shutdown().await;
    assert!(refused(&address).await);

    let (relay, _) = setup("/v1", RelayProvider::OpenAi).await;
    let address = relay_address(&relay);
    drop(relay);
    assert!(refused(&address).await);
}

#[tokio::test]
async fn dropping_the_relay_cuts_streams_in_flight() {
    let (relay, _fake) = setup("/v1", RelayProvider::OpenAi).await;
    let response = http()
        .post(format!("{}/chat/completions?fake=stream", relay.base_url()))
        .bearer_auth(relay.token())
        .send()
        .await
        .unwrap();
    let mut chunks = response.bytes_stream();
    let first = chunks.next().await.unwrap().unwrap();
    assert_eq!(&first[..], b"data: {\"chunk\": 0}\n\n");
    drop(relay);
    // The upstream would go on for 10 s; the client sees the stream fail at once instead.
    let next = tokio::time::timeout(Duration::from_secs(3), chunks.next())
        .await
        .expect("the stream ends when the relay is dropped");
    assert!(matches!(next, Some(Err(_))), "{next:?}");
}

// ---------------------------------------------------------------------------------------------
// The real clients through the relay

fn hello() -> ChatRequest {
    ChatRequest {
        messages: vec![ChatMessage::user("hi")],
        tools: Vec::new(),
        conversation_id: None,
    }
}

fn client_config(model: &str, relay: &Relay) -> LlmConfig {
    let mut config = LlmConfig::new(model);
    config.base_url = Some(relay.base_url());
    config.api_key = Some(relay.token().to_string());
    config.num_retries = 0;
    config.timeout = Duration::from_secs(5);
    config
}

#[tokio::test]
async fn openai_client_completes_through_the_relay() {
    let (relay, fake) = setup("/v1", RelayProvider::OpenAi).await;
    let client = build_client(&client_config("openai/x", &relay)).unwrap();
    let answer = client.complete(&hello()).await.unwrap();
    assert_eq!(answer.content.as_deref(), Some("hello through the relay"));
    let request = &fake.seen()[0];
    assert_eq!(request.target, "/v1/chat/completions");
    assert_eq!(
        request.header("authorization"),
        Some(&*format!("Bearer {KEY}"))
    );
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["model"], "x");
}

#[tokio::test]
async fn anthropic_client_completes_through_the_relay() {
    let (relay, fake) = setup("", RelayProvider::Anthropic).await;
    let client = build_client(&client_config("anthropic/claude-x", &relay)).unwrap();
    let answer = client.complete(&hello()).await.unwrap();
    assert_eq!(answer.content.as_deref(), Some("hello from claude"));
    let request = &fake.seen()[0];
    assert_eq!(request.target, "/v1/messages");
    assert_eq!(request.header("x-api-key"), Some(KEY));
}
