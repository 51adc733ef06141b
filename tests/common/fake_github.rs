//! A fake GitHub REST API on 127.0.0.1 for the CI runner's tests: the few endpoints sandcrab
//! calls, with state (comments keep their bodies), configurable answers (collaborator
//! permissions, the pull request, failures to inject) and a record of every request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};

/// One recorded request.
#[derive(Debug, Clone)]
pub struct GhRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// The raw body text (to scan for secrets).
    pub raw: String,
    pub body: Value,
}

/// An answer to inject: the next `times` requests matching `method` and a path ending with
/// `path_suffix` get `status` and `body` (with `headers`).
#[derive(Debug, Clone)]
pub struct Fault {
    pub method: &'static str,
    pub path_suffix: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    pub times: usize,
}

#[derive(Default)]
pub struct Config {
    /// login → permission (`admin`, `write`, `read`...); absent: 404.
    pub permissions: HashMap<String, String>,
    /// `GET /repos/{repo}/pulls/{n}` answers this.
    pub pull_request: Option<Value>,
    pub faults: Vec<Fault>,
}

#[derive(Clone)]
struct AppState {
    config: Arc<Mutex<Config>>,
    requests: Arc<Mutex<Vec<GhRequest>>>,
    next_id: Arc<Mutex<u64>>,
}

pub struct FakeGithub {
    pub addr: SocketAddr,
    pub config: Arc<Mutex<Config>>,
    requests: Arc<Mutex<Vec<GhRequest>>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl FakeGithub {
    pub fn start(config: Config) -> Self {
        let state = AppState {
            config: Arc::new(Mutex::new(config)),
            requests: Arc::new(Mutex::new(Vec::new())),
            next_id: Arc::new(Mutex::new(1000)),
        };
        let (config, requests) = (state.config.clone(), state.requests.clone());
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app = Router::new().fallback(handle).with_state(state);
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = shutdown_rx.await;
                    })
                    .await;
            });
        });
        FakeGithub {
            addr: addr_rx.recv().unwrap(),
            config,
            requests,
            _shutdown: shutdown,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<GhRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// The requests with `method` whose path ends with `suffix`.
    pub fn matching(&self, method: &str, suffix: &str) -> Vec<GhRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path.ends_with(suffix))
            .collect()
    }
}

async fn handle(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw = String::from_utf8_lossy(&body).into_owned();
    let body: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
    let path = uri.path().to_string();
    state.requests.lock().unwrap().push(GhRequest {
        method: method.to_string(),
        path: path.clone(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect(),
        raw,
        body: body.clone(),
    });
    if let Some(fault) = take_fault(&state, method.as_str(), &path) {
        let mut response = (
            StatusCode::from_u16(fault.status).unwrap(),
            axum::Json(fault.body),
        )
            .into_response();
        for (k, v) in fault.headers {
            response.headers_mut().insert(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        return response;
    }
    let (status, answer) = answer(&state, method.as_str(), &path, &body);
    (StatusCode::from_u16(status).unwrap(), axum::Json(answer)).into_response()
}

fn take_fault(state: &AppState, method: &str, path: &str) -> Option<Fault> {
    let mut config = state.config.lock().unwrap();
    let fault = config
        .faults
        .iter_mut()
        .find(|f| f.times > 0 && f.method == method && path.ends_with(&f.path_suffix))?;
    fault.times -= 1;
    Some(fault.clone())
}

fn answer(state: &AppState, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let id = || {
        let mut next = state.next_id.lock().unwrap();
        *next += 1;
        *next
    };
    let web = |p: &str| format!("https://github.example/{p}");
    match (method, parts.as_slice()) {
        ("GET", ["repos", _, _, "collaborators", user, "permission"]) => {
            match state.config.lock().unwrap().permissions.get(*user) {
                Some(p) => (
                    200,
                    json!({"permission": p, "role_name": p, "user": {"login": user}}),
                ),
                None => (404, json!({"message": "Not Found"})),
            }
        }
        ("GET", ["repos", o, r]) => (
            200,
            json!({"full_name": format!("{o}/{r}"), "default_branch": "main"}),
        ),
        ("POST", ["repos", o, r, "issues", n, "comments"]) => {
            let id = id();
            (
                201,
                json!({"id": id, "html_url": web(&format!("{o}/{r}/issues/{n}#issuecomment-{id}")), "body": body["body"]}),
            )
        }
        ("PATCH", ["repos", o, r, "issues", "comments", cid]) => (
            200,
            json!({"id": cid.parse::<u64>().unwrap_or(0), "html_url": web(&format!("{o}/{r}/issues#issuecomment-{cid}")), "body": body["body"]}),
        ),
        ("GET", ["repos", _, _, "pulls", _]) => {
            match state.config.lock().unwrap().pull_request.clone() {
                Some(pr) => (200, pr),
                None => (404, json!({"message": "Not Found"})),
            }
        }
        ("POST", ["repos", o, r, "pulls"]) => (
            201,
            json!({"number": 77, "html_url": web(&format!("{o}/{r}/pull/77"))}),
        ),
        ("POST", ["repos", o, r, "pulls", n, "reviews"]) => {
            let id = id();
            (
                200,
                json!({"id": id, "html_url": web(&format!("{o}/{r}/pull/{n}#pullrequestreview-{id}"))}),
            )
        }
        _ => (404, json!({"message": "Not Found"})),
    }
}
