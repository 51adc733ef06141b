//! `RuntimeApiWorkspace`: a runtime (a pod running an agent-server) from a Runtime API, as
//! OpenHands' `APIRemoteWorkspace` (openhands-workspace 1.58.2) drives one:
//! - every call carries `X-API-Key: RUNTIME_API_KEY`;
//! - attach: `GET /sessions/{session_id}`; a `status` of `running` or `paused` is attached to
//!   (a paused one is resumed); 404 (or any other status) starts a new runtime;
//! - start: `POST /start {"image", "command", "working_dir": "/", "environment",
//!   "session_id", "run_as_user": 10001, "fs_group": 10001, "image_pull_policy",
//!   "runtime_class"?, "resource_factor"? (only when not 1)}`; the answer (and the session's)
//!   carries `runtime_id` (or `id`), `url` and `session_api_key`;
//! - wait: `GET /sessions/{session_id}` until `pod_status` is `ready` and `{url}/health`
//!   answers; `pending`, `running`, `not found` (and unknown values) are polled again;
//!   `failed`, `unknown` and `crashloopbackoff` fail, quoting `pod_logs`;
//! - `POST /pause`, `/resume`, `/stop`, each `{"runtime_id"}`; close stops the runtime, or
//!   pauses it with `pause_on_close`, or leaves it with `keep_alive`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use super::control_api::{ControlApi, ControlAuth, ControlError, START_POLL};
use super::delegate::remote_sandbox_workspace;
use super::{release, repo_upload, RemoteWorkspace, WorkspaceError, WorkspaceKind};

const SERVICE: &str = "the Runtime API";
const KEY_FLAG: &str = "--runtime-api-key (SANDCRAB_RUNTIME_API_KEY)";
/// The agent-server command of a runtime whose image holds sandcrab.
pub const DEFAULT_COMMAND: &str = "/usr/local/bin/sandcrab serve --host 0.0.0.0 --port 60000";

/// What runtime to get, and how.
#[derive(Debug, Clone)]
pub struct RuntimeApiOptions {
    pub api_url: String,
    pub api_key: String,
    /// An image the Runtime API can pull, holding the agent-server.
    pub image: String,
    /// The agent-server's command line in the image.
    pub command: String,
    /// Names a session; an existing running or paused session is attached to.
    pub session_id: String,
    /// 1, 2, 4 or 8.
    pub resource_factor: u32,
    pub runtime_class: Option<String>,
    /// `Always`, `IfNotPresent` or `Never`.
    pub image_pull_policy: String,
    /// Variables of the agent-server (and its commands).
    pub env: Vec<(String, String)>,
    pub pause_on_close: bool,
    pub keep_alive: bool,
    pub start_timeout: Duration,
    pub workdir: String,
    /// Paths inside the repository that stay out of the sandbox (sandcrab's outputs).
    pub exclude: Vec<std::path::PathBuf>,
}

impl RuntimeApiOptions {
    pub fn new(
        api_url: impl Into<String>,
        api_key: impl Into<String>,
        image: impl Into<String>,
    ) -> Self {
        RuntimeApiOptions {
            api_url: api_url.into(),
            api_key: api_key.into(),
            image: image.into(),
            command: DEFAULT_COMMAND.into(),
            session_id: format!("agent-server-{}", uuid::Uuid::new_v4()),
            resource_factor: 1,
            runtime_class: Some("sysbox-runc".into()),
            image_pull_policy: "IfNotPresent".into(),
            env: Vec::new(),
            pause_on_close: false,
            keep_alive: false,
            start_timeout: Duration::from_secs(300),
            workdir: "/workspace".into(),
            exclude: Vec::new(),
        }
    }

    /// The `POST /start` body.
    pub fn start_body(&self) -> Value {
        let env: serde_json::Map<String, Value> = self
            .env
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let mut body = json!({
            "image": self.image,
            "command": self.command,
            "working_dir": "/",
            "environment": env,
            "session_id": self.session_id,
            "run_as_user": 10001,
            "fs_group": 10001,
            "image_pull_policy": self.image_pull_policy,
        });
        if let Some(class) = &self.runtime_class {
            body["runtime_class"] = json!(class);
        }
        if self.resource_factor != 1 {
            body["resource_factor"] = json!(self.resource_factor);
        }
        body
    }
}

/// A runtime's identity, as `/start` and `/sessions/{id}` report it.
struct Runtime {
    id: String,
    url: String,
    session_key: Option<String>,
}

/// A running runtime.
pub struct RuntimeApiWorkspace {
    api: ControlApi,
    session_id: String,
    runtime_id: String,
    remote: RemoteWorkspace,
    attached: bool,
    pause_on_close: bool,
    keep_alive: bool,
    start_timeout: Duration,
    closed: AtomicBool,
}

