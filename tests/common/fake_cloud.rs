//! A fake OpenHands Cloud API on loopback that really provisions: each sandbox is a
//! `sandcrab serve` process it starts (STARTING for the first `starting_polls` status polls),
//! pauses with SIGSTOP, resumes with SIGCONT and kills on delete. Routes and fields as
//! `OpenHandsCloudWorkspace` (1.58.2) uses them; every request is recorded.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::sandbox_proc::{uuid_like, SandboxProc};

pub const CLOUD_KEY: &str = "cloud-key-123";

/// A recorded request.
#[derive(Debug, Clone)]
pub struct CloudRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub authorization: Option<String>,
    pub session_key: Option<String>,
}

/// How the fake behaves.
#[derive(Debug, Clone, Default)]
pub struct CloudBehaviour {
    /// Status polls answered STARTING before RUNNING.
    pub starting_polls: u32,
    /// Every new sandbox ends in ERROR instead of RUNNING.
    pub error: bool,
    /// RUNNING sandboxes expose no AGENT_SERVER URL.
    pub no_agent_server: bool,
    /// No pause endpoint (404), as the SDK assumes.
    pub no_pause: bool,
    /// The account's LLM settings (`llm_model`, `llm_api_key`, `llm_base_url`).
    pub llm: Value,
    /// The account's secrets: name → value.
    pub secrets: BTreeMap<String, String>,
}

pub struct Sandbox {
    pub status: String,
    pub polls: u32,
    pub proc: Option<SandboxProc>,
    pub spec: Option<String>,
}

#[derive(Default)]
pub struct CloudState {
    pub requests: Vec<CloudRequest>,
    pub sandboxes: BTreeMap<String, Sandbox>,
    pub behaviour: CloudBehaviour,
}

type Shared = Arc<Mutex<CloudState>>;

pub struct FakeCloud {
    pub addr: SocketAddr,
    pub state: Shared,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl FakeCloud {
    pub fn start(behaviour: CloudBehaviour) -> Self {
        let state: Shared = Arc::new(Mutex::new(CloudState {
            behaviour,
            ..Default::default()
        }));
        let app = Router::new()
            .route("/api/v1/sandboxes", post(create).get(list))
            .route("/api/v1/sandboxes/{id}", delete(remove))
            .route("/api/v1/sandboxes/{id}/resume", post(resume))
            .route("/api/v1/sandboxes/{id}/pause", post(pause))
            .route("/api/v1/sandboxes/{id}/settings/secrets", get(secrets))
            .route(
                "/api/v1/sandboxes/{id}/settings/secrets/{name}",
                get(secret),
            )
            .route("/api/v1/users/me", get(me))
            .layer(axum::middleware::from_fn_with_state(state.clone(), record))
            .with_state(state.clone());
        let (addr, shutdown) = super::sandbox_proc::serve_in_thread(app);
        FakeCloud {
            addr,
            state,
            _shutdown: shutdown,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<CloudRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    /// `METHOD path` of every request, in order.
    pub fn calls(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    pub fn status_of(&self, id: &str) -> Option<String> {
        self.state
            .lock()
            .unwrap()
            .sandboxes
            .get(id)
            .map(|s| s.status.clone())
    }

    /// The ids of sandboxes with a live process.
    pub fn live(&self) -> Vec<String> {
        let mut state = self.state.lock().unwrap();
        state
            .sandboxes
            .iter_mut()
            .filter_map(|(id, s)| {
                let live = s.proc.as_mut().is_some_and(|p| p.running());
                live.then(|| id.clone())
            })
            .collect()
    }

    /// Runs `f` on a sandbox's process (pause it from the test, read its pid...).
    pub fn with_proc<T>(&self, id: &str, f: impl FnOnce(&SandboxProc) -> T) -> T {
        let state = self.state.lock().unwrap();
        f(state.sandboxes[id].proc.as_ref().expect("a live sandbox"))
    }
}

async fn record(
    State(state): State<Shared>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let recorded = {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        };
        CloudRequest {
            method: request.method().to_string(),
            path: request.uri().path().to_string(),
            query: request.uri().query().unwrap_or("").to_string(),
            authorization: header("authorization"),
            session_key: header("x-session-api-key"),
        }
    };
    state.lock().unwrap().requests.push(recorded);
    next.run(request).await
}

fn bearer_ok(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(&format!("Bearer {CLOUD_KEY}"))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"detail": "Not authenticated"})),
    )
        .into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"detail": "Sandbox not found"})),
    )
        .into_response()
}

fn sandbox_json(id: &str, s: &Sandbox, hide_server: bool) -> Value {
    let running = s.status == "RUNNING";
    let (url, key) = match &s.proc {
        Some(p) if running => (Some(p.url.clone()), Some(p.key.clone())),
        Some(p) => (None, Some(p.key.clone())),
        None => (None, None),
    };
    let exposed = match url {
        Some(url) if !hide_server => json!([
            {"name": "AGENT_SERVER", "url": url, "port": 60000},
            {"name": "VSCODE", "url": "http://127.0.0.1:1/vscode", "port": 60001}
        ]),
        Some(_) => json!([{"name": "VSCODE", "url": "http://127.0.0.1:1", "port": 60001}]),
        None => Value::Null,
    };
    json!({
        "id": id, "created_by_user_id": "user-1", "sandbox_spec_id": s.spec,
        "status": s.status, "session_api_key": key, "exposed_urls": exposed,
        "created_at": "2026-11-24T00:00:00Z"
    })
}

