//! `RemoteWorkspace`: a workspace behind an OpenHands agent-server 1.58 (theirs, or our own
//! `sandcrab serve`), reached over HTTP.
//!
//! Wire protocol (the same calls OpenHands' own `RemoteWorkspace` makes):
//! - every call carries `X-Session-API-Key` when a key is set (see `server_api`);
//! - `execute`: `POST /api/bash/start_bash_command {command, timeout, cwd}`, then polls
//!   `GET /api/bash/bash_events/search?command_id__eq=ID&kind__eq=BashOutput&order__gt=N`
//!   (5 ms backing off to 100 ms) until a chunk carries `exit_code`. The server kills the
//!   command at `timeout` and reports exit code -1; the client gives up `DEADLINE_MARGIN` later.
//!   The API has no environment field, so `ExecRequest::env` becomes `export K='v';` prefixes;
//! - `upload`: multipart `POST /api/file/upload?path=ABS` (field `file`), one call per file;
//! - `download`: `GET /api/file/download?path=ABS`, streamed to disk; the server serves files
//!   only, so a directory is listed with `find` (through `execute`) and fetched file by file;
//! - `git_changes` / `git_diff`: `GET /api/git/changes|diff?path=ABS`.
//!
//! Relative paths are taken from `working_dir`. Unreachable server, bad key (401/403) and
//! malformed answers are `WorkspaceError`s; a file operation the server refuses (404, 400...)
//! is a `FileOperationResult` with `success: false`, as for the local workspace.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::StreamExt;
use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{
    CommandResult, ExecRequest, FileOperationResult, GitChange, GitDiff, OutputChunk, Workspace,
    WorkspaceError, WorkspaceKind,
};

pub use super::server_api::{ServerApi, ServerApiError};

/// How long after the command's own timeout the client stops waiting for the server's answer.
const DEADLINE_MARGIN: Duration = Duration::from_secs(5);
const FIRST_POLL: Duration = Duration::from_millis(5);
const MAX_POLL: Duration = Duration::from_millis(100);
/// Consecutive transport failures tolerated while polling a running command.
const POLL_RETRIES: u32 = 3;

/// `path` taken from `base` unless it is absolute; `""` is `base`.
pub fn join_remote(base: &str, path: &str) -> String {
    if path.starts_with('/') {
        return path.to_string();
    }
    let path = path.trim_start_matches("./");
    if path.is_empty() || path == "." {
        return base.to_string();
    }
    format!("{}/{path}", base.trim_end_matches('/'))
}

/// A workspace served by an agent-server.
pub struct RemoteWorkspace {
    api: ServerApi,
    working_dir: String,
}

impl RemoteWorkspace {
    /// A workspace on the agent-server at `host_url` (`http://host:port`), whose commands and
    /// relative paths start from `working_dir` (a path on the server).
    pub fn new(
        host_url: impl AsRef<str>,
        api_key: Option<String>,
        working_dir: impl Into<String>,
    ) -> Result<Self, WorkspaceError> {
        Ok(RemoteWorkspace {
            api: ServerApi::new(host_url.as_ref(), api_key)?,
            working_dir: working_dir.into(),
        })
    }

    /// The server's base URL, without a trailing slash.
    pub fn host(&self) -> &str {
        self.api.base_url()
    }

    pub fn api(&self) -> &ServerApi {
        &self.api
    }

    /// Whether `GET /alive` answers 2xx.
    pub async fn alive(&self) -> bool {
        let rb = self
            .api
            .request(Method::GET, "/alive")
            .timeout(Duration::from_secs(5));
        self.api.send("GET /alive", rb).await.is_ok()
    }

