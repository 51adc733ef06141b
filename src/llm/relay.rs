//! The LLM relay: a small HTTP server on the runner that lets a sandboxed agent reach the model
//! provider without the API key ever entering the sandbox.
//!
//! The sandbox's agent is configured with [`Relay::base_url`] as its base URL and
//! [`Relay::token`] (a random per-run value) as its "API key". For every request the relay:
//!
//! 1. checks the token (`Authorization: Bearer TOKEN` or `x-api-key: TOKEN`), else answers 401;
//! 2. maps the path onto the upstream base: the relay serves the same path prefix as the
//!    upstream base (`https://api.openai.com/v1` → `http://BIND/v1`, so `/v1/chat/completions`
//!    goes to `https://api.openai.com/v1/chat/completions`; Anthropic's bare
//!    `https://api.anthropic.com` → `http://BIND`, so `/v1/messages` goes to
//!    `https://api.anthropic.com/v1/messages`); paths outside the prefix, or with `.`/`..`
//!    segments, get 404;
//! 3. removes the token, adds the real key the way the provider expects
//!    ([`RelayProvider`]), drops hop-by-hop headers and `host`, and forwards method, query,
//!    body (at most [`RelayConfig::max_body_bytes`]) and the other headers;
//! 4. streams the answer back as it arrives: status, headers (minus hop-by-hop ones) and body
//!    unchanged, so SSE streams pass through incrementally and a 429 keeps its `Retry-After`.
//!
//! Errors of the relay itself are JSON (`{"type":"error","error":{"type":"relay_error",
//! "message":...}}`, readable by OpenAI and Anthropic clients alike) and never contain the key.
//! Each request is logged as one `debug` line: method, path (no query), status, latency to the
//! upstream's headers.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures_util::{Stream, StreamExt as _};
use serde_json::json;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use url::Url;

use crate::redact::Redactor;

/// Default largest request body forwarded (32 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Default limit for one upstream call, from sending the request to the end of the answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Limit for connecting to the upstream.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Relay::shutdown`] waits for requests in flight before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How the provider expects its API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayProvider {
    /// `Authorization: Bearer KEY` (OpenAI and compatible servers).
    OpenAi,
    /// `x-api-key: KEY` (Anthropic).
    Anthropic,
}

impl RelayProvider {
    /// The model-call endpoints an agent needs, as (method, path after the upstream base):
    /// chat completions and the Responses API (OpenAI and compatible), messages and their token
    /// count (Anthropic), and the model list. Each also with a `/v1` before it, for a base given
    /// without (or, for Anthropic, with) its version segment. Everything else the key could do
    /// (files, batches, fine-tunes, admin) is refused with 403 before it reaches the provider.
    fn endpoints(self) -> &'static [(Method, &'static str)] {
        match self {
            RelayProvider::OpenAi => &[
                (Method::POST, "/chat/completions"),
                (Method::POST, "/responses"),
                (Method::GET, "/models"),
                (Method::POST, "/v1/chat/completions"),
                (Method::POST, "/v1/responses"),
                (Method::GET, "/v1/models"),
            ],
            RelayProvider::Anthropic => &[
                (Method::POST, "/v1/messages"),
                (Method::POST, "/v1/messages/count_tokens"),
                (Method::GET, "/v1/models"),
                (Method::POST, "/messages"),
                (Method::POST, "/messages/count_tokens"),
                (Method::GET, "/models"),
            ],
        }
    }

    /// Whether `method` on `endpoint` (the path after the upstream base) is a model call.
    fn allows(self, method: &Method, endpoint: &str) -> bool {
        let endpoint = endpoint.trim_end_matches('/');
        self.endpoints()
            .iter()
            .any(|(m, path)| m == method && *path == endpoint)
    }

    /// The one-line body of a refusal: what is allowed.
    fn refusal(self) -> String {
        let allowed: Vec<String> = self
            .endpoints()
            .iter()
            .map(|(m, path)| format!("{m} {path}"))
            .collect();
        format!(
            "the LLM relay forwards only model calls ({}); this method and path are not one",
            allowed.join(", ")
        )
    }

    /// The header carrying `key` for this provider, marked sensitive.
    fn key_header(self, key: &str) -> anyhow::Result<(HeaderName, HeaderValue)> {
        let (name, value) = match self {
            RelayProvider::OpenAi => (header::AUTHORIZATION, format!("Bearer {key}")),
            RelayProvider::Anthropic => (HeaderName::from_static("x-api-key"), key.to_string()),
        };
        let Ok(mut value) = HeaderValue::from_str(&value) else {
            bail!("the LLM API key contains characters not allowed in an HTTP header");
        };
        value.set_sensitive(true);
        Ok((name, value))
    }
}

