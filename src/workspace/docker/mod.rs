//! `DockerWorkspace`: a container on a Docker engine (through bollard) running our own static
//! agent-server, reached over HTTP by an inner [`RemoteWorkspace`].
//!
//! Any local image works, even `FROM scratch`: nothing is built and nothing is bind-mounted.
//! Before the container starts, the static binary (and the repository, into the working dir)
//! go in through the archive API; the container's entrypoint is that binary running
//! `serve` on port 8000 with a random session key. Commands and git go over HTTP; uploads,
//! downloads, pause and removal go through the engine.
//!
//! Network isolation (the default): each run gets its own `internal` network
//! `sandcrab-<session>` ([`network`]), the container's only network, with no published port.
//! The runner reaches the agent-server at `http://<container IP>:8000` (the host is on that
//! bridge); [`DockerWorkspace::gateway_ip`] is the bridge's host address, where the relay
//! binds, so the sandbox reaches the relay and nothing else off its network. Checked on Docker
//! 20.10 (bridge driver): the host connects to the container IP of an internal network; the
//! container connects to a listener on the gateway IP but not to one on the host's
//! 127.0.0.1, nor to containers of other networks. The engine may still list a `default` route
//! in the container (20.10 does); the engine's isolation rules drop whatever would leave the
//! bridge, so there is no route out in effect. With an explicit `network_mode` none of this
//! applies: the container joins that network and the port is published on 127.0.0.1.
//! A runner itself inside a container on the same engine joins the network ([`runner`]).
//! An engine on another host (GitLab's docker:dind, a remote daemon: [`location`]) is reached
//! through a bridge container ([`bridge`]): the sandbox stays on its internal network only.
//!
//! Cleanup: `close` removes the container, then its network; an unclosed workspace is removed
//! on `Drop`; and [`cleanup::remove_all_blocking`] removes every live container and network of
//! this process (for signal handlers and panic hooks). With `keep_on_failure`, a run marked
//! failed keeps its container and network.

pub mod archive;
pub mod bridge;
pub mod cleanup;
pub mod elf;
pub mod engine;
pub mod forward;
pub mod location;
pub mod network;
mod ops;
pub mod runner;
pub mod sweep;

use std::net::{IpAddr, SocketAddr};
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
use super::{blocking, RemoteWorkspace, Workspace, WorkspaceError};
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
    /// An explicit network mode (no per-run internal network; the port is published on
    /// loopback). `None`: a per-run internal network (see the module doc).
    pub network_mode: Option<String>,
    /// `DOCKER_HOST` as set (`None`: the local socket), to tell a remote engine.
    pub docker_host: Option<String>,
    /// Paths inside the repository that stay out of the sandbox (sandcrab's outputs).
    pub exclude: Vec<PathBuf>,
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
            docker_host: None,
            exclude: Vec::new(),
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

/// How the runner and the sandbox reach each other.
#[derive(Debug, Clone)]
enum Reach {
    /// The runner is on the engine's host: the container's address, or a published port.
    Direct,
    /// The runner is a container of the same engine, joined to the run's network here.
    Joined(IpAddr),
    /// The engine is on another host: through a bridge container (once started); `runner` is
    /// this machine's address toward the engine.
    Bridged {
        engine: IpAddr,
        runner: IpAddr,
        bridge: Option<bridge::Bridge>,
    },
}

