//! `CloudWorkspace`: an OpenHands Cloud sandbox, provisioned through the Cloud API and used
//! through the agent-server it exposes. Wire protocol, as OpenHands' `OpenHandsCloudWorkspace`
//! (openhands-workspace 1.58.2) speaks it:
//! - every Cloud API call carries `Authorization: Bearer CLOUD_API_KEY`;
//! - create: `POST /api/v1/sandboxes[?sandbox_spec_id=SPEC]` → `{"id", "session_api_key", ...}`;
//!   or, given a sandbox id, `POST /api/v1/sandboxes/{id}/resume` (attach to an existing one);
//! - wait: `GET /api/v1/sandboxes?id=ID` → a list whose first item has `status`
//!   (`STARTING`, `RUNNING`, `PAUSED`, `ERROR`, `MISSING`), `session_api_key` and
//!   `exposed_urls: [{"name", "url"}]`; the agent-server is the entry named `AGENT_SERVER`,
//!   ready once its `GET /health` answers 2xx. `PAUSED` is resumed; `ERROR`/`MISSING` fail;
//!   anything else is polled again until the start timeout;
//! - close: `DELETE /api/v1/sandboxes/{id}?sandbox_id={id}`, unless `keep_alive` (also for a
//!   sandbox attached by id, as the SDK does);
//! - pause: `POST /api/v1/sandboxes/{id}/pause` (the SDK has no pause; the app server's
//!   sandbox router lists this route). A 404/405 answer means the service cannot pause.
//!
//! The agent-server calls then carry `X-Session-API-Key: SESSION_API_KEY`. `settings` holds
//! `get_llm()` and `get_secrets()`.

pub mod settings;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;

use super::control_api::{ControlApi, ControlAuth, ControlError, START_POLL};
use super::delegate::remote_sandbox_workspace;
use super::{release, repo_upload, RemoteWorkspace, WorkspaceError, WorkspaceKind};

pub use settings::{CloudLlm, LookupSecret};

const SERVICE: &str = "OpenHands Cloud";
const KEY_FLAG: &str = "--cloud-api-key (SANDCRAB_CLOUD_API_KEY)";
/// The `exposed_urls` entry of the agent-server.
pub const AGENT_SERVER: &str = "AGENT_SERVER";

/// What sandbox to get, and how.
#[derive(Debug, Clone)]
pub struct CloudOptions {
    /// e.g. `https://app.all-hands.dev`
    pub api_url: String,
    pub api_key: String,
    /// The sandbox spec (image) to start; the account's default when `None`.
    pub sandbox_spec_id: Option<String>,
    /// Attach to (and resume) this sandbox instead of creating one.
    pub sandbox_id: Option<String>,
    /// Keep the sandbox when the workspace closes.
    pub keep_alive: bool,
    /// How long the sandbox may take to be RUNNING with a healthy agent-server.
    pub start_timeout: Duration,
    /// The repository's place in the sandbox.
    pub workdir: String,
    /// Paths inside the repository that stay out of the sandbox (sandcrab's outputs).
    pub exclude: Vec<std::path::PathBuf>,
}

impl CloudOptions {
    pub fn new(api_url: impl Into<String>, api_key: impl Into<String>) -> Self {
        CloudOptions {
            api_url: api_url.into(),
            api_key: api_key.into(),
            sandbox_spec_id: None,
            sandbox_id: None,
            keep_alive: false,
            start_timeout: Duration::from_secs(300),
            workdir: "/workspace".into(),
            exclude: Vec::new(),
        }
    }
}

/// A running Cloud sandbox.
pub struct CloudWorkspace {
    api: ControlApi,
    sandbox_id: String,
    session_key: String,
    remote: RemoteWorkspace,
    keep_alive: bool,
    start_timeout: Duration,
    closed: AtomicBool,
}

/// What a `RUNNING` sandbox reports.
struct Ready {
    url: String,
    session_key: String,
}

