//! Workspaces: where commands run and files live. `Local` is a directory of this machine; the
//! remote kinds (Docker, Cloud, Runtime API, Apptainer) reach an agent-server over HTTP.
//!
//! The shapes (`CommandResult`, `FileOperationResult`, `GitChange`, `GitDiff`) are OpenHands'.

pub mod apptainer;
pub mod cloud;
pub mod control_api;
mod delegate;
pub mod docker;
pub mod git;
pub mod local;
pub mod release;
pub mod remote;
pub mod repo_upload;
pub mod runtime_api;
pub mod server_api;
pub mod sif_cache;
pub mod snapshot;

/// `--idle-timeout-minutes` of the agent-servers this process starts in Docker and Apptainer
/// sandboxes: a server no runner has called for this long exits (its runner was killed), so
/// the sandbox stops instead of running on. A live runner polls far more often than this.
pub const SANDBOX_IDLE_TIMEOUT_MINUTES: &str = "10";

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::UnboundedSender;

pub use apptainer::{ApptainerOptions, ApptainerWorkspace, SifSource};
pub use cloud::{CloudOptions, CloudWorkspace};
pub use docker::{DockerOptions, DockerWorkspace};
pub use git::{GitChange, GitChangeStatus, GitDiff};
pub use local::LocalWorkspace;
pub use remote::RemoteWorkspace;
pub use runtime_api::{RuntimeApiOptions, RuntimeApiWorkspace};

/// The kinds of workspace, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkspaceKind {
    Local,
    Docker,
    Cloud,
    RuntimeApi,
    Apptainer,
    Remote,
}

impl WorkspaceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Docker => "docker",
            Self::Cloud => "cloud",
            Self::RuntimeApi => "runtime_api",
            Self::Apptainer => "apptainer",
            Self::Remote => "remote",
        }
    }
}

/// A command to execute.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    pub command: String,
    /// Relative paths are taken from the workspace's working directory.
    pub cwd: Option<String>,
    pub timeout: Duration,
    /// Added to the command's environment.
    pub env: Vec<(String, String)>,
    /// Receives output as it comes, when set.
    pub output: Option<UnboundedSender<OutputChunk>>,
}

impl ExecRequest {
    pub fn new(command: impl Into<String>) -> Self {
        ExecRequest {
            command: command.into(),
            cwd: None,
            timeout: Duration::from_secs(30),
            env: Vec::new(),
            output: None,
        }
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn cwd(mut self, cwd: impl Into<String>) -> Self {
        self.cwd = Some(cwd.into());
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn stream_to(mut self, sender: UnboundedSender<OutputChunk>) -> Self {
        self.output = Some(sender);
        self
    }
}

/// A piece of a running command's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputChunk {
    Stdout(String),
    Stderr(String),
}

/// OpenHands' `CommandResult`. On a timeout, `exit_code` is -1 and `timeout_occurred` is true.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    pub command: String,
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
    pub timeout_occurred: bool,
}

/// OpenHands' `FileOperationResult`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOperationResult {
    pub success: bool,
    pub source_path: String,
    pub destination_path: String,
    pub file_size: Option<u64>,
    pub error: Option<String>,
}

/// Why a workspace operation failed, by what a caller can do about it. Every message is one
/// line (a sandbox's log lines may follow it): what failed, why, and what to do.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("the {kind} workspace does not support {operation}")]
    Unsupported {
        kind: &'static str,
        operation: &'static str,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Git(String),
    /// A call to the agent-server failed: unreachable (`status` is `None`), refused (401/403),
    /// or answered with an HTTP error or a malformed body.
    #[error(transparent)]
    Server(server_api::ServerApiError),
    /// A sandbox provider's control plane (OpenHands Cloud, a Runtime API) failed or refused:
    /// a bad key, no such sandbox, an HTTP error.
    #[error(transparent)]
    Provider(control_api::ControlError),
    /// The sandbox stopped or failed: the container exited, the pod or sandbox is in an error
    /// state, or it came back somewhere else. Starting a new one is the only way on.
    #[error("{0}")]
    SandboxGone(String),
    /// The sandbox or its agent-server was not ready within the time allowed.
    #[error("{0}")]
    Timeout(String),
    /// Copying the repository or files into or out of the sandbox failed.
    #[error("{0}")]
    Transfer(String),
    /// This machine cannot host the workspace as configured: a missing program, image or file,
    /// an unreachable container engine, a directory that is not usable or not private.
    #[error("{0}")]
    Setup(String),
    /// The container engine (Docker, Apptainer) failed a call or reported an unusable
    /// container (no address, no published port).
    #[error("{0}")]
    Engine(String),
    /// A background task of this process failed (it panicked or was cancelled).
    #[error("{0}")]
    Internal(String),
}

