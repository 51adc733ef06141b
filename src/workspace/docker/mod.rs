//! `DockerWorkspace`: a container on a Docker engine (through bollard) running our own static
//! agent-server, reached over HTTP by an inner [`RemoteWorkspace`].
//!
//! Any local image works, even `FROM scratch`: nothing is built and nothing is bind-mounted.
//! Before the container starts, the static binary (and the repository, into the working dir)
//! go in through the archive API; the container's entrypoint is that binary running
//! `serve`, published on a random loopback port with a random session key. Commands and git go
//! over HTTP; uploads, downloads, pause and removal go through the engine.
//!
//! Cleanup: `close` removes the container; an unclosed workspace is removed on `Drop`; and
//! [`cleanup::remove_all_blocking`] removes every live container of this process (for signal
//! handlers and panic hooks). With `keep_on_failure`, a run marked failed keeps its container.

pub mod archive;
pub mod cleanup;
pub mod elf;
pub mod engine;
mod ops;
pub mod sweep;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bollard::query_parameters::{
    CreateContainerOptionsBuilder, DownloadFromContainerOptionsBuilder,
    UploadToContainerOptionsBuilder,
};
use bollard::Docker;
use futures_util::StreamExt;

use super::remote::join_remote;
use super::{RemoteWorkspace, Workspace, WorkspaceError};
use archive::Owner;
pub use sweep::{sweep, SweepReport};

/// How long the agent-server may take to answer `/alive` after the container starts.
const ALIVE_TIMEOUT: Duration = Duration::from_secs(30);
const ALIVE_POLL: Duration = Duration::from_millis(10);
/// Log lines quoted when the container dies before it is alive.
const LOG_LINES: usize = 20;

/// What container to start, and how.
#[derive(Debug, Clone)]
pub struct DockerOptions {
    /// A local image (pulled once if missing and a registry is reachable).
    pub image: String,
    /// The repository's place and the agent's working directory in the container.
    pub workdir: String,
    /// The static agent-server binary copied into the container.
    pub sandbox_binary: PathBuf,
    /// Extra environment of the agent-server (and so of its commands).
    pub env: Vec<(String, String)>,
    /// Extra labels, beside `sandcrab.managed=true` and `sandcrab.session=<uuid>`.
    pub labels: Vec<(String, String)>,
    /// Keep a failed run's container (see [`DockerWorkspace::mark_failed`]).
    pub keep_on_failure: bool,
    pub platform: Option<String>,
    /// `uid[:gid]` or a name known to the image; numeric ids also own the copied repository.
    pub user: Option<String>,
    pub memory_bytes: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub pids_limit: Option<i64>,
    pub network_mode: Option<String>,
}

impl DockerOptions {
    pub fn new(image: impl Into<String>, sandbox_binary: impl Into<PathBuf>) -> Self {
        DockerOptions {
            image: image.into(),
            workdir: "/workspace".to_string(),
            sandbox_binary: sandbox_binary.into(),
            env: Vec::new(),
            labels: Vec::new(),
            keep_on_failure: false,
            platform: None,
            user: None,
            memory_bytes: None,
            nano_cpus: None,
            pids_limit: None,
            network_mode: None,
        }
    }

    /// The owner of copied files: the numeric user, else root.
    fn owner(&self) -> Owner {
        let Some(user) = &self.user else {
            return (0, 0);
        };
        let mut ids = user.split(':').map(|part| part.parse::<u64>().ok());
        match (ids.next().flatten(), ids.next()) {
            (Some(uid), None) => (uid, uid),
            (Some(uid), Some(Some(gid))) => (uid, gid),
            _ => (0, 0),
        }
    }
}

/// A running container with the agent-server inside.
pub struct DockerWorkspace {
    docker: Docker,
    remote: RemoteWorkspace,
    container_id: String,
    session_key: String,
    owner: Owner,
    keep_on_failure: bool,
    failed: AtomicBool,
    closed: AtomicBool,
}

impl DockerWorkspace {
    /// Creates the container, copies the binary (and `repo`) in, starts it and waits for
    /// `/alive`. On any failure the container is removed.
    pub async fn start(
        opts: DockerOptions,
        repo: Option<&Path>,
    ) -> Result<DockerWorkspace, WorkspaceError> {
        elf::check_static(&opts.sandbox_binary)?;
        let docker = engine::connect().await?;
        engine::ensure_image(&docker, &opts.image, opts.platform.as_deref()).await?;
        let session = uuid::Uuid::new_v4().to_string();
        let key = format!("{}", uuid::Uuid::new_v4().simple());
        let id = create(&docker, &opts, &session, &key).await?;
        cleanup::register(&id);
        let ws = DockerWorkspace {
            remote: RemoteWorkspace::new("http://127.0.0.1:0", None, opts.workdir.clone()),
            docker,
            container_id: id,
            session_key: key,
            owner: opts.owner(),
            keep_on_failure: opts.keep_on_failure,
            failed: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        };
        ws.boot(&opts, repo).await
    }

    /// Seeds, starts and waits; removes the container if any step fails.
    async fn boot(
        mut self,
        opts: &DockerOptions,
        repo: Option<&Path>,
    ) -> Result<Self, WorkspaceError> {
        match self.seed_and_run(opts, repo).await {
            Ok(remote) => {
                self.remote = remote;
                Ok(self)
            }
            Err(e) => {
                let _ = self.close().await;
                Err(e)
            }
        }
    }