impl CloudWorkspace {
    /// Creates (or resumes) the sandbox, waits until its agent-server is healthy and copies
    /// `repo` into the working directory. On failure a sandbox this call created is deleted.
    pub async fn start(opts: CloudOptions, repo: Option<&Path>) -> Result<Self, WorkspaceError> {
        let api = ControlApi::new(
            SERVICE,
            &opts.api_url,
            ControlAuth::Bearer(opts.api_key.clone()),
            KEY_FLAG,
        )?;
        let sandbox_id = match &opts.sandbox_id {
            Some(id) => {
                resume_call(&api, id).await?;
                id.clone()
            }
            None => {
                // Shielded: a cancel mid-POST still registers the sandbox it created.
                let (api, spec, keep) =
                    (api.clone(), opts.sandbox_spec_id.clone(), opts.keep_alive);
                release::shielded(async move {
                    let id = create(&api, spec.as_deref()).await?;
                    if !keep {
                        register_release(&api, &id);
                    }
                    Ok::<_, WorkspaceError>(id)
                })
                .await?
            }
        };
        if !opts.keep_alive && opts.sandbox_id.is_some() {
            register_release(&api, &sandbox_id);
        }
        crate::cancel::stage("after-sandbox-create").await;
        let ws = CloudWorkspace {
            remote: RemoteWorkspace::new("http://127.0.0.1:0", None, opts.workdir.clone())?,
            api,
            sandbox_id,
            session_key: String::new(),
            keep_alive: opts.keep_alive,
            start_timeout: opts.start_timeout,
            closed: AtomicBool::new(false),
        };
        ws.boot(&opts, repo).await
    }

    async fn boot(
        mut self,
        opts: &CloudOptions,
        repo: Option<&Path>,
    ) -> Result<Self, WorkspaceError> {
        let booted = async {
            let ready = wait_ready(&self.api, &self.sandbox_id, self.start_timeout).await?;
            let remote =
                RemoteWorkspace::new(&ready.url, Some(ready.session_key.clone()), &opts.workdir)?;
            if let Some(repo) = repo {
                repo_upload::upload_repo(&remote, repo, &opts.exclude).await?;
            }
            Ok::<_, WorkspaceError>((ready.session_key, remote))
        }
        .await;
        match booted {
            Ok((key, remote)) => {
                self.session_key = key;
                self.remote = remote;
                Ok(self)
            }
            Err(e) => {
                let _ = self.close_sandbox().await;
                Err(e)
            }
        }
    }

    pub fn sandbox_id(&self) -> &str {
        &self.sandbox_id
    }

    /// The agent-server's `X-Session-API-Key`.
    pub fn session_key(&self) -> &str {
        &self.session_key
    }

    /// The inner agent-server client.
    pub fn remote(&self) -> &RemoteWorkspace {
        &self.remote
    }

    /// Keeps the sandbox when the workspace closes (to resume it later by id).
    pub fn keep(&mut self) {
        self.keep_alive = true;
        release::unregister(&self.sandbox_id);
    }