impl RuntimeApiWorkspace {
    /// Attaches to the session's runtime or starts one, waits until it is ready, and copies
    /// `repo` in (only into a new runtime). On failure a runtime this call started is stopped.
    pub async fn start(
        opts: RuntimeApiOptions,
        repo: Option<&Path>,
    ) -> Result<Self, WorkspaceError> {
        let api = ControlApi::new(
            SERVICE,
            &opts.api_url,
            ControlAuth::ApiKey(opts.api_key.clone()),
            KEY_FLAG,
        )?;
        let (runtime, attached) = match attach(&api, &opts.session_id).await? {
            Some(runtime) => (runtime, true),
            None => {
                // Shielded: a cancel mid-request still registers the runtime it started.
                let (api, opts) = (api.clone(), opts.clone());
                let started = release::shielded(async move {
                    let runtime = start_runtime(&api, &opts).await?;
                    let action = close_action(opts.keep_alive, opts.pause_on_close);
                    register_release(&api, &runtime.id, action);
                    Ok::<_, WorkspaceError>(runtime)
                })
                .await?;
                (started, false)
            }
        };
        crate::cancel::stage("after-runtime-start").await;
        let ws = RuntimeApiWorkspace {
            remote: RemoteWorkspace::new(
                &runtime.url,
                runtime.session_key.clone(),
                opts.workdir.clone(),
            )?,
            api,
            session_id: opts.session_id.clone(),
            runtime_id: runtime.id,
            attached,
            pause_on_close: opts.pause_on_close,
            keep_alive: opts.keep_alive,
            start_timeout: opts.start_timeout,
            closed: AtomicBool::new(false),
        };
        ws.register_release();
        let booted = async {
            wait_ready(&ws.api, &ws.session_id, &ws.remote, ws.start_timeout).await?;
            match repo {
                Some(repo) if !attached => {
                    repo_upload::upload_repo(&ws.remote, repo, &opts.exclude).await
                }
                _ => Ok(()),
            }
        }
        .await;
        if let Err(e) = booted {
            let _ = ws.close_sandbox().await;
            return Err(e);
        }
        Ok(ws)
    }

    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    pub fn runtime_id(&self) -> &str {
        &self.runtime_id
    }

    /// Whether the runtime existed before (a resumed session: the repository was not copied).
    pub fn attached(&self) -> bool {
        self.attached
    }

    pub fn remote(&self) -> &RemoteWorkspace {
        &self.remote
    }

    /// What closing does: "stop", "pause", or nothing.
    fn close_action(&self) -> Option<&'static str> {
        close_action(self.keep_alive, self.pause_on_close)
    }

    fn register_release(&self) {
        register_release(&self.api, &self.runtime_id, self.close_action());
    }

    fn key(&self) -> String {
        release_key(&self.runtime_id)
    }

    async fn pause_sandbox(&self) -> Result<(), WorkspaceError> {
        post_runtime(&self.api, "pause", &self.runtime_id)
            .await
            .map_err(Into::into)
    }

    async fn resume_sandbox(&self) -> Result<(), WorkspaceError> {
        post_runtime(&self.api, "resume", &self.runtime_id).await?;
        wait_ready(
            &self.api,
            &self.session_id,
            &self.remote,
            self.start_timeout,
        )
        .await
    }

    /// Stops (or pauses, or keeps) the runtime. Idempotent.
    async fn close_sandbox(&self) -> Result<(), WorkspaceError> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        release::unregister(&self.key());
        match self.close_action() {
            Some(action) => post_runtime(&self.api, action, &self.runtime_id)
                .await
                .map_err(Into::into),
            None => Ok(()),
        }
    }
}

remote_sandbox_workspace!(RuntimeApiWorkspace, WorkspaceKind::RuntimeApi);

impl Drop for RuntimeApiWorkspace {
    fn drop(&mut self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        release::unregister(&self.key());
        let Some(action) = self.close_action() else {
            return;
        };
        let (api, id) = (self.api.clone(), self.runtime_id.clone());
        release::block_on(async move {
            if let Ok(api) = api.fresh() {
                let _ = post_runtime(&api, action, &id).await;
            }
        });
    }
}

/// What closing a runtime does: "stop", "pause", or nothing (kept).
fn close_action(keep_alive: bool, pause_on_close: bool) -> Option<&'static str> {
    match (keep_alive, pause_on_close) {
        (true, _) => None,
        (false, true) => Some("pause"),
        (false, false) => Some("stop"),
    }
}

fn release_key(runtime_id: &str) -> String {
    format!("runtime:{runtime_id}")
}

/// Closes the runtime (`action`) if the process is stopped before the workspace closes.
fn register_release(api: &ControlApi, runtime_id: &str, action: Option<&'static str>) {
    let Some(action) = action else {
        return;
    };
    let (api, id) = (api.clone(), runtime_id.to_string());
    release::register(&release_key(runtime_id), move || {
        release::block_on(async move {
            if let Ok(api) = api.fresh() {
                let _ = post_runtime(&api, action, &id).await;
            }
        })
    });
}

