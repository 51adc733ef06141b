//! `LocalWorkspace`: a directory of this machine. Commands run as `sh -c` children in their own
//! process group (so a timeout kills the whole tree); files are copied with the file system.
//! No isolation: use it where the runner itself is disposable.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::mpsc::UnboundedSender;

use super::{
    git, CommandResult, ExecRequest, FileOperationResult, GitChange, GitDiff, OutputChunk,
    Workspace, WorkspaceError, WorkspaceKind,
};

pub struct LocalWorkspace {
    root: PathBuf,
    root_str: String,
}

impl LocalWorkspace {
    /// A workspace on `root`, which must be an existing directory.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, WorkspaceError> {
        let root: PathBuf = root.into();
        let root = root.canonicalize().map_err(|e| {
            WorkspaceError::Setup(format!(
                "cannot use {} as the workspace: {e}",
                root.display()
            ))
        })?;
        if !root.is_dir() {
            return Err(WorkspaceError::Setup(format!(
                "{} is not a directory",
                root.display()
            )));
        }
        let root_str = root.to_string_lossy().into_owned();
        Ok(LocalWorkspace { root, root_str })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `path` made absolute against the working directory.
    fn resolve(&self, path: &str) -> PathBuf {
        self.root.join(path)
    }
}

#[async_trait]
impl Workspace for LocalWorkspace {
    fn kind(&self) -> WorkspaceKind {
        WorkspaceKind::Local
    }

    fn working_dir(&self) -> &str {
        &self.root_str
    }

    async fn execute(&self, request: ExecRequest) -> Result<CommandResult, WorkspaceError> {
        let cwd = request
            .cwd
            .as_deref()
            .map_or(self.root.clone(), |c| self.resolve(c));
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(&request.command).current_dir(&cwd);
        // Every secret of the runner (the agent-server's own key, the model key, CI tokens):
        // neither the agent's commands nor the patch script (with whatever hooks or filters the
        // agent planted) can read them.
        for key in crate::secret_env::names_to_remove() {
            cmd.env_remove(key);
        }
        cmd.envs(request.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.process_group(0).kill_on_drop(true);
        let child = cmd.spawn().map_err(|e| {
            WorkspaceError::Setup(format!("cannot start a shell in {}: {e}", cwd.display()))
        })?;
        run_child(child, request).await
    }

    async fn upload(
        &self,
        source: &Path,
        destination: &str,
    ) -> Result<FileOperationResult, WorkspaceError> {
        let dest = self.resolve(destination);
        Ok(copy_result(source, &dest, copy_tree(source, &dest).await))
    }

    async fn download(
        &self,
        source: &str,
        destination: &Path,
    ) -> Result<FileOperationResult, WorkspaceError> {
        let src = self.resolve(source);
        Ok(copy_result(
            &src,
            destination,
            copy_tree(&src, destination).await,
        ))
    }

    async fn git_changes(&self, path: &str) -> Result<Vec<GitChange>, WorkspaceError> {
        git::changes(&self.resolve(path)).await
    }

    async fn git_diff(&self, path: &str) -> Result<GitDiff, WorkspaceError> {
        git::diff(&self.resolve(path)).await
    }

    async fn close(&self) -> Result<(), WorkspaceError> {
        Ok(())
    }
}

/// Waits for `child` with the request's timeout, streaming and collecting its output.
async fn run_child(
    mut child: tokio::process::Child,
    request: ExecRequest,
) -> Result<CommandResult, WorkspaceError> {
    let pgid = child.id().map(|p| p as i32);
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let out_task = tokio::spawn(pump(stdout, request.output.clone(), OutputChunk::Stdout));
    let err_task = tokio::spawn(pump(stderr, request.output.clone(), OutputChunk::Stderr));
    let (exit_code, timed_out) = match tokio::time::timeout(request.timeout, child.wait()).await {
        Ok(status) => (status?.code().unwrap_or(-1), false),
        Err(_) => {
            kill_group(pgid);
            let _ = child.wait().await;
            (-1, true)
        }
    };
    let stdout = out_task.await.unwrap_or_default();
    let mut stderr = err_task.await.unwrap_or_default();
    if timed_out {
        stderr.push_str(&format!(
            "\nCommand timed out after {} seconds",
            request.timeout.as_secs_f64()
        ));
    }
    Ok(CommandResult {
        command: request.command,
        exit_code,
        stdout,
        stderr,
        timeout_occurred: timed_out,
    })
}

fn kill_group(pgid: Option<i32>) {
    if let Some(pgid) = pgid {
        // SAFETY: kill(2) on a process group we created; no memory is touched.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// Reads a pipe to its end (also after the direct child exits, until every holder closes it,
/// bounded by the group kill on timeout), forwarding each piece to `sink`.
async fn pump<R: AsyncRead + Unpin>(
    mut pipe: R,
    sink: Option<UnboundedSender<OutputChunk>>,
    wrap: fn(String) -> OutputChunk,
) -> String {
    let mut all = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(sink) = &sink {
                    let _ = sink.send(wrap(String::from_utf8_lossy(&buf[..n]).into_owned()));
                }
                all.extend_from_slice(&buf[..n]);
            }
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

/// Copies a file, or a directory recursively, creating the destination's parents.
pub async fn copy_tree(source: &Path, dest: &Path) -> std::io::Result<u64> {
    let source = source.to_path_buf();
    let dest = dest.to_path_buf();
    tokio::task::spawn_blocking(move || copy_tree_blocking(&source, &dest))
        .await
        .map_err(std::io::Error::other)?
}

fn copy_tree_blocking(source: &Path, dest: &Path) -> std::io::Result<u64> {
    let meta = std::fs::symlink_metadata(source)?;
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(source)?;
        let _ = std::fs::remove_file(dest);
        std::os::unix::fs::symlink(target, dest)?;
        return Ok(0);
    }
    if !meta.is_dir() {
        return std::fs::copy(source, dest);
    }
    std::fs::create_dir_all(dest)?;
    let mut total = 0;
    for entry in std::fs::read_dir(source)? {
        let entry = entry?;
        total += copy_tree_blocking(&entry.path(), &dest.join(entry.file_name()))?;
    }
    Ok(total)
}

fn copy_result(source: &Path, dest: &Path, result: std::io::Result<u64>) -> FileOperationResult {
    let (success, file_size, error) = match result {
        Ok(size) => (true, Some(size), None),
        Err(e) => (false, None, Some(e.to_string())),
    };
    FileOperationResult {
        success,
        source_path: source.to_string_lossy().into_owned(),
        destination_path: dest.to_string_lossy().into_owned(),
        file_size,
        error,
    }
}
