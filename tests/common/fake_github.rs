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
    /// Answers given *after* the fake did the work (created the comment, PR or review), as
    /// when GitHub fails between creating an object and answering.
    pub faults_after: Vec<Fault>,
}

/// What the fake created: comments (issue number), pull requests (head), reviews (PR number).
#[derive(Debug, Clone, Default)]
pub struct Created {
    pub comments: Vec<(u64, Value)>,
    pub pulls: Vec<Value>,
    pub reviews: Vec<(u64, Value)>,
}

#[derive(Clone)]
struct AppState {
    config: Arc<Mutex<Config>>,
    requests: Arc<Mutex<Vec<GhRequest>>>,
    next_id: Arc<Mutex<u64>>,
    created: Arc<Mutex<Created>>,
}

pub struct FakeGithub {
    pub addr: SocketAddr,
    pub config: Arc<Mutex<Config>>,
    requests: Arc<Mutex<Vec<GhRequest>>>,
    pub created: Arc<Mutex<Created>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl FakeGithub {
    pub fn start(config: Config) -> Self {
        let state = AppState {
            config: Arc::new(Mutex::new(config)),
            requests: Arc::new(Mutex::new(Vec::new())),
            next_id: Arc::new(Mutex::new(1000)),
            created: Arc::default(),
        };
        let (config, requests) = (state.config.clone(), state.requests.clone());
        let created = state.created.clone();
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
            created,
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
    let fault = take_fault(&state, method.as_str(), &path, false);
    let fault = match fault {
        Some(fault) => Some(fault),
        None => {
            let (status, answer) = answer(&state, method.as_str(), &uri, &body);
            match take_fault(&state, method.as_str(), &path, true) {
                Some(after) => Some(after),
                None => {
                    return (StatusCode::from_u16(status).unwrap(), axum::Json(answer))
                        .into_response()
                }
            }
        }
    };
    if let Some(fault) = fault {
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
    unreachable!("a fault or an answer")
}

fn take_fault(state: &AppState, method: &str, path: &str, after: bool) -> Option<Fault> {
    let mut config = state.config.lock().unwrap();
    let faults = if after {
        &mut config.faults_after
    } else {
        &mut config.faults
    };
    let fault = faults
        .iter_mut()
        .find(|f| f.times > 0 && f.method == method && path.ends_with(&f.path_suffix))?;
    fault.times -= 1;
    Some(fault.clone())
}

fn answer(state: &AppState, method: &str, uri: &Uri, body: &Value) -> (u16, Value) {
    let path = uri.path();
    let query = uri.query().unwrap_or("");
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
            let comment = json!({"id": id, "html_url": web(&format!("{o}/{r}/issues/{n}#issuecomment-{id}")), "body": body["body"]});
            let number = n.parse().unwrap_or(0);
            let mut created = state.created.lock().unwrap();
            created.comments.push((number, comment.clone()));
            (201, comment)
        }
        ("GET", ["repos", _, _, "issues", n, "comments"]) => {
            let number: u64 = n.parse().unwrap_or(0);
            let created = state.created.lock().unwrap();
            let list: Vec<Value> = created
                .comments
                .iter()
                .filter(|(k, _)| *k == number)
                .map(|(_, c)| c.clone())
                .collect();
            (200, Value::Array(list))
        }
        ("GET", ["repos", _, _, "pulls"]) => {
            let head = url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "head")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            let branch = head.split_once(':').map_or(head.as_str(), |(_, b)| b);
            let created = state.created.lock().unwrap();
            let list: Vec<Value> = created
                .pulls
                .iter()
                .filter(|p| head.is_empty() || p["head"]["ref"] == branch)
                .cloned()
                .collect();
            (200, Value::Array(list))
        }
        ("GET", ["repos", _, _, "pulls", n, "reviews"]) => {
            let number: u64 = n.parse().unwrap_or(0);
            let created = state.created.lock().unwrap();
            let list: Vec<Value> = created
                .reviews
                .iter()
                .filter(|(k, _)| *k == number)
                .map(|(_, c)| c.clone())
                .collect();
            (200, Value::Array(list))
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
        ("POST", ["repos", o, r, "pulls"]) => {
            let mut created = state.created.lock().unwrap();
            let number = 77 + created.pulls.len();
            let pull = json!({"number": number, "html_url": web(&format!("{o}/{r}/pull/{number}")),
                "head": {"ref": body["head"]}, "title": body["title"]});
            created.pulls.push(pull.clone());
            (201, pull)
        }
        ("POST", ["repos", o, r, "pulls", n, "reviews"]) => {
            let id = id();
            let review = json!({"id": id, "html_url": web(&format!("{o}/{r}/pull/{n}#pullrequestreview-{id}")), "body": body["body"]});
            let number = n.parse().unwrap_or(0);
            state
                .created
                .lock()
                .unwrap()
                .reviews
                .push((number, review.clone()));
            (200, review)
        }
        _ => (404, json!({"message": "Not Found"})),
    }
}