/// The session's runtime when it is running or paused (a paused one is resumed).
async fn attach(api: &ControlApi, session_id: &str) -> Result<Option<Runtime>, WorkspaceError> {
    let data = match session(api, session_id).await {
        Ok(data) => data,
        Err(ControlError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let status = data["status"].as_str().unwrap_or("");
    if status != "running" && status != "paused" {
        return Ok(None);
    }
    let runtime = parse_runtime(api, "GET /sessions/{id}", &data)?;
    if status == "paused" {
        post_runtime(api, "resume", &runtime.id).await?;
    }
    Ok(Some(runtime))
}

async fn start_runtime(
    api: &ControlApi,
    opts: &RuntimeApiOptions,
) -> Result<Runtime, WorkspaceError> {
    let rb = api
        .request(Method::POST, "/start")
        .json(&opts.start_body())
        .timeout(opts.start_timeout);
    let data = api.send_json("POST /start", rb).await?;
    parse_runtime(api, "POST /start", &data)
}

fn parse_runtime(api: &ControlApi, what: &str, data: &Value) -> Result<Runtime, WorkspaceError> {
    let id = data["runtime_id"].as_str().or_else(|| data["id"].as_str());
    let url = data["url"].as_str();
    match (id, url) {
        (Some(id), Some(url)) => Ok(Runtime {
            id: id.to_string(),
            url: url.trim_end_matches('/').to_string(),
            session_key: data["session_api_key"].as_str().map(String::from),
        }),
        _ => Err(api
            .malformed(what, format!("no runtime_id or url in {data}"))
            .into()),
    }
}

async fn session(api: &ControlApi, session_id: &str) -> Result<Value, ControlError> {
    let path = format!("/sessions/{session_id}");
    api.send_json(&format!("GET {path}"), api.request(Method::GET, &path))
        .await
}

/// `POST /{action} {"runtime_id"}` for pause, resume and stop.
async fn post_runtime(
    api: &ControlApi,
    action: &str,
    runtime_id: &str,
) -> Result<(), ControlError> {
    let path = format!("/{action}");
    let rb = api
        .request(Method::POST, &path)
        .json(&json!({"runtime_id": runtime_id}))
        .timeout(Duration::from_secs(30));
    api.send_json(&format!("POST {path}"), rb).await.map(drop)
}

/// Polls the session until the pod is ready and the agent-server healthy.
async fn wait_ready(
    api: &ControlApi,
    session_id: &str,
    remote: &RemoteWorkspace,
    timeout: Duration,
) -> Result<(), WorkspaceError> {
    let deadline = crate::duration::deadline(timeout);
    let mut backoff = START_POLL.schedule();
    loop {
        let data = match session(api, session_id).await {
            Ok(data) => data,
            Err(ControlError::NotFound { .. }) => json!({"pod_status": "not found"}),
            Err(e) => return Err(e.into()),
        };
        let pod = data["pod_status"].as_str().unwrap_or("").to_lowercase();
        match pod.as_str() {
            "ready" if remote.alive().await => return Ok(()),
            "failed" | "unknown" | "crashloopbackoff" => {
                return Err(failed(session_id, &pod, &data))
            }
            _ => {}
        }
        if Instant::now() >= deadline {
            return Err(WorkspaceError::Timeout(format!(
                "Runtime API: session {session_id} was not ready within {} s (pod status: {pod}); raise --runtime-api-start-timeout",
                timeout.as_secs()
            )));
        }
        backoff.wait().await;
    }
}

fn failed(session_id: &str, pod: &str, data: &Value) -> WorkspaceError {
    let logs = data["pod_logs"].as_str().unwrap_or("").trim();
    let hint = if pod == "crashloopbackoff" {
        "the runtime crashed and is restarting (out of memory?); try a larger --runtime-api-resource-factor"
    } else {
        "check the image and its command (--runtime-api-image, --runtime-api-command)"
    };
    let logs = if logs.is_empty() {
        String::new()
    } else {
        format!("; pod logs: {logs}")
    };
    WorkspaceError::SandboxGone(format!(
        "Runtime API: session {session_id} failed (pod status: {pod}): {hint}{logs}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_body_has_the_sdk_fields() {
        let mut opts = RuntimeApiOptions::new("http://rt", "k", "img:1");
        opts.session_id = "s1".into();
        opts.env = vec![("A".into(), "b".into())];
        let body = opts.start_body();
        assert_eq!(body["image"], "img:1");
        assert_eq!(body["session_id"], "s1");
        assert_eq!(body["working_dir"], "/");
        assert_eq!(body["run_as_user"], 10001);
        assert_eq!(body["fs_group"], 10001);
        assert_eq!(body["image_pull_policy"], "IfNotPresent");
        assert_eq!(body["runtime_class"], "sysbox-runc");
        assert_eq!(body["environment"], json!({"A": "b"}));
        assert!(body.get("resource_factor").is_none());
        opts.resource_factor = 4;
        opts.runtime_class = None;
        let body = opts.start_body();
        assert_eq!(body["resource_factor"], 4);
        assert!(body.get("runtime_class").is_none());
    }
}
