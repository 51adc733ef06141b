//! `ApptainerWorkspace`: our static agent-server run inside an Apptainer (Singularity)
//! container, for HPC hosts without Docker. Nothing is installed in the image:
//! - the image: an existing `.sif`, or one built once from a Docker image
//!   (`apptainer build CACHE/NAME.sif docker://IMAGE`; a source with a scheme, such as
//!   `docker-daemon://img:tag`, is used as given) and reused from the cache afterwards;
//! - the run: `apptainer exec --containall --no-home --env-file SCRATCH/env [--fakeroot]
//!   [--nv] --bind BINARY:/.sandcrab/sandcrab:ro --bind SCRATCH/workspace:WORKDIR
//!   --bind SCRATCH/conversations:/.sandcrab/conversations [--bind EXTRA...] SIF
//!   /.sandcrab/sandcrab serve --host 127.0.0.1 --port 0 --working-dir WORKDIR
//!   --conversations-dir /.sandcrab/conversations`. `--containall` gives the container its
//!   own PID and IPC namespaces, a clean environment and no host home or `/tmp`; the session
//!   key (and `--forward-env` variables) go in through the owner-only env file, never on
//!   the command line, where any user of the host could read them;
//! - the repository is copied (on this host) into the private scratch directory bound at the
//!   working directory, so the agent never touches the original;
//! - the server picks a free loopback port and prints it; Apptainer shares the host's
//!   network, so the runner (and the LLM relay on 127.0.0.1) are reached directly.
//!
//! The `apptainer` process leads its own process group; close (or `Drop`, or the signal
//! handler through `release`) sends SIGTERM to the group, SIGKILL after 5 s, and removes the
//! scratch directory. No pause/resume.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::delegate::remote_sandbox_workspace;
use super::{
    blocking, release, remote::shell_quote, RemoteWorkspace, WorkspaceError, WorkspaceKind,
};

/// Where the binary and the conversations are bound in the container.
pub const BINARY_IN_CONTAINER: &str = "/.sandcrab/sandcrab";
pub const CONVERSATIONS_IN_CONTAINER: &str = "/.sandcrab/conversations";
const TERM_GRACE: Duration = Duration::from_secs(5);

/// Where the SIF comes from.
#[derive(Debug, Clone)]
pub enum SifSource {
    /// A Docker image (`docker://` is implied without a scheme), built once into the cache.
    Image(String),
    /// An existing `.sif` file.
    File(PathBuf),
}

/// What container to run, and how.
#[derive(Debug, Clone)]
pub struct ApptainerOptions {
    pub source: SifSource,
    /// Where built SIFs are kept: a private directory ([`super::sif_cache`]).
    pub cache_dir: PathBuf,
    /// The `apptainer` (or `singularity`) program.
    pub program: PathBuf,
    /// The static sandcrab bound into the container.
    pub sandbox_binary: PathBuf,
    pub workdir: String,
    pub env: Vec<(String, String)>,
    /// Extra `--bind` specs (`src[:dest[:opts]]`).
    pub binds: Vec<String>,
    pub fakeroot: bool,
    pub gpu: bool,
    pub start_timeout: Duration,
    /// Paths inside the repository that stay out of the sandbox (sandcrab's outputs).
    pub exclude: Vec<PathBuf>,
}

impl ApptainerOptions {
    pub fn new(source: SifSource, sandbox_binary: impl Into<PathBuf>) -> Self {
        ApptainerOptions {
            source,
            cache_dir: super::sif_cache::default_dir(),
            program: PathBuf::from("apptainer"),
            sandbox_binary: sandbox_binary.into(),
            workdir: "/workspace".into(),
            env: Vec::new(),
            binds: Vec::new(),
            fakeroot: false,
            gpu: false,
            start_timeout: Duration::from_secs(120),
            exclude: Vec::new(),
        }
    }
}

/// A running container with the agent-server inside.
pub struct ApptainerWorkspace {
    remote: RemoteWorkspace,
    child: Arc<Mutex<Option<Child>>>,
    pgid: i32,
    scratch: PathBuf,
    closed: AtomicBool,
    /// The container's last lines of stderr, for the error when it exits mid-run.
    log: Log,
}

