//! A fake Runtime API on loopback that really provisions: `POST /start` runs the requested
//! command as a process (the image names a local program: `IMAGE` below is the test's
//! `sandcrab`), with the requested environment and its own session key; `--port 60000`
//! becomes a free port and `0.0.0.0` becomes 127.0.0.1 (all "pods" share this host's
//! loopback). `pod_status` is `pending` for the first `pending_polls` session polls. Pause is
//! SIGSTOP, resume SIGCONT, stop SIGKILL. Every request is recorded with its JSON body.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::sandbox_proc::{uuid_like, SandboxProc};

pub const RUNTIME_KEY: &str = "runtime-key-456";
/// The one image the fake can "pull".
pub const IMAGE: &str = "registry.example/sandcrab:test";

#[derive(Debug, Clone)]
pub struct RuntimeRequest {
    pub method: String,
    pub path: String,
    pub api_key: Option<String>,
    pub body: Value,
}

#[derive(Debug, Clone, Default)]
pub struct RuntimeBehaviour {
    pub pending_polls: u32,
}

pub struct Runtime {
    pub session_id: String,
    pub status: String,
    pub pod_status: String,
    pub polls: u32,
    pub proc: Option<SandboxProc>,
    pub logs: String,
}

#[derive(Default)]
pub struct RuntimeState {
    pub requests: Vec<RuntimeRequest>,
    /// runtime id → runtime
    pub runtimes: BTreeMap<String, Runtime>,
    pub behaviour: RuntimeBehaviour,
}

type Shared = Arc<Mutex<RuntimeState>>;

pub struct FakeRuntimeApi {
    pub addr: SocketAddr,
    pub state: Shared,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl FakeRuntimeApi {
    pub fn start(behaviour: RuntimeBehaviour) -> Self {
        let state: Shared = Arc::new(Mutex::new(RuntimeState {
            behaviour,
            ..Default::default()
        }));
        let app = Router::new()
            .route("/start", post(start))
            .route("/sessions/{id}", get(session))
            .route("/pause", post(pause))
            .route("/resume", post(resume))
            .route("/stop", post(stop))
            .with_state(state.clone());
        let (addr, shutdown) = super::sandbox_proc::serve_in_thread(app);
        FakeRuntimeApi {
            addr,
            state,
            _shutdown: shutdown,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<RuntimeRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn calls(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }

    /// (status, whether its process runs) of the session's runtime.
    pub fn session_state(&self, session_id: &str) -> Option<(String, bool)> {
        let mut st = self.state.lock().unwrap();
        st.runtimes
            .values_mut()
            .find(|r| r.session_id == session_id)
            .map(|r| {
                (
                    r.status.clone(),
                    r.proc.as_mut().is_some_and(|p| p.running()),
                )
            })
    }

    pub fn with_proc<T>(&self, session_id: &str, f: impl FnOnce(&SandboxProc) -> T) -> T {
        let st = self.state.lock().unwrap();
        let rt = st
            .runtimes
            .values()
            .find(|r| r.session_id == session_id)
            .expect("a runtime");
        f(rt.proc.as_ref().expect("a live runtime"))
    }
}

fn record(state: &Shared, method: &str, path: &str, headers: &HeaderMap, body: &Bytes) -> bool {
    let api_key = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let ok = api_key.as_deref() == Some(RUNTIME_KEY);
    state.lock().unwrap().requests.push(RuntimeRequest {
        method: method.into(),
        path: path.into(),
        api_key,
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
    });
    ok
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"detail": "Invalid API key"})),
    )
        .into_response()
}

fn runtime_json(id: &str, r: &Runtime) -> Value {
    json!({
        "runtime_id": id, "session_id": r.session_id, "status": r.status,
        "pod_status": r.pod_status,
        "url": r.proc.as_ref().map_or("http://127.0.0.1:9".to_string(), |p| p.url.clone()),
        "session_api_key": r.proc.as_ref().map(|p| p.key.clone()),
        "restart_count": 0, "pod_logs": r.logs,
    })
}