/// What the relay forwards to and where it listens.
#[derive(Clone)]
pub struct RelayConfig {
    /// The provider's base URL, e.g. `https://api.openai.com/v1` or `https://api.anthropic.com`.
    pub upstream_base: String,
    /// The real key; `None` forwards without one (e.g. a local Ollama).
    pub api_key: Option<String>,
    pub provider: RelayProvider,
    /// Where to listen: `127.0.0.1:0`, or a docker network's gateway IP the sandbox can reach.
    /// Use a concrete IP: [`Relay::base_url`] is built from it.
    pub bind: SocketAddr,
    /// Limit for one upstream call, streaming included ([`DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
    /// Largest request body forwarded; larger ones get 413 ([`DEFAULT_MAX_BODY_BYTES`]).
    pub max_body_bytes: usize,
}

impl RelayConfig {
    /// A config with the default timeout and body limit.
    pub fn new(
        upstream_base: impl Into<String>,
        api_key: Option<String>,
        provider: RelayProvider,
        bind: SocketAddr,
    ) -> Self {
        RelayConfig {
            upstream_base: upstream_base.into(),
            api_key,
            provider,
            bind,
            timeout: DEFAULT_TIMEOUT,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

impl fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = self.api_key.as_ref().map(|_| "<secret-hidden>");
        f.debug_struct("RelayConfig")
            .field("upstream_base", &self.upstream_base)
            .field("api_key", &key)
            .field("provider", &self.provider)
            .field("bind", &self.bind)
            .field("timeout", &self.timeout)
            .field("max_body_bytes", &self.max_body_bytes)
            .finish()
    }
}

/// A running relay. It stops on [`Relay::shutdown`] or when dropped; dropping it also cuts
/// the answers still streaming.
pub struct Relay {
    base_url: String,
    address: SocketAddr,
    prefix: String,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    /// Set to `true`, or dropped, to cut requests in flight.
    cut: watch::Sender<bool>,
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// The base URL to give the sandboxed agent: `http://BIND` plus the upstream base's path,
    /// e.g. `http://127.0.0.1:PORT/v1`, or `http://127.0.0.1:PORT` for Anthropic's bare base.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Where the relay listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The base URL as seen through a forward at `address` (a remote engine's bridge).
    pub fn base_url_via(&self, address: SocketAddr) -> String {
        format!("http://{address}{}", self.prefix)
    }