    async fn pause_sandbox(&self) -> Result<(), WorkspaceError> {
        let path = format!("/api/v1/sandboxes/{}/pause", self.sandbox_id);
        let what = format!("POST {path}");
        match self
            .api
            .send_json(&what, self.api.request(Method::POST, &path))
            .await
        {
            Ok(_) => Ok(()),
            Err(ControlError::NotFound { .. }) | Err(ControlError::Http { status: 405, .. }) => {
                Err(WorkspaceError::Unsupported {
                    kind: WorkspaceKind::Cloud.as_str(),
                    operation: "pause (this Cloud API has no pause endpoint)",
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Resumes the sandbox and waits until its agent-server answers again (at the same URL).
    async fn resume_sandbox(&self) -> Result<(), WorkspaceError> {
        resume_call(&self.api, &self.sandbox_id).await?;
        let ready = wait_ready(&self.api, &self.sandbox_id, self.start_timeout).await?;
        if ready.url.trim_end_matches('/') != self.remote.host() {
            return Err(WorkspaceError::SandboxGone(format!(
                "OpenHands Cloud: sandbox {} came back at {} instead of {}; start a new run with --cloud-sandbox-id {}",
                self.sandbox_id, ready.url, self.remote.host(), self.sandbox_id
            )));
        }
        Ok(())
    }

    /// Deletes the sandbox unless it is kept. Idempotent.
    async fn close_sandbox(&self) -> Result<(), WorkspaceError> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        release::unregister(&self.sandbox_id);
        if self.keep_alive {
            return Ok(());
        }
        delete(&self.api, &self.sandbox_id)
            .await
            .map_err(Into::into)
    }
}

remote_sandbox_workspace!(CloudWorkspace, WorkspaceKind::Cloud);

impl Drop for CloudWorkspace {
    fn drop(&mut self) {
        if self.closed.swap(true, Ordering::SeqCst) || self.keep_alive {
            return;
        }
        release::unregister(&self.sandbox_id);
        let (api, id) = (self.api.clone(), self.sandbox_id.clone());
        release::block_on(async move {
            if let Ok(api) = api.fresh() {
                let _ = delete(&api, &id).await;
            }
        });
    }
}

/// Deletes the sandbox if the process is stopped before the workspace closes.
fn register_release(api: &ControlApi, sandbox_id: &str) {
    let (api, id) = (api.clone(), sandbox_id.to_string());
    release::register(sandbox_id, move || {
        release::block_on(async move {
            if let Ok(api) = api.fresh() {
                let _ = delete(&api, &id).await;
            }
        })
    });
}

async fn create(api: &ControlApi, spec: Option<&str>) -> Result<String, WorkspaceError> {
    let mut rb = api.request(Method::POST, "/api/v1/sandboxes");
    if let Some(spec) = spec {
        rb = rb.query(&[("sandbox_spec_id", spec)]);
    }
    let what = "POST /api/v1/sandboxes";
    let created = api.send_json(what, rb).await?;
    created["id"]
        .as_str()
        .map(String::from)
        .ok_or_else(|| api.malformed(what, "no sandbox id").into())
}

async fn resume_call(api: &ControlApi, id: &str) -> Result<(), ControlError> {
    let path = format!("/api/v1/sandboxes/{id}/resume");
    api.send_json(&format!("POST {path}"), api.request(Method::POST, &path))
        .await
        .map(drop)
}

async fn delete(api: &ControlApi, id: &str) -> Result<(), ControlError> {
    let path = format!("/api/v1/sandboxes/{id}");
    let rb = api
        .request(Method::DELETE, &path)
        .query(&[("sandbox_id", id)])
        .timeout(Duration::from_secs(30));
    match api.send_json(&format!("DELETE {path}"), rb).await {
        Ok(_) | Err(ControlError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Polls the sandbox until it is RUNNING with a healthy agent-server.
async fn wait_ready(
    api: &ControlApi,
    id: &str,
    timeout: Duration,
) -> Result<Ready, WorkspaceError> {
    let deadline = crate::duration::deadline(timeout);
    let mut backoff = START_POLL.schedule();
    let mut resumed = false;
    let mut last: String;
    loop {
        let sandbox = status(api, id).await?;
        let state = sandbox["status"].as_str().unwrap_or("").to_string();
        match state.as_str() {
            "RUNNING" => match running(api, id, &sandbox).await? {
                Some(ready) => return Ok(ready),
                None => last = "RUNNING, agent-server not healthy yet".into(),
            },
            "ERROR" | "MISSING" => {
                return Err(WorkspaceError::SandboxGone(format!(
                    "OpenHands Cloud: sandbox {id} is {state}; start a new run (or check the sandbox in OpenHands Cloud)"
                )))
            }
            "PAUSED" if !resumed => {
                resume_call(api, id).await?;
                resumed = true;
                last = state;
            }
            "" => last = "not listed yet".into(),
            _ => last = state,
        }
        if Instant::now() >= deadline {
            return Err(WorkspaceError::Timeout(format!(
                "OpenHands Cloud: sandbox {id} was not ready within {} s (last status: {last}); raise --cloud-start-timeout",
                timeout.as_secs()
            )));
        }
        backoff.wait().await;
    }
}

/// `GET /api/v1/sandboxes?id=ID`: the first item, or `null` when the list is empty.
async fn status(api: &ControlApi, id: &str) -> Result<Value, ControlError> {
    let rb = api
        .request(Method::GET, "/api/v1/sandboxes")
        .query(&[("id", id)]);
    let list = api.send_json("GET /api/v1/sandboxes?id=", rb).await?;
    match list {
        Value::Array(items) => Ok(items.into_iter().next().unwrap_or(Value::Null)),
        other => Err(api.malformed(
            "GET /api/v1/sandboxes?id=",
            format!("expected a list, got {other}"),
        )),
    }
}

/// A RUNNING sandbox's agent-server URL and key, once `/health` answers.
async fn running(
    api: &ControlApi,
    id: &str,
    sandbox: &Value,
) -> Result<Option<Ready>, WorkspaceError> {
    let urls = sandbox["exposed_urls"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let url = urls
        .iter()
        .find(|u| u["name"].as_str() == Some(AGENT_SERVER))
        .and_then(|u| u["url"].as_str());
    let Some(url) = url else {
        return Err(api
            .malformed(
                "GET /api/v1/sandboxes?id=",
                format!("sandbox {id} is RUNNING but exposes no {AGENT_SERVER} URL"),
            )
            .into());
    };
    let session_key = sandbox["session_api_key"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let probe = RemoteWorkspace::new(url, None, "/")?;
    if !healthy(&probe).await {
        return Ok(None);
    }
    Ok(Some(Ready {
        url: url.trim_end_matches('/').to_string(),
        session_key,
    }))
}

async fn healthy(server: &RemoteWorkspace) -> bool {
    let api = server.api();
    let rb = api
        .request(Method::GET, "/health")
        .timeout(Duration::from_secs(5));
    api.send("GET /health", rb).await.is_ok()
}