impl ApptainerWorkspace {
    /// Prepares the SIF, copies `repo` into a fresh scratch directory, starts the container
    /// and waits for its agent-server. On failure everything started is removed.
    pub async fn start(
        opts: ApptainerOptions,
        repo: Option<&Path>,
    ) -> Result<Self, WorkspaceError> {
        super::docker::elf::check_static(&opts.sandbox_binary)?;
        // A client that cannot be built fails here, before a process exists.
        super::server_api::http_client()?;
        let sif = blocking({
            let opts = opts.clone();
            move || prepare_sif(&opts)
        })
        .await?;
        let scratch = blocking({
            let repo = repo.map(Path::to_path_buf);
            let exclude = opts.exclude.clone();
            move || make_scratch(repo.as_deref(), &exclude)
        })
        .await?;
        let key = uuid::Uuid::new_v4().simple().to_string();
        // Counted as a creation in flight: a cleanup waits for the launch, which registers
        // the process group as soon as it exists.
        let creating = release::Creating::start();
        let launched = blocking({
            let (opts, sif, scratch, key) =
                (opts.clone(), sif.clone(), scratch.clone(), key.clone());
            move || {
                let launched = launch(&opts, &sif, &scratch, &key);
                drop(creating);
                launched
            }
        })
        .await;
        let (child, url, log) = match launched {
            Ok(started) => started,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&scratch);
                return Err(e);
            }
        };
        let pgid = child.id() as i32;
        let ws = ApptainerWorkspace {
            remote: RemoteWorkspace::new(&url, Some(key), opts.workdir.clone())?,
            child: Arc::new(Mutex::new(Some(child))),
            pgid,
            scratch,
            closed: AtomicBool::new(false),
            log: log.clone(),
        };
        ws.register_release();
        if let Err(e) = ws.remote.wait_until_alive(opts.start_timeout).await {
            let _ = ws.close_sandbox().await;
            let log = log.lock().map(|l| l.join("\n")).unwrap_or_default();
            return Err(WorkspaceError::Timeout(format!(
                "apptainer: {e}; its output:\n{log}"
            )));
        }
        Ok(ws)
    }

    pub fn remote(&self) -> &RemoteWorkspace {
        &self.remote
    }

    /// The error saying the container's process has exited (killed, say), with its last
    /// output; `None` while it runs and once the workspace is closed.
    fn sandbox_stopped(&self) -> Option<WorkspaceError> {
        if self.closed.load(Ordering::SeqCst) {
            return None;
        }
        let status = self.child.lock().ok()?.as_mut()?.try_wait().ok()??;
        let log = self.log.lock().map(|l| l.join("\n")).unwrap_or_default();
        Some(WorkspaceError::SandboxGone(format!(
            "apptainer: the container ended ({status}) while the run went on; its last output:\n{log}"
        )))
    }

    /// The process group of the container (the `apptainer` process's id).
    pub fn process_group(&self) -> i32 {
        self.pgid
    }

    /// The host directory bound at the working directory.
    pub fn scratch_dir(&self) -> &Path {
        &self.scratch
    }

    fn key(&self) -> String {
        format!("apptainer:{}", self.pgid)
    }

    fn register_release(&self) {
        let (child, pgid, scratch) = (self.child.clone(), self.pgid, self.scratch.clone());
        release::register(&self.key(), move || stop_group(&child, pgid, &scratch));
    }

    async fn pause_sandbox(&self) -> Result<(), WorkspaceError> {
        Err(WorkspaceError::Unsupported {
            kind: "apptainer",
            operation: "pause",
        })
    }

    async fn resume_sandbox(&self) -> Result<(), WorkspaceError> {
        Err(WorkspaceError::Unsupported {
            kind: "apptainer",
            operation: "resume",
        })
    }

    /// Ends the process group and removes the scratch directory. Idempotent.
    async fn close_sandbox(&self) -> Result<(), WorkspaceError> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        release::unregister(&self.key());
        let (child, pgid, scratch) = (self.child.clone(), self.pgid, self.scratch.clone());
        blocking(move || {
            stop_group(&child, pgid, &scratch);
            Ok::<_, WorkspaceError>(())
        })
        .await
    }
}

remote_sandbox_workspace!(ApptainerWorkspace, WorkspaceKind::Apptainer, stopped: sandbox_stopped);

impl Drop for ApptainerWorkspace {
    fn drop(&mut self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        release::unregister(&self.key());
        stop_group(&self.child, self.pgid, &self.scratch);
    }
}