    /// The per-run token the agent must send as its API key.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// How many requests were forwarded upstream (authorized, on an allowed path).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Stops accepting, lets requests in flight finish for a few seconds, then cuts them.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
            {
                let _ = self.cut.send(true);
                let _ = tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await;
                task.abort();
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.cut.send(true);
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Starts a relay for `config`; it listens as soon as this returns.
pub async fn start(config: RelayConfig) -> anyhow::Result<Relay> {
    let upstream = Upstream::parse(&config.upstream_base)?;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("could not start the LLM relay on {}", config.bind))?;
    let address = listener.local_addr()?;
    let base_url = format!("http://{address}{}", upstream.prefix);
    let prefix = upstream.prefix.clone();
    let (cut, cut_watch) = watch::channel(false);
    let shared = Arc::new(Shared::new(&config, upstream, cut_watch)?);
    let app = Router::new().fallback(handle).with_state(shared.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let signal = async {
            let _ = stopped.await;
        };
        let served = axum::serve(listener, app).with_graceful_shutdown(signal);
        if let Err(error) = served.await {
            tracing::warn!("LLM relay stopped: {error}");
        }
    });
    tracing::debug!("LLM relay on {base_url} for {}", config.upstream_base);
    Ok(Relay {
        base_url,
        address,
        prefix,
        shared,
        stop: Some(stop),
        task: Some(task),
        cut,
    })
}

/// The state every request handler shares.
struct Shared {
    upstream: Upstream,
    token: String,
    provider: RelayProvider,
    /// The header carrying the real key, if there is one.
    key_header: Option<(HeaderName, HeaderValue)>,
    http: reqwest::Client,
    redactor: Redactor,
    max_body_bytes: usize,
    requests: AtomicU64,
    /// Turns `true` (or closes) when requests in flight must end.
    cut: watch::Receiver<bool>,
}

impl Shared {
    fn new(
        config: &RelayConfig,
        upstream: Upstream,
        cut: watch::Receiver<bool>,
    ) -> anyhow::Result<Self> {
        let key = config.api_key.as_deref().filter(|k| !k.trim().is_empty());
        let key_header = key.map(|k| config.provider.key_header(k)).transpose()?;
        let http = crate::http::ClientSpec::new()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(config.timeout)
            .no_redirects()
            .build("the LLM relay")?;
        Ok(Shared {
            upstream,
            token: new_token(),
            provider: config.provider,
            key_header,
            http,
            redactor: Redactor::new(key.map(str::to_string)),
            max_body_bytes: config.max_body_bytes,
            requests: AtomicU64::new(0),
            cut,
        })
    }
}

/// A fresh random token (122 random bits from the OS generator).
fn new_token() -> String {
    format!("sandcrab-relay-{}", uuid::Uuid::new_v4().simple())
}

// ---------------------------------------------------------------------------------------------
// Paths

/// The upstream base, split into the part requests are appended to and its path prefix.
#[derive(Debug, Clone)]
struct Upstream {
    /// The base without a trailing slash, e.g. `https://api.openai.com/v1`.
    base: String,
    /// Its path without a trailing slash: `/v1`, or `` for a bare host.
    prefix: String,
    origin: url::Origin,
}

impl Upstream {
    fn parse(base: &str) -> anyhow::Result<Upstream> {
        let base = base.trim().trim_end_matches('/');
        let url = Url::parse(base).with_context(|| format!("invalid upstream URL '{base}'"))?;
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            bail!("the upstream URL '{base}' must be http:// or https://");
        }
        if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
            bail!("the upstream URL '{base}' must not have a query, fragment or user");
        }
        Ok(Upstream {
            base: base.to_string(),
            prefix: url.path().trim_end_matches('/').to_string(),
            origin: url.origin(),
        })
    }

    /// The upstream URL for a request to `uri` on the relay, or `None` if it is not under
    /// the upstream API.
    fn target(&self, uri: &Uri) -> Option<Url> {
        let path = uri.path();
        if !is_plain_path(path) {
            return None;
        }
        let rest = path.strip_prefix(&self.prefix)?;
        if !(rest.is_empty() || rest.starts_with('/')) {
            return None;
        }
        let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        let url = Url::parse(&format!("{}{rest}{query}", self.base)).ok()?;
        let inside = url.origin() == self.origin && url.path().starts_with(&self.prefix);
        inside.then_some(url)
    }

    /// The path of `uri` after the upstream's prefix (call only once [`Upstream::target`]
    /// accepted it).
    fn endpoint<'a>(&self, uri: &'a Uri) -> &'a str {
        uri.path().strip_prefix(&self.prefix).unwrap_or_default()
    }
}

/// Whether `path` is absolute and free of `.`/`..` segments, backslashes and encoded slashes
/// (plain or percent-encoded), which a URL parser or the upstream could resolve to outside the
/// upstream prefix.
fn is_plain_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    let separators = ["\\", "%5c", "%2f"];
    if !path.starts_with('/') || separators.iter().any(|s| lower.contains(s)) {
        return false;
    }
    lower
        .split('/')
        .map(|segment| segment.replace("%2e", "."))
        .all(|segment| segment != "." && segment != "..")
}

// ---------------------------------------------------------------------------------------------
// Requests

/// Every request: forward it and log one line.
async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let response = forward(&shared, request).await;
    tracing::debug!(
        method = %method,
        path = %path,
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_millis() as u64,
        "llm relay request"
    );
    response
}