/// The command line of `body`, as this host runs it: the image's program, loopback, port 0.
fn command_line(body: &Value) -> Result<Vec<String>, String> {
    let command = body["command"].as_str().ok_or("no command")?;
    let mut words = command.split_whitespace();
    words.next().ok_or("empty command")?;
    Ok(words
        .map(|w| match w {
            "0.0.0.0" => "127.0.0.1".to_string(),
            "60000" => "0".to_string(),
            other => other.to_string(),
        })
        .collect())
}

async fn start(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if !record(&state, "POST", "/start", &headers, &body) {
        return unauthorized();
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    let session_id = body["session_id"].as_str().unwrap_or("").to_string();
    let env: Vec<(String, String)> = body["environment"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
        .collect();
    let (proc, pod_status, logs) = if body["image"] != IMAGE {
        (
            None,
            "failed",
            format!(
                "Failed to pull image \"{}\": not found",
                body["image"].as_str().unwrap_or("")
            ),
        )
    } else {
        let program = Path::new(env!("CARGO_BIN_EXE_sandcrab"));
        match command_line(&body).and_then(|args| SandboxProc::start(program, &args, &env)) {
            Ok(p) => (Some(p), "pending", String::new()),
            Err(e) => (None, "crashloopbackoff", e),
        }
    };
    let id = format!("rt-{}", uuid_like());
    let runtime = Runtime {
        session_id,
        status: "running".into(),
        pod_status: pod_status.into(),
        polls: 0,
        proc,
        logs,
    };
    let answer = runtime_json(&id, &runtime);
    state.lock().unwrap().runtimes.insert(id, runtime);
    Json(answer).into_response()
}

async fn session(
    State(state): State<Shared>,
    headers: HeaderMap,
    UrlPath(sid): UrlPath<String>,
) -> Response {
    if !record(
        &state,
        "GET",
        &format!("/sessions/{sid}"),
        &headers,
        &Bytes::new(),
    ) {
        return unauthorized();
    }
    let mut st = state.lock().unwrap();
    let pending_polls = st.behaviour.pending_polls;
    let found = st
        .runtimes
        .iter_mut()
        .rev()
        .find(|(_, r)| r.session_id == sid && r.status != "stopped");
    let Some((id, r)) = found else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"detail": "Session not found"})),
        )
            .into_response();
    };
    if r.pod_status == "pending" {
        r.polls += 1;
        if r.polls > pending_polls {
            r.pod_status = "ready".into();
        }
    }
    Json(runtime_json(id, r)).into_response()
}

/// Applies `f` to the runtime named in the body; 404 when unknown.
fn on_runtime(
    state: &Shared,
    path: &str,
    headers: &HeaderMap,
    body: &Bytes,
    f: impl FnOnce(&mut Runtime),
) -> Response {
    if !record(state, "POST", path, headers, body) {
        return unauthorized();
    }
    let body: Value = serde_json::from_slice(body).unwrap_or_default();
    let id = body["runtime_id"].as_str().unwrap_or("");
    let mut st = state.lock().unwrap();
    match st.runtimes.get_mut(id) {
        Some(r) => {
            f(r);
            Json(json!({"runtime_id": id, "status": r.status})).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"detail": "Runtime not found"})),
        )
            .into_response(),
    }
}

async fn pause(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    on_runtime(&state, "/pause", &headers, &body, |r| {
        r.proc.iter().for_each(|p| p.pause());
        r.status = "paused".into();
    })
}

async fn resume(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    on_runtime(&state, "/resume", &headers, &body, |r| {
        r.proc.iter().for_each(|p| p.resume());
        r.status = "running".into();
    })
}

async fn stop(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    on_runtime(&state, "/stop", &headers, &body, |r| {
        if let Some(mut p) = r.proc.take() {
            p.stop();
        }
        r.status = "stopped".into();
    })
}

impl Drop for FakeRuntimeApi {
    fn drop(&mut self) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for r in st.runtimes.values_mut() {
            if let Some(mut p) = r.proc.take() {
                p.stop();
            }
        }
    }
}