async fn create(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if !bearer_ok(&headers) {
        return unauthorized();
    }
    let args: Vec<String> = ["serve", "--port", "0", "--working-dir", "/tmp"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let proc = match SandboxProc::start(Path::new(env!("CARGO_BIN_EXE_sandcrab")), &args, &[]) {
        Ok(p) => p,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    };
    let id = uuid_like();
    let mut st = state.lock().unwrap();
    let sandbox = Sandbox {
        status: "STARTING".into(),
        polls: 0,
        proc: Some(proc),
        spec: q.get("sandbox_spec_id").cloned(),
    };
    let body = sandbox_json(&id, &sandbox, false);
    st.sandboxes.insert(id, sandbox);
    Json(body).into_response()
}

async fn list(
    State(state): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if !bearer_ok(&headers) {
        return unauthorized();
    }
    let mut st = state.lock().unwrap();
    let behaviour = st.behaviour.clone();
    let id = q.get("id").cloned().unwrap_or_default();
    let Some(s) = st.sandboxes.get_mut(&id) else {
        return Json(json!([null])).into_response();
    };
    if s.status == "STARTING" {
        s.polls += 1;
        if s.polls > behaviour.starting_polls {
            s.status = if behaviour.error {
                "ERROR".into()
            } else {
                "RUNNING".into()
            };
        }
    }
    Json(json!([sandbox_json(&id, s, behaviour.no_agent_server)])).into_response()
}

async fn remove(
    State(state): State<Shared>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    if !bearer_ok(&headers) {
        return unauthorized();
    }
    let mut st = state.lock().unwrap();
    match st.sandboxes.get_mut(&id) {
        Some(s) => {
            if let Some(mut p) = s.proc.take() {
                p.stop();
            }
            s.status = "MISSING".into();
            Json(json!(true)).into_response()
        }
        None => not_found(),
    }
}

async fn resume(
    State(state): State<Shared>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    if !bearer_ok(&headers) {
        return unauthorized();
    }
    let mut st = state.lock().unwrap();
    match st.sandboxes.get_mut(&id) {
        Some(s) if s.proc.is_some() => {
            s.proc.as_ref().unwrap().resume();
            if s.status == "PAUSED" {
                s.status = "RUNNING".into();
            }
            Json(json!(true)).into_response()
        }
        _ => not_found(),
    }
}

async fn pause(
    State(state): State<Shared>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    if !bearer_ok(&headers) {
        return unauthorized();
    }
    let mut st = state.lock().unwrap();
    if st.behaviour.no_pause {
        return (StatusCode::NOT_FOUND, Json(json!({"detail": "Not Found"}))).into_response();
    }
    match st.sandboxes.get_mut(&id) {
        Some(s) if s.proc.is_some() => {
            s.proc.as_ref().unwrap().pause();
            s.status = "PAUSED".into();
            Json(json!(true)).into_response()
        }
        _ => not_found(),
    }
}

/// Whether `headers` carry the session key of sandbox `id`.
fn session_ok(st: &CloudState, id: &str, headers: &HeaderMap) -> bool {
    let given = headers
        .get("x-session-api-key")
        .and_then(|v| v.to_str().ok());
    st.sandboxes
        .get(id)
        .and_then(|s| s.proc.as_ref())
        .is_some_and(|p| Some(p.key.as_str()) == given)
}

async fn secrets(
    State(state): State<Shared>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let st = state.lock().unwrap();
    if !session_ok(&st, &id, &headers) {
        return unauthorized();
    }
    let items: Vec<Value> = st
        .behaviour
        .secrets
        .keys()
        .map(|n| json!({"name": n, "description": format!("the {n}")}))
        .collect();
    Json(json!({"secrets": items})).into_response()
}

async fn secret(
    State(state): State<Shared>,
    headers: HeaderMap,
    UrlPath((id, name)): UrlPath<(String, String)>,
) -> Response {
    let st = state.lock().unwrap();
    if !session_ok(&st, &id, &headers) {
        return unauthorized();
    }
    match st.behaviour.secrets.get(&name) {
        Some(v) => v.clone().into_response(),
        None => not_found(),
    }
}

async fn me(State(state): State<Shared>, headers: HeaderMap, uri: Uri, method: Method) -> Response {
    let _ = (uri, method);
    if !bearer_ok(&headers) {
        return unauthorized();
    }
    let st = state.lock().unwrap();
    let belongs = st.sandboxes.keys().any(|id| session_ok(&st, id, &headers));
    if !belongs {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({"detail": "session key does not belong to the user"})),
        )
            .into_response();
    }
    let mut me = json!({"id": "user-1", "email": "ci@example.com"});
    for (k, v) in st.behaviour.llm.as_object().into_iter().flatten() {
        me[k] = v.clone();
    }
    Json(me).into_response()
}

impl Drop for FakeCloud {
    fn drop(&mut self) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for s in st.sandboxes.values_mut() {
            if let Some(mut p) = s.proc.take() {
                p.stop();
            }
        }
    }
}