/// Runs blocking work (tar building, file IO, image conversion) off the async threads; its
/// error, and a panic of the work, become a `WorkspaceError`.
pub(crate) async fn blocking<T: Send + 'static, E: Into<WorkspaceError> + Send + 'static>(
    work: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, WorkspaceError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| WorkspaceError::Internal(e.to_string()))?
        .map_err(Into::into)
}

/// Where commands run and files live.
#[async_trait]
pub trait Workspace: Send + Sync {
    fn kind(&self) -> WorkspaceKind;

    /// The agent's working directory (the repository), as a path inside the workspace.
    fn working_dir(&self) -> &str;

    /// Runs a shell command; stdout and stderr apart, streamed to `request.output` if set.
    async fn execute(&self, request: ExecRequest) -> Result<CommandResult, WorkspaceError>;

    /// Copies a local file or directory into the workspace at `destination`.
    async fn upload(
        &self,
        source: &Path,
        destination: &str,
    ) -> Result<FileOperationResult, WorkspaceError>;

    /// Copies a file or directory of the workspace to a local `destination`.
    async fn download(
        &self,
        source: &str,
        destination: &Path,
    ) -> Result<FileOperationResult, WorkspaceError>;

    /// Files changed under `path` against the auto-detected base ref.
    async fn git_changes(&self, path: &str) -> Result<Vec<GitChange>, WorkspaceError>;

    /// One file's content at the base ref and now.
    async fn git_diff(&self, path: &str) -> Result<GitDiff, WorkspaceError>;

    async fn pause(&self) -> Result<(), WorkspaceError> {
        Err(WorkspaceError::Unsupported {
            kind: self.kind().as_str(),
            operation: "pause",
        })
    }

    async fn resume(&self) -> Result<(), WorkspaceError> {
        Err(WorkspaceError::Unsupported {
            kind: self.kind().as_str(),
            operation: "resume",
        })
    }

    /// Releases the workspace (stops and removes a sandbox). Idempotent.
    async fn close(&self) -> Result<(), WorkspaceError>;

    /// The error saying the sandbox has stopped for good (its container exited), or `None`
    /// while it runs or where the workspace cannot tell. Asked when the agent-server stops
    /// answering, so that a dead sandbox is reported at once, not after the minute of retries
    /// an unreachable server gets.
    async fn stopped(&self) -> Option<WorkspaceError> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The URL of a loopback port nothing listens on.
    fn closed_url() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn an_unreachable_agent_server_keeps_its_status_for_callers() {
        let ws = RemoteWorkspace::new(closed_url(), None, "/w").unwrap();
        let err = ws.execute(ExecRequest::new("true")).await.unwrap_err();
        let text = err.to_string();
        match err {
            WorkspaceError::Server(e) => assert!(e.status.is_none() && e.is_fatal(), "{e}"),
            other => panic!("not a server error: {other:?}"),
        }
        assert!(
            text.starts_with("cannot reach the agent-server at"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_server_that_never_comes_alive_is_a_timeout() {
        let ws = RemoteWorkspace::new(closed_url(), None, "/w").unwrap();
        let err = ws
            .wait_until_alive(Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, WorkspaceError::Timeout(_)), "{err:?}");
        assert!(
            err.to_string()
                .contains("did not answer GET /alive within 0.3 s"),
            "{err}"
        );
    }
}