    async fn seed_and_run(
        &self,
        opts: &DockerOptions,
        repo: Option<&Path>,
    ) -> Result<RemoteWorkspace, WorkspaceError> {
        let seed = OwnedSeed {
            binary: opts.sandbox_binary.clone(),
            workdir: opts.workdir.clone(),
            repo: repo.map(Path::to_path_buf),
            owner: self.owner,
        };
        let tar = blocking(move || seed.archive()).await?;
        self.put_archive(tar)
            .await
            .map_err(engine::error("copy the agent-server and repository in"))?;
        let id = &self.container_id;
        self.docker
            .start_container(id, None)
            .await
            .map_err(engine::error("start the container"))?;
        let port = match engine::published_port(&self.docker, id).await {
            Ok(port) => port,
            Err(_) if engine::is_running(&self.docker, id).await == Some(false) => {
                return Err(self.died("exited before its agent-server started").await)
            }
            Err(e) => return Err(e),
        };
        let url = format!("http://127.0.0.1:{port}");
        let remote = RemoteWorkspace::new(url, Some(self.session_key.clone()), &opts.workdir);
        self.wait_alive(&remote).await?;
        Ok(remote)
    }

    /// Polls `/alive`; fails with the container's last logs if it exits or times out.
    async fn wait_alive(&self, remote: &RemoteWorkspace) -> Result<(), WorkspaceError> {
        let deadline = Instant::now() + ALIVE_TIMEOUT;
        loop {
            if remote.alive().await {
                return Ok(());
            }
            let running = engine::is_running(&self.docker, &self.container_id).await;
            let why = if running == Some(false) {
                "exited before its agent-server answered /alive"
            } else if Instant::now() >= deadline {
                "did not answer /alive within 30 s"
            } else {
                tokio::time::sleep(ALIVE_POLL).await;
                continue;
            };
            return Err(self.died(why).await);
        }
    }

    /// An error saying what happened to the container, with its last log lines.
    async fn died(&self, why: &str) -> WorkspaceError {
        let logs = engine::last_logs(&self.docker, &self.container_id, LOG_LINES).await;
        WorkspaceError::Other(format!(
            "docker: container {} {why}; its last log lines:\n{logs}",
            self.container_id
        ))
    }

    /// The inner agent-server client.
    /// Where the container reaches this host: its network's gateway.
    pub async fn gateway_ip(&self) -> Result<std::net::IpAddr, WorkspaceError> {
        engine::gateway_ip(&self.docker, &self.container_id).await
    }

    pub fn remote(&self) -> &RemoteWorkspace {
        &self.remote
    }

    pub fn container_id(&self) -> &str {
        &self.container_id
    }

    /// The agent-server's `X-Session-API-Key`.
    pub fn session_key(&self) -> &str {
        &self.session_key
    }

    /// Marks the run failed: with `keep_on_failure`, `close` and `Drop` keep the container
    /// (and print its id) instead of removing it.
    pub fn mark_failed(&self) {
        self.failed.store(true, Ordering::SeqCst);
        if self.keep_on_failure {
            cleanup::unregister(&self.container_id);
        }
    }

    fn keeps_container(&self) -> bool {
        self.keep_on_failure && self.failed.load(Ordering::SeqCst)
    }

    fn announce_kept(&self) {
        eprintln!(
            "sandcrab: keeping the failed run's container {} (remove it with `docker rm -f {}`)",
            self.container_id, self.container_id
        );
    }

    /// Sends an archive to be extracted at `/` in the container.
    async fn put_archive(&self, tar: Vec<u8>) -> Result<(), bollard::errors::Error> {
        let options = UploadToContainerOptionsBuilder::new().path("/").build();
        let body = bollard::body_full(tar.into());
        self.docker
            .upload_to_container(&self.container_id, Some(options), body)
            .await
    }

    /// The engine's archive of a container path, in memory.
    async fn get_archive(&self, path: &str) -> Result<Vec<u8>, bollard::errors::Error> {
        let options = DownloadFromContainerOptionsBuilder::new()
            .path(path)
            .build();
        let mut stream = self
            .docker
            .download_from_container(&self.container_id, Some(options));
        let mut tar = Vec::new();
        while let Some(piece) = stream.next().await {
            tar.extend_from_slice(&piece?);
        }
        Ok(tar)
    }
}

/// The seed with owned paths, to move into a blocking task.
struct OwnedSeed {
    binary: PathBuf,
    workdir: String,
    repo: Option<PathBuf>,
    owner: Owner,
}

impl OwnedSeed {
    fn archive(&self) -> std::io::Result<Vec<u8>> {
        archive::seed_archive(&archive::Seed {
            binary: &self.binary,
            binary_at: engine::BINARY_PATH,
            conversations_dir: engine::CONVERSATIONS_DIR,
            workdir: &self.workdir,
            repo: self.repo.as_deref(),
            owner: self.owner,
        })
    }
}

/// Creates (does not start) the container.
async fn create(
    docker: &Docker,
    opts: &DockerOptions,
    session: &str,
    key: &str,
) -> Result<String, WorkspaceError> {
    let name = format!("sandcrab-{}", &session[..8]);
    let mut options = CreateContainerOptionsBuilder::new().name(&name);
    if let Some(platform) = &opts.platform {
        options = options.platform(platform);
    }
    let body = engine::create_body(opts, session, key);
    let created = docker
        .create_container(Some(options.build()), body)
        .await
        .map_err(engine::error("create the container"))?;
    Ok(created.id)
}

/// Runs blocking work (tar building, file IO) off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, WorkspaceError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| WorkspaceError::Other(e.to_string()))?
        .map_err(WorkspaceError::Io)
}