/// SIGTERM to the group, SIGKILL after the grace period; reaps the leader; removes scratch.
fn stop_group(child: &Mutex<Option<Child>>, pgid: i32, scratch: &Path) {
    let taken = child.lock().ok().and_then(|mut c| c.take());
    if let Some(mut child) = taken {
        // SAFETY: plain syscalls on a process group this process created.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let deadline = Instant::now() + TERM_GRACE;
        while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(scratch);
}

/// The SIF to run: the given file, or the image's SIF in the cache (built when missing).
fn prepare_sif(opts: &ApptainerOptions) -> Result<PathBuf, WorkspaceError> {
    let image = match &opts.source {
        SifSource::File(path) if path.is_file() => return Ok(path.clone()),
        SifSource::File(path) => {
            return Err(WorkspaceError::Setup(format!(
                "apptainer: the SIF file {} does not exist; check --apptainer-sif",
                path.display()
            )))
        }
        SifSource::Image(image) => image,
    };
    super::sif_cache::ensure_private_dir(&opts.cache_dir)?;
    let sif = opts.cache_dir.join(sif_name(image));
    if super::sif_cache::reusable(&sif)? {
        return Ok(sif);
    }
    let partial = sif.with_extension(format!("sif.{}.part", std::process::id()));
    let source = if image.contains("://") {
        image.clone()
    } else {
        format!("docker://{image}")
    };
    let out = Command::new(&opts.program)
        .arg("build")
        .arg(&partial)
        .arg(&source)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| not_found(&opts.program, e))?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&partial);
        return Err(WorkspaceError::Engine(format!(
            "apptainer: cannot build a SIF from {source}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    std::fs::rename(&partial, &sif)?;
    Ok(sif)
}

/// `ghcr.io/org/img:tag` → `ghcr.io_org_img_tag.sif`.
pub fn sif_name(image: &str) -> String {
    let base = image.split("://").last().unwrap_or(image);
    format!("{}.sif", base.replace([':', '/'], "_"))
}

fn not_found(program: &Path, e: std::io::Error) -> WorkspaceError {
    WorkspaceError::Setup(format!(
        "apptainer: cannot run {}: {e}; install Apptainer or pass --apptainer-program",
        program.display()
    ))
}

/// A private (0700) scratch directory with `workspace/` (holding the snapshot of `repo`),
/// `conversations/` and nothing else yet.
fn make_scratch(repo: Option<&Path>, exclude: &[PathBuf]) -> Result<PathBuf, WorkspaceError> {
    // tempfile's directories are created 0700 under an unpredictable name; the workspace
    // removes it when it closes (and the release registry if the process is stopped).
    let scratch = tempfile::Builder::new()
        .prefix("sandcrab-apptainer-")
        .tempdir()?
        .keep();
    std::fs::create_dir(scratch.join("conversations"))?;
    let workspace = scratch.join("workspace");
    std::fs::create_dir(&workspace)?;
    if let Some(repo) = repo {
        if let Err(e) = copy_snapshot(repo, &workspace, exclude) {
            let _ = std::fs::remove_dir_all(&scratch);
            return Err(WorkspaceError::Transfer(format!(
                "apptainer: cannot copy {} into the sandbox: {e}",
                repo.display()
            )));
        }
    }
    Ok(scratch)
}

/// The repository's snapshot (see `snapshot`) unpacked at `dest`, modes and links kept.
fn copy_snapshot(repo: &Path, dest: &Path, exclude: &[PathBuf]) -> std::io::Result<()> {
    let tar = dest.with_extension("snapshot.tar");
    let written = super::snapshot::write_tar_file(repo, &tar, exclude).and_then(|()| {
        let mut archive = tar::Archive::new(std::fs::File::open(&tar)?);
        archive.set_preserve_permissions(true);
        archive.set_preserve_mtime(true);
        archive.unpack(dest)
    });
    let _ = std::fs::remove_file(&tar);
    written
}

/// The `apptainer exec` arguments (after the program name).
pub fn exec_args(opts: &ApptainerOptions, sif: &Path, scratch: &Path) -> Vec<String> {
    let mut args: Vec<String> = ["exec", "--containall", "--no-home", "--env-file"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(scratch.join("env").display().to_string());
    if opts.fakeroot {
        args.push("--fakeroot".into());
    }
    if opts.gpu {
        args.push("--nv".into());
    }
    let binds = [
        format!("{}:{BINARY_IN_CONTAINER}:ro", opts.sandbox_binary.display()),
        format!("{}:{}", scratch.join("workspace").display(), opts.workdir),
        format!(
            "{}:{CONVERSATIONS_IN_CONTAINER}",
            scratch.join("conversations").display()
        ),
    ];
    for bind in binds.iter().chain(&opts.binds) {
        args.push("--bind".into());
        args.push(bind.clone());
    }
    args.push(sif.display().to_string());
    for arg in [
        BINARY_IN_CONTAINER,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--working-dir",
    ] {
        args.push(arg.into());
    }
    args.push(opts.workdir.clone());
    args.push("--conversations-dir".into());
    args.push(CONVERSATIONS_IN_CONTAINER.into());
    args.push("--idle-timeout-minutes".into());
    args.push(super::SANDBOX_IDLE_TIMEOUT_MINUTES.into());
    args
}

/// The env file: the session key and the forwarded variables, owner-only.
fn write_env_file(path: &Path, key: &str, env: &[(String, String)]) -> std::io::Result<()> {
    let mut text = format!("SESSION_API_KEY={}\n", shell_quote(key));
    for (name, value) in env {
        text.push_str(&format!("{name}={}\n", shell_quote(value)));
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    std::io::Write::write_all(&mut file, text.as_bytes())
}

type Log = Arc<Mutex<Vec<String>>>;

/// Starts `apptainer exec` in its own process group; returns it, the server's URL (from its
/// first line of output) and its collected stderr.
fn launch(
    opts: &ApptainerOptions,
    sif: &Path,
    scratch: &Path,
    key: &str,
) -> Result<(Child, String, Log), WorkspaceError> {
    write_env_file(&scratch.join("env"), key, &opts.env)?;
    let mut child = Command::new(&opts.program)
        .args(exec_args(opts, sif, scratch))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| not_found(&opts.program, e))?;
    let pgid = child.id() as i32;
    let scratch_dir = scratch.to_path_buf();
    // Until the workspace registers itself (same key), a cleanup kills the group by id.
    release::register(&format!("apptainer:{pgid}"), move || {
        // SAFETY: plain syscall on the process group this process just created.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = std::fs::remove_dir_all(&scratch_dir);
    });
    let log = collect(child.stderr.take());
    let first = first_line(&mut child);
    match first.strip_prefix("sandcrab serve: listening on ") {
        Some(rest) => {
            let url = rest.split_whitespace().next().unwrap_or("").to_string();
            Ok((child, url, log))
        }
        None => {
            release::unregister(&format!("apptainer:{pgid}"));
            stop_group(&Mutex::new(Some(child)), pgid, Path::new("/nonexistent"));
            let log = log.lock().map(|l| l.join("\n")).unwrap_or_default();
            Err(WorkspaceError::SandboxGone(format!(
                "apptainer: the container exited before its agent-server started; its output:\n{first}{log}"
            )))
        }
    }
}

/// The child's first stdout line; the rest is drained in the background.
fn first_line(child: &mut Child) -> String {
    let Some(stdout) = child.stdout.take() else {
        return String::new();
    };
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    let _ = reader.read_line(&mut line);
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    line.trim().to_string()
}

/// Keeps the last 50 lines of `stream` (for error messages).
fn collect(stream: Option<impl Read + Send + 'static>) -> Log {
    let log: Log = Arc::default();
    if let Some(stream) = stream {
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if let Ok(mut lines) = sink.lock() {
                    lines.push(line);
                    let excess = lines.len().saturating_sub(50);
                    lines.drain(..excess);
                }
            }
        });
    }
    log
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sif_names_flatten_the_image() {
        assert_eq!(sif_name("ghcr.io/org/img:tag"), "ghcr.io_org_img_tag.sif");
        assert_eq!(sif_name("docker-daemon://img:1"), "img_1.sif");
    }

    #[test]
    fn exec_args_contain_and_bind() {
        let mut opts = ApptainerOptions::new(SifSource::File("/x.sif".into()), "/bin/sc");
        opts.binds = vec!["/data:/data:ro".into()];
        let args = exec_args(&opts, Path::new("/x.sif"), Path::new("/s"));
        let joined = args.join(" ");
        assert!(joined.starts_with("exec --containall --no-home --env-file /s/env --bind /bin/sc:/.sandcrab/sandcrab:ro --bind /s/workspace:/workspace"), "{joined}");
        assert!(
            joined.contains(
                "--bind /data:/data:ro /x.sif /.sandcrab/sandcrab serve --host 127.0.0.1 --port 0"
            ),
            "{joined}"
        );
        assert!(!joined.contains("SESSION_API_KEY"));
    }
}