/// A running container with the agent-server inside.
pub struct DockerWorkspace {
    docker: Docker,
    remote: RemoteWorkspace,
    container_id: String,
    /// The run's id (its network is `sandcrab-<session>`).
    session: String,
    /// The per-run internal network's id (`None` under an explicit network mode).
    network_id: Option<String>,
    /// How the runner and the sandbox reach each other.
    reach: Reach,
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
        let reach = locate(opts.docker_host.clone()).await?;
        let docker = engine::connect().await?;
        engine::ensure_image(&docker, &opts.image, opts.platform.as_deref()).await?;
        let session = uuid::Uuid::new_v4().to_string();
        let key = format!("{}", uuid::Uuid::new_v4().simple());
        let publish_on = match &reach {
            Reach::Bridged { engine, .. } => *engine,
            _ => IpAddr::from([127, 0, 0, 1]),
        };
        crate::cancel::stage("before-network-create").await;
        let (id, network_id) = create_sandbox(&docker, &opts, &session, &key, publish_on).await?;
        crate::cancel::stage("after-container-create").await;
        let ws = DockerWorkspace {
            remote: RemoteWorkspace::new("http://127.0.0.1:0", None, opts.workdir.clone())?,
            docker,
            container_id: id,
            session,
            network_id,
            reach,
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
        let booted = match self.join_runner().await {
            Ok(()) => self.seed_and_run(opts, repo).await,
            Err(e) => Err(e),
        };
        match booted {
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

    /// In a runner container of a local engine, joins the run's network.
    async fn join_runner(&mut self) -> Result<(), WorkspaceError> {
        let (Some(network), Reach::Direct) = (&self.network_id, &self.reach) else {
            return Ok(());
        };
        if let Some(me) = runner::own_container(&self.docker).await {
            self.reach = Reach::Joined(runner::join(&self.docker, network, &me).await?);
        }
        Ok(())
    }

    async fn seed_and_run(
        &mut self,
        opts: &DockerOptions,
        repo: Option<&Path>,
    ) -> Result<RemoteWorkspace, WorkspaceError> {
        let seed = OwnedSeed {
            binary: opts.sandbox_binary.clone(),
            workdir: opts.workdir.clone(),
            repo: repo.map(Path::to_path_buf),
            exclude: opts.exclude.clone(),
            owner: self.owner,
        };
        let tar = blocking(move || seed.archive()).await?;
        self.put_archive(tar)
            .await
            .map_err(engine::error("copy the agent-server and repository in"))?;
        crate::cancel::stage("after-copy-in").await;
        let id = &self.container_id;
        self.docker
            .start_container(id, None)
            .await
            .map_err(engine::error("start the container"))?;
        let url = self.server_url(opts).await?;
        let remote = RemoteWorkspace::new(url, Some(self.session_key.clone()), &opts.workdir)?;
        self.wait_alive(&remote).await?;
        crate::cancel::stage("after-server-start").await;
        Ok(remote)
    }

    /// The agent-server's URL: the container's address on the run's network, the port
    /// published on loopback (or on a remote engine's address), or a bridge's port.
    async fn server_url(&mut self, opts: &DockerOptions) -> Result<String, WorkspaceError> {
        let found = self
            .server_address(opts)
            .await
            .map(|a| format!("http://{a}"));
        let (docker, id) = (&self.docker, self.container_id.as_str());
        match found {
            Err(_) if engine::is_running(docker, id).await == Some(false) => {
                Err(self.died("exited before its agent-server started").await)
            }
            other => other,
        }
    }

    async fn server_address(&mut self, opts: &DockerOptions) -> Result<SocketAddr, WorkspaceError> {
        let (docker, id) = (&self.docker, self.container_id.as_str());
        let host = match (&self.network_id, &self.reach) {
            (None, Reach::Bridged { engine, .. }) => *engine,
            (None, _) => IpAddr::from([127, 0, 0, 1]),
            (Some(_), Reach::Bridged { engine, .. }) => {
                let engine = *engine;
                return self.start_bridge(opts, engine).await;
            }
            (Some(_), _) => {
                let ip = network::container_ip(docker, id).await?;
                return Ok(SocketAddr::new(ip, engine::SERVER_PORT));
            }
        };
        let port = engine::published_port(docker, id).await?;
        Ok(SocketAddr::new(host, port))
    }

    /// Starts the bridge to the sandbox; returns where the runner reaches its server.
    async fn start_bridge(
        &mut self,
        opts: &DockerOptions,
        engine: IpAddr,
    ) -> Result<SocketAddr, WorkspaceError> {
        let ip = network::container_ip(&self.docker, &self.container_id).await?;
        let started = bridge::start(&self.docker, opts, &self.session, ip, engine).await?;
        let server = started.server;
        if let Reach::Bridged { bridge, .. } = &mut self.reach {
            *bridge = Some(started);
        }
        Ok(server)
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
    pub(super) async fn died(&self, why: &str) -> WorkspaceError {
        let logs = engine::last_logs(&self.docker, &self.container_id, LOG_LINES).await;
        WorkspaceError::SandboxGone(format!(
            "docker: container {} {why}; its last log lines:\n{logs}",
            self.container_id
        ))
    }

    /// Where the runner binds a listener the sandbox must reach (the relay): the network's
    /// gateway (with the per-run internal network, the only address off that network the
    /// sandbox reaches); in a runner container, its own address on that network; with a remote
    /// engine, this machine's address toward the engine (see [`Self::sandbox_address_of`]).
    pub async fn gateway_ip(&self) -> Result<IpAddr, WorkspaceError> {
        match &self.reach {
            Reach::Joined(ip) => Ok(*ip),
            Reach::Bridged { runner, .. } => Ok(*runner),
            Reach::Direct => engine::gateway_ip(&self.docker, &self.container_id).await,
        }
    }

    /// The address the sandbox uses for the runner's listener at `local` (bound on
    /// [`Self::gateway_ip`]): the same, or through the bridge of a remote engine.
    pub async fn sandbox_address_of(
        &self,
        local: SocketAddr,
    ) -> Result<SocketAddr, WorkspaceError> {
        match &self.reach {
            Reach::Bridged {
                bridge: Some(b), ..
            } => bridge::expose(&self.docker, b, local).await,
            _ => Ok(local),
        }
    }

    /// The bridge container of a remote engine's run, if there is one.
    pub fn bridge_id(&self) -> Option<&str> {
        match &self.reach {
            Reach::Bridged {
                bridge: Some(b), ..
            } => Some(&b.container_id),
            _ => None,
        }
    }

    /// Every container of the run: the sandbox, and the bridge if any.
    pub(super) fn containers(&self) -> Vec<String> {
        std::iter::once(self.container_id.clone())
            .chain(self.bridge_id().map(String::from))
            .collect()
    }

    /// The inner agent-server client.
    pub fn remote(&self) -> &RemoteWorkspace {
        &self.remote
    }

    pub fn container_id(&self) -> &str {
        &self.container_id
    }

    /// The per-run internal network's id (`None` under an explicit network mode).
    pub fn network_id(&self) -> Option<&str> {
        self.network_id.as_deref()
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
            self.containers()
                .iter()
                .for_each(|c| cleanup::unregister(c));
            self.network_id
                .iter()
                .for_each(|n| cleanup::unregister_network(n));
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
        if let Some(network) = &self.network_id {
            eprintln!("sandcrab: and its network {network} (`docker network rm {network}`)");
        }
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
    exclude: Vec<PathBuf>,
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
            exclude: &self.exclude,
            owner: self.owner,
        })
    }
}

/// Creates the run's network (unless `network_mode` is explicit) and the container, and
/// registers both for cleanup as soon as they exist; removes the network if the container
/// cannot be created. Each creation is shielded (`release::shielded`): it ends and registers
/// what it made even when the caller is cancelled mid-request.
async fn create_sandbox(
    docker: &Docker,
    opts: &DockerOptions,
    session: &str,
    key: &str,
    publish_on: IpAddr,
) -> Result<(String, Option<String>), WorkspaceError> {
    let network_id = match opts.network_mode {
        Some(_) => None,
        None => Some(
            super::release::shielded({
                let (docker, session, labels) =
                    (docker.clone(), session.to_string(), opts.labels.clone());
                async move {
                    let id = network::create(&docker, &session, &labels).await?;
                    cleanup::register_network(&id);
                    Ok::<_, WorkspaceError>(id)
                }
            })
            .await?,
        ),
    };
    crate::cancel::stage("after-network-create").await;
    let name = network_id.as_ref().map(|_| network::name(session));
    let created = super::release::shielded({
        let (docker, opts, session, key) = (
            docker.clone(),
            opts.clone(),
            session.to_string(),
            key.to_string(),
        );
        async move {
            let id = create(&docker, &opts, &session, &key, name.as_deref(), publish_on).await?;
            cleanup::register(&id);
            Ok::<_, WorkspaceError>(id)
        }
    })
    .await;
    match created {
        Ok(id) => Ok((id, network_id)),
        Err(e) => {
            if let Some(n) = &network_id {
                cleanup::unregister_network(n);
                let _ = cleanup::remove_network(docker, n).await;
            }
            Err(e)
        }
    }
}

/// Creates (does not start) the container, on `network` if given.
async fn create(
    docker: &Docker,
    opts: &DockerOptions,
    session: &str,
    key: &str,
    network: Option<&str>,
    publish_on: IpAddr,
) -> Result<String, WorkspaceError> {
    let name = format!("sandcrab-{}", &session[..8]);
    let mut options = CreateContainerOptionsBuilder::new().name(&name);
    if let Some(platform) = &opts.platform {
        options = options.platform(platform);
    }
    let body = engine::create_body(opts, session, key, network, publish_on);
    let created = docker
        .create_container(Some(options.build()), body)
        .await
        .map_err(engine::error("create the container"))?;
    Ok(created.id)
}

/// How this run will reach the engine's containers, from where the engine is.
async fn locate(docker_host: Option<String>) -> Result<Reach, WorkspaceError> {
    let found = tokio::task::spawn_blocking(move || location::locate(docker_host.as_deref()))
        .await
        .map_err(|e| WorkspaceError::Internal(e.to_string()))??;
    Ok(match found {
        location::EngineLocation::Local => Reach::Direct,
        location::EngineLocation::Remote { engine, runner } => Reach::Bridged {
            engine,
            runner,
            bridge: None,
        },
    })
}