/// Checks, rewrites and forwards one request; returns the upstream's answer as a stream.
async fn forward(shared: &Shared, request: Request) -> Response {
    if !is_authorized(request.headers(), &shared.token) {
        let message =
            "missing or wrong relay token (send it as Authorization: Bearer or x-api-key)";
        return relay_error(StatusCode::UNAUTHORIZED, message);
    }
    let Some(url) = shared.upstream.target(request.uri()) else {
        return relay_error(StatusCode::NOT_FOUND, "not a path of the upstream API");
    };
    let endpoint = shared.upstream.endpoint(request.uri());
    if !shared.provider.allows(request.method(), endpoint) {
        return relay_error(StatusCode::FORBIDDEN, &shared.provider.refusal());
    }
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, shared.max_body_bytes).await else {
        let message = format!(
            "the request body is unreadable or over {} bytes",
            shared.max_body_bytes
        );
        return relay_error(StatusCode::PAYLOAD_TOO_LARGE, &message);
    };
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let headers = upstream_headers(&parts.headers, shared.key_header.as_ref());
    let mut cut = shared.cut.clone();
    tokio::select! {
        sent = send(shared, parts.method, url, headers, body) => match sent {
            Ok(answer) => stream_back(answer, shared.cut.clone()),
            Err(error) => upstream_failure(shared, &error),
        },
        _ = cut.wait_for(|cut| *cut) => {
            relay_error(StatusCode::SERVICE_UNAVAILABLE, "the LLM relay is stopping")
        }
    }
}

async fn send(
    shared: &Shared,
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Bytes,
) -> reqwest::Result<reqwest::Response> {
    let request = shared.http.request(method, url).headers(headers);
    request.body(body).send().await
}

/// Whether the request carries `token` as a bearer token or an `x-api-key`.
fn is_authorized(headers: &HeaderMap, token: &str) -> bool {
    let bearer = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(strip_bearer);
    let api_key = headers
        .get_all("x-api-key")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim);
    bearer
        .chain(api_key)
        .any(|presented| crate::http::same_secret(presented.as_bytes(), token.as_bytes()))
}

fn strip_bearer(value: &str) -> Option<&str> {
    let (scheme, credentials) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
}

/// Request headers a model call needs; every other one the sandbox sends is dropped (among
/// them `OpenAI-Organization`/`OpenAI-Project`, which would let the key act elsewhere).
const FORWARDED_HEADERS: [&str; 5] = [
    "content-type",
    "accept",
    "user-agent",
    "anthropic-version",
    "anthropic-beta",
];

/// The headers sent upstream: the allowed ones of the client's (not hop-by-hop ones, and never
/// the relay token), plus the real key.
fn upstream_headers(incoming: &HeaderMap, key: Option<&(HeaderName, HeaderValue)>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in &without_hop_by_hop(incoming) {
        if FORWARDED_HEADERS.contains(&name.as_str()) {
            headers.append(name.clone(), value.clone());
        }
    }
    if let Some((name, value)) = key {
        headers.insert(name.clone(), value.clone());
    }
    headers
}

/// Headers that describe one connection, not the message (RFC 9110 7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
];

/// `headers` without hop-by-hop headers, `upgrade`, and those `Connection` names.
fn without_hop_by_hop(headers: &HeaderMap) -> HeaderMap {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .collect();
    let mut kept = headers.clone();
    let dropped = HOP_BY_HOP.iter().copied().chain(["upgrade"]);
    for name in dropped.chain(named.iter().map(String::as_str)) {
        kept.remove(name);
    }
    kept
}

// ---------------------------------------------------------------------------------------------
// Responses

