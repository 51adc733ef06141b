//! Server details, open without a key as OpenHands serves them: `GET /alive` and `/health`
//! (`{"status":"ok"}`), `/ready` (`{"status":"ready"}`), `/server_info` and `/` (`ServerInfo`:
//! uptime, idle time, versions, tools). Idle time counts from the last API request, which the
//! `track_activity` middleware records.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{json, Value};

use super::AppState;

/// The OpenHands agent-server API version this server speaks.
pub const OPENHANDS_API_VERSION: &str = "1.58.2";

/// The tools a conversation on this server can use.
pub const USABLE_TOOLS: &[&str] = &["terminal", "file_editor", "task_tracker", "finish", "think"];

/// When the server was last used (an API request, or a caller's `touch`).
pub struct Activity {
    origin: Instant,
    /// Milliseconds from `origin` to the last use.
    last: AtomicU64,
}

impl Activity {
    pub fn new() -> Self {
        Activity {
            origin: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    /// Records a use now.
    pub fn touch(&self) {
        let now = self.origin.elapsed().as_millis() as u64;
        self.last.fetch_max(now, Ordering::Relaxed);
    }

    /// The time since the last use.
    pub fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(last)
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(server_info))
        .route("/alive", get(ok))
        .route("/health", get(ok))
        .route("/ready", get(ready))
        .route("/server_info", get(server_info))
}

/// Middleware: API requests (not probes of the routes above) count as activity, when they
/// arrive and when they are answered (a long command is activity too).
pub async fn track_activity(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let counts = path.starts_with("/api/") || path.starts_with("/sockets/");
    if counts {
        state.activity.touch();
    }
    let response = next.run(request).await;
    if counts {
        state.activity.touch();
    }
    response
}

async fn ok() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Ready as soon as it listens: the server initializes before binding.
async fn ready() -> Json<Value> {
    Json(json!({"status": "ready"}))
}

/// OpenHands' `ServerInfo`, its fields in OpenHands' order.
#[derive(Serialize)]
struct ServerInfo {
    uptime: f64,
    idle_time: f64,
    title: &'static str,
    version: &'static str,
    sdk_version: &'static str,
    tools_version: &'static str,
    workspace_version: &'static str,
    build_git_sha: &'static str,
    build_git_ref: &'static str,
    usable_tools: &'static [&'static str],
    runtime_idle_timeout_seconds: Option<f64>,
    conversation_runtime: &'static str,
    available_conversation_runtimes: [&'static str; 0],
    capabilities: [&'static str; 0],
    app_backend_ingress_url: Option<String>,
    max_foreground_terminal_timeout_seconds: Option<f64>,
}

/// `ServerInfo`. Times are whole seconds (as floats), as OpenHands reports them. No Python, so
/// no `python_version`; no `/docs`, so no `docs` or `redoc`.
async fn server_info(State(state): State<AppState>) -> Json<ServerInfo> {
    let version = env!("CARGO_PKG_VERSION");
    Json(ServerInfo {
        uptime: whole_seconds(state.started.elapsed()),
        idle_time: whole_seconds(state.activity.idle()),
        title: "sandcrab agent-server",
        version,
        sdk_version: OPENHANDS_API_VERSION,
        tools_version: version,
        workspace_version: version,
        build_git_sha: option_env!("SANDCRAB_GIT_SHA").unwrap_or("unknown"),
        build_git_ref: option_env!("SANDCRAB_GIT_REF").unwrap_or("unknown"),
        usable_tools: USABLE_TOOLS,
        runtime_idle_timeout_seconds: state.config.idle_timeout.map(|t| t.as_secs_f64()),
        conversation_runtime: "local",
        available_conversation_runtimes: [],
        capabilities: [],
        app_backend_ingress_url: None,
        max_foreground_terminal_timeout_seconds: None,
    })
}

fn whole_seconds(d: Duration) -> f64 {
    d.as_secs() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_time_restarts_at_each_touch() {
        let activity = Activity::new();
        std::thread::sleep(Duration::from_millis(30));
        assert!(activity.idle() >= Duration::from_millis(25));
        activity.touch();
        assert!(activity.idle() < Duration::from_millis(25));
    }
}