    /// Waits until the server is alive, polling every 250 ms.
    pub async fn wait_until_alive(&self, timeout: Duration) -> Result<(), WorkspaceError> {
        let deadline = crate::duration::deadline(timeout);
        while !self.alive().await {
            if Instant::now() >= deadline {
                return Err(WorkspaceError::Timeout(format!(
                    "the agent-server at {} did not answer GET /alive within {} s",
                    self.host(),
                    timeout.as_secs_f64()
                )));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(())
    }

    /// `GET /server_info`: version, uptime, usable tools...
    pub async fn server_info(&self) -> Result<Value, WorkspaceError> {
        Ok(self.api.get_json("/server_info", &[]).await?)
    }

    fn resolve(&self, path: &str) -> String {
        join_remote(&self.working_dir, path)
    }
}

#[async_trait]
impl Workspace for RemoteWorkspace {
    fn kind(&self) -> WorkspaceKind {
        WorkspaceKind::Remote
    }

    fn working_dir(&self) -> &str {
        &self.working_dir
    }

    async fn execute(&self, request: ExecRequest) -> Result<CommandResult, WorkspaceError> {
        let cwd = self.resolve(request.cwd.as_deref().unwrap_or(""));
        let timeout_secs = request.timeout.as_secs_f64().ceil().max(1.0) as u64;
        let body = json!({
            "command": with_env(&request.command, &request.env),
            "timeout": timeout_secs,
            "cwd": cwd,
        });
        let started: Value = self
            .api
            .post_json("/api/bash/start_bash_command", &body)
            .await?;
        let id = started["id"].as_str().ok_or_else(|| {
            ServerApiError::malformed("POST /api/bash/start_bash_command", "no command id")
        })?;
        let deadline = crate::duration::deadline(request.timeout.saturating_add(DEADLINE_MARGIN));
        let output = poll_output(&self.api, id, &request, deadline).await?;
        Ok(output.into_result(request))
    }

    async fn upload(
        &self,
        source: &Path,
        destination: &str,
    ) -> Result<FileOperationResult, WorkspaceError> {
        let dest = self.resolve(destination);
        let result = upload_tree(&self.api, source, &dest).await;
        op_result(&source.to_string_lossy(), &dest, result)
    }

    async fn download(
        &self,
        source: &str,
        destination: &Path,
    ) -> Result<FileOperationResult, WorkspaceError> {
        let src = self.resolve(source);
        let result = match download_file(&self.api, &src, destination).await {
            Err(OpError::NotAFile(msg)) => self.download_dir(&src, destination, msg).await,
            other => other,
        };
        op_result(&src, &destination.to_string_lossy(), result)
    }

    async fn git_changes(&self, path: &str) -> Result<Vec<GitChange>, WorkspaceError> {
        let query = [("path", self.resolve(path))];
        Ok(self.api.get_json("/api/git/changes", &query).await?)
    }

    async fn git_diff(&self, path: &str) -> Result<GitDiff, WorkspaceError> {
        let query = [("path", self.resolve(path))];
        Ok(self.api.get_json("/api/git/diff", &query).await?)
    }

    async fn close(&self) -> Result<(), WorkspaceError> {
        Ok(())
    }
}

/// `command` with `export K='v';` for each variable (the bash API has no environment field).
fn with_env(command: &str, env: &[(String, String)]) -> String {
    let exports: String = env
        .iter()
        .filter(|(k, _)| is_env_name(k))
        .map(|(k, v)| format!("export {k}={}; ", shell_quote(v)))
        .collect();
    format!("{exports}{command}")
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `s` in single quotes, safe for `sh`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// One `BashOutput` event.
#[derive(Debug, Deserialize)]
struct BashOutput {
    #[serde(default)]
    order: Option<i64>,
    #[serde(default)]
    exit_code: Option<i32>,
    #[serde(default)]
    stdout: Option<String>,
    #[serde(default)]
    stderr: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Page<T> {
    items: Vec<T>,
}

/// What a command printed so far, and how it ended.
#[derive(Default)]
struct Collected {
    stdout: String,
    stderr: String,
    exit_code: Option<i32>,
    last_order: Option<i64>,
}

impl Collected {
    /// Takes a chunk unless it was seen; returns whether it was new.
    fn take(&mut self, chunk: BashOutput, request: &ExecRequest) -> bool {
        if let (Some(order), Some(last)) = (chunk.order, self.last_order) {
            if order <= last {
                return false;
            }
        }
        self.last_order = chunk.order.or(self.last_order);
        if let Some(text) = chunk.stdout.filter(|s| !s.is_empty()) {
            forward(request, OutputChunk::Stdout(text.clone()));
            self.stdout.push_str(&text);
        }
        if let Some(text) = chunk.stderr.filter(|s| !s.is_empty()) {
            forward(request, OutputChunk::Stderr(text.clone()));
            self.stderr.push_str(&text);
        }
        self.exit_code = self.exit_code.or(chunk.exit_code);
        true
    }

    /// The result; no exit code (client deadline) or -1 (the server killed it) is a timeout.
    fn into_result(mut self, request: ExecRequest) -> CommandResult {
        let exit_code = self.exit_code.unwrap_or(-1);
        let timed_out = exit_code == -1;
        if timed_out {
            self.stderr.push_str(&format!(
                "\nCommand timed out after {} seconds",
                request.timeout.as_secs_f64()
            ));
        }
        CommandResult {
            command: request.command,
            exit_code,
            stdout: self.stdout,
            stderr: self.stderr,
            timeout_occurred: timed_out,
        }
    }
}

fn forward(request: &ExecRequest, chunk: OutputChunk) {
    if let Some(sink) = &request.output {
        let _ = sink.send(chunk);
    }
}

/// Polls the command's output chunks until one has an exit code or `deadline` passes.
async fn poll_output(
    api: &ServerApi,
    id: &str,
    request: &ExecRequest,
    deadline: Instant,
) -> Result<Collected, ServerApiError> {
    let mut out = Collected::default();
    let mut delay = FIRST_POLL;
    let mut failures = 0;
    while out.exit_code.is_none() && Instant::now() < deadline {
        let page = match output_page(api, id, out.last_order).await {
            Ok(page) => page,
            Err(e) if e.status.is_none() && failures < POLL_RETRIES => {
                failures += 1;
                tracing::debug!("retrying a failed poll of command {id}: {e}");
                Page { items: Vec::new() }
            }
            Err(e) => return Err(e),
        };
        let mut progressed = false;
        for chunk in page.items {
            progressed |= out.take(chunk, request);
        }
        if out.exit_code.is_some() {
            break;
        }
        delay = if progressed {
            FIRST_POLL
        } else {
            (delay * 2).min(MAX_POLL)
        };
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(delay.min(left)).await;
    }
    Ok(out)
}

async fn output_page(
    api: &ServerApi,
    id: &str,
    after: Option<i64>,
) -> Result<Page<BashOutput>, ServerApiError> {
    let mut query = vec![
        ("command_id__eq", id.to_string()),
        ("kind__eq", "BashOutput".to_string()),
        ("sort_order", "TIMESTAMP".to_string()),
        ("limit", "100".to_string()),
    ];
    if let Some(order) = after {
        query.push(("order__gt", order.to_string()));
    }
    api.get_json("/api/bash/bash_events/search", &query).await
}

/// Why a file operation failed: the server is unusable, or this operation was refused.
enum OpError {
    Fatal(ServerApiError),
    Failed(String),
    /// The download source is not a regular file (maybe a directory).
    NotAFile(String),
}

impl From<ServerApiError> for OpError {
    fn from(e: ServerApiError) -> Self {
        if e.is_fatal() {
            OpError::Fatal(e)
        } else if e.status == Some(StatusCode::BAD_REQUEST) {
            OpError::NotAFile(e.message)
        } else {
            OpError::Failed(e.message)
        }
    }
}

impl From<std::io::Error> for OpError {
    fn from(e: std::io::Error) -> Self {
        OpError::Failed(e.to_string())
    }
}

fn op_result(
    source: &str,
    dest: &str,
    result: Result<u64, OpError>,
) -> Result<FileOperationResult, WorkspaceError> {
    let (success, file_size, error) = match result {
        Ok(size) => (true, Some(size), None),
        Err(OpError::Fatal(e)) => return Err(e.into()),
        Err(OpError::Failed(msg) | OpError::NotAFile(msg)) => (false, None, Some(msg)),
    };
    Ok(FileOperationResult {
        success,
        source_path: source.to_string(),
        destination_path: dest.to_string(),
        file_size,
        error,
    })
}

/// Uploads a file, or every file under a directory, to `dest`; returns the bytes sent.
async fn upload_tree(api: &ServerApi, source: &Path, dest: &str) -> Result<u64, OpError> {
    let meta = tokio::fs::metadata(source)
        .await
        .map_err(|e| OpError::Failed(format!("cannot read {}: {e}", source.display())))?;
    if !meta.is_dir() {
        return upload_file(api, source, dest).await;
    }
    let root = source.to_path_buf();
    let files = tokio::task::spawn_blocking(move || list_files(&root))
        .await
        .map_err(|e| OpError::Failed(e.to_string()))??;
    let mut total = 0;
    for rel in files {
        let remote = join_remote(dest, &rel.to_string_lossy());
        total += upload_file(api, &source.join(&rel), &remote).await?;
    }
    Ok(total)
}

/// Regular files under `root` (following symlinks), as paths relative to it.
fn list_files(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(root.join(&rel))? {
            let rel = rel.join(entry?.file_name());
            match std::fs::metadata(root.join(&rel)) {
                Ok(m) if m.is_dir() => stack.push(rel),
                Ok(m) if m.is_file() => out.push(rel),
                _ => {}
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Streams one local file to `POST /api/file/upload?path=dest`.
async fn upload_file(api: &ServerApi, local: &Path, dest: &str) -> Result<u64, OpError> {
    let file = tokio::fs::File::open(local)
        .await
        .map_err(|e| OpError::Failed(format!("cannot read {}: {e}", local.display())))?;
    let len = file.metadata().await?.len();
    let name = local
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let part = reqwest::multipart::Part::stream_with_length(file_body(file), len)
        .file_name(name)
        .mime_str("application/octet-stream")
        .map_err(|e| OpError::Failed(e.to_string()))?;
    let form = reqwest::multipart::Form::new().part("file", part);
    let rb = api
        .request(Method::POST, "/api/file/upload")
        .query(&[("path", dest)])
        .timeout(Duration::from_secs(600))
        .multipart(form);
    let resp = api.send("POST /api/file/upload", rb).await?;
    let answer: Value = resp.json().await.unwrap_or(Value::Null);
    if answer["success"] == json!(false) {
        return Err(OpError::Failed(format!(
            "the agent-server refused the upload to {dest}: {answer}"
        )));
    }
    Ok(answer["file_size"].as_u64().unwrap_or(len))
}

/// A request body reading `file` in 64 KiB pieces.
fn file_body(file: tokio::fs::File) -> reqwest::Body {
    let chunks = futures_util::stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(buf), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    reqwest::Body::wrap_stream(chunks)
}

/// Streams `GET /api/file/download?path=src` into `dest`; returns the bytes written.
async fn download_file(api: &ServerApi, src: &str, dest: &Path) -> Result<u64, OpError> {
    let rb = api
        .request(Method::GET, "/api/file/download")
        .query(&[("path", src)])
        .timeout(Duration::from_secs(600));
    let resp = api.send("GET /api/file/download", rb).await?;
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(parent).await?;
    }
    let written = write_body(resp, dest).await;
    if written.is_err() {
        let _ = tokio::fs::remove_file(dest).await;
    }
    written
}

async fn write_body(resp: Response, dest: &Path) -> Result<u64, OpError> {
    let mut file = tokio::fs::File::create(dest)
        .await
        .map_err(|e| OpError::Failed(format!("cannot write {}: {e}", dest.display())))?;
    let mut total = 0u64;
    let mut body = resp.bytes_stream();
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(|e| OpError::Failed(format!("download cut off: {e}")))?;
        file.write_all(&piece).await?;
        total += piece.len() as u64;
    }
    file.flush().await?;
    Ok(total)
}

impl RemoteWorkspace {
    /// Downloads every file under the remote directory `src` (listed with `find`) into
    /// `dest`; when `src` is not a directory, fails with `not_a_file`, the server's message.
    async fn download_dir(
        &self,
        src: &str,
        dest: &Path,
        not_a_file: String,
    ) -> Result<u64, OpError> {
        let listing = format!("cd {} && find . -type f -print0", shell_quote(src));
        let found = self
            .execute(ExecRequest::new(listing).cwd("/"))
            .await
            .map_err(|e| OpError::Failed(e.to_string()))?;
        if found.exit_code != 0 {
            return Err(OpError::Failed(not_a_file));
        }
        let mut total = 0;
        for rel in found.stdout.split('\0').filter(|p| !p.is_empty()) {
            let rel = rel.trim_start_matches("./");
            total += download_file(&self.api, &join_remote(src, rel), &dest.join(rel)).await?;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_join_the_working_dir() {
        assert_eq!(join_remote("/w/", "a/b"), "/w/a/b");
        assert_eq!(join_remote("/w", "/abs"), "/abs");
        assert_eq!(join_remote("/w", ""), "/w");
        assert_eq!(join_remote("/w", "."), "/w");
        assert_eq!(join_remote("/w", "./x"), "/w/x");
    }

    #[test]
    fn env_becomes_quoted_exports() {
        let env = vec![
            ("A".to_string(), "it's".to_string()),
            ("bad-name".to_string(), "x".to_string()),
        ];
        assert_eq!(with_env("echo $A", &env), r"export A='it'\''s'; echo $A");
    }
}