/// The upstream's answer with its status, headers (minus hop-by-hop and `content-length`) and
/// body streamed as it arrives, until `cut` says stop.
fn stream_back(answer: reqwest::Response, cut: watch::Receiver<bool>) -> Response {
    let status = answer.status();
    let mut headers = without_hop_by_hop(answer.headers());
    headers.remove(header::CONTENT_LENGTH);
    let body = until_cut(answer.bytes_stream(), cut);
    let mut response = Body::from_stream(body).into_response();
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// `chunks` until they end, or until `cut` turns `true` or closes: then one error, which
/// aborts the connection so the client cannot take a cut answer for a whole one.
fn until_cut(
    chunks: impl Stream<Item = reqwest::Result<Bytes>> + Send + 'static,
    cut: watch::Receiver<bool>,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let state = (Box::pin(chunks), cut, false);
    futures_util::stream::unfold(state, |(mut chunks, mut cut, done)| async move {
        if done {
            return None;
        }
        let next = tokio::select! {
            chunk = chunks.next() => chunk.map(|chunk| chunk.map_err(io::Error::other)),
            _ = cut.wait_for(|cut| *cut) => None,
        };
        let is_cut = next.is_none() && cut_now(&cut);
        match next {
            Some(chunk) => Some((chunk, (chunks, cut, false))),
            None if is_cut => {
                let error = io::Error::other("the LLM relay stopped");
                Some((Err(error), (chunks, cut, true)))
            }
            None => None,
        }
    })
}

/// Whether `cut` is `true` or its sender is gone.
fn cut_now(cut: &watch::Receiver<bool>) -> bool {
    *cut.borrow() || cut.has_changed().is_err()
}

/// 504 for a timeout, 502 otherwise; the message is scrubbed of the key.
fn upstream_failure(shared: &Shared, error: &reqwest::Error) -> Response {
    let status = if error.is_timeout() {
        StatusCode::GATEWAY_TIMEOUT
    } else {
        StatusCode::BAD_GATEWAY
    };
    let message = format!(
        "the LLM relay could not reach the upstream: {}",
        crate::http::error_chain(error)
    );
    relay_error(status, &shared.redactor.redact(&message))
}

/// A JSON error both OpenAI and Anthropic clients can read.
fn relay_error(status: StatusCode, message: &str) -> Response {
    let body = json!({
        "type": "error",
        "error": { "type": "relay_error", "message": message },
    });
    (status, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(base: &str, uri: &str) -> Option<String> {
        let upstream = Upstream::parse(base).unwrap();
        upstream
            .target(&uri.parse::<Uri>().unwrap())
            .map(String::from)
    }

    #[test]
    fn paths_map_under_the_upstream_prefix() {
        let openai = "https://api.openai.com/v1/";
        let completions = target(openai, "/v1/chat/completions?x=1");
        assert_eq!(
            completions.as_deref(),
            Some("https://api.openai.com/v1/chat/completions?x=1")
        );
        assert_eq!(target(openai, "/v2/models"), None);
        assert_eq!(target(openai, "/v1x/models"), None);
        assert_eq!(target(openai, "/v1/../admin"), None);
        assert_eq!(target(openai, "/v1/%2E%2e/admin"), None);
        assert_eq!(target(openai, "/v1/..%2Fadmin"), None);
        let anthropic = target("https://api.anthropic.com", "/v1/messages");
        assert_eq!(
            anthropic.as_deref(),
            Some("https://api.anthropic.com/v1/messages")
        );
    }

    #[test]
    fn tokens_are_read_from_either_header() {
        let mut headers = HeaderMap::new();
        assert!(!is_authorized(&headers, "tok"));
        headers.insert("authorization", "bearer tok".parse().unwrap());
        assert!(is_authorized(&headers, "tok"));
        headers.insert("authorization", "Bearer tok2".parse().unwrap());
        assert!(!is_authorized(&headers, "tok"));
        headers.insert("x-api-key", "tok".parse().unwrap());
        assert!(is_authorized(&headers, "tok"));
    }

    /// A log sink for `tracing_subscriber`.
    #[derive(Clone, Default)]
    struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

    impl io::Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// Here, not in `tests/llm_relay.rs`: a scoped subscriber misses events whose callsite
    /// another test thread registered first, and no other unit test goes through the relay.
    #[tokio::test]
    async fn requests_are_logged_in_one_line_without_secrets() {
        const KEY: &str = "sk-never-in-logs";
        let capture = Capture::default();
        let sink = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = format!("http://{}/v1", closed.local_addr().unwrap());
        drop(closed);
        let bind = "127.0.0.1:0".parse().unwrap();
        let config = RelayConfig::new(upstream, Some(KEY.into()), RelayProvider::OpenAi, bind);
        let relay = start(config).await.unwrap();
        let response = reqwest::Client::new()
            .post(format!("{}/chat/completions?q=1", relay.base_url()))
            .bearer_auth(relay.token())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 502);
        let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains("llm relay request"))
            .collect();
        assert_eq!(lines.len(), 1, "{logs}");
        for part in [
            "method=POST",
            "path=/v1/chat/completions ",
            "status=502",
            "latency_ms=",
        ] {
            assert!(lines[0].contains(part), "{part} in {}", lines[0]);
        }
        assert!(
            !logs.contains(KEY) && !logs.contains(relay.token()),
            "{logs}"
        );
    }

    #[test]
    fn connection_named_headers_are_dropped() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", "keep-alive, x-private".parse().unwrap());
        headers.insert("x-private", "1".parse().unwrap());
        headers.insert("x-public", "1".parse().unwrap());
        let kept = without_hop_by_hop(&headers);
        assert!(kept.get("x-private").is_none() && kept.get("connection").is_none());
        assert!(kept.get("x-public").is_some());
    }
}
