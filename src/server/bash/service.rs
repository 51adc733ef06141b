//! `BashService`: runs the commands of `/api/bash` and keeps their events. A command runs as
//! `/bin/sh -c` in its own process group, without the runner's secrets in its environment; its
//! output is cut into events (whole UTF-8 characters, at most `CHUNK` bytes each) and recorded
//! in the event store; on timeout or stop its group gets SIGTERM, then SIGKILL.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};

use super::events::{BashCommand, ExecuteBashRequest, Piece, Store};

/// Output is sent in events of at most this many bytes.
pub(super) const CHUNK: usize = 1 << 20;
/// Output waits this long for more before it is sent.
const FLUSH_DELAY: Duration = Duration::from_millis(100);
/// After the shell exits, how long its pipes may stay open (held by a background process).
const PIPE_GRACE: Duration = Duration::from_millis(100);
/// Between SIGTERM and SIGKILL when a command is stopped or times out.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// Runs commands and keeps their events; shared by the handlers.
#[derive(Clone)]
pub struct BashService {
    store: Arc<Mutex<Store>>,
    working_dir: Arc<PathBuf>,
}

impl BashService {
    /// A service running commands in `working_dir` unless told another `cwd`.
    pub fn new(working_dir: PathBuf) -> Self {
        BashService {
            store: Arc::new(Mutex::new(Store::default())),
            working_dir: Arc::new(working_dir),
        }
    }

    pub(super) fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a command in the background; the handle ends when its last event is recorded.
    pub(super) fn start(&self, request: ExecuteBashRequest) -> (Arc<BashCommand>, JoinHandle<()>) {
        let (stop_tx, stop_rx) = oneshot::channel();
        let command = self.store().add_command(request, stop_tx);
        let task = tokio::spawn(run(self.clone(), command.clone(), stop_rx));
        (command, task)
    }

    fn record(&self, command_id: &str, pieces: Vec<Piece>, exit_code: Option<i32>) {
        self.store().add_output(command_id, pieces, exit_code);
    }

    fn cwd(&self, cwd: Option<&str>) -> PathBuf {
        cwd.map_or_else(
            || self.working_dir.to_path_buf(),
            |c| self.working_dir.join(c),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Running a command

async fn run(service: BashService, command: Arc<BashCommand>, stop: oneshot::Receiver<()>) {
    let cwd = service.cwd(command.cwd.as_deref());
    match spawn(&command.command, &cwd) {
        Ok(child) => Runner::new(service, &command, child, stop).run().await,
        Err(e) => {
            let message = format!("Error executing command: {}", spawn_error(&e, &cwd));
            service.record(&command.id, vec![(None, Some(message))], Some(-1));
        }
    }
}

fn spawn(command: &str, cwd: &Path) -> std::io::Result<Child> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(command).current_dir(cwd);
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if crate::secret_env::is_secret(&key_text) {
            cmd.env_remove(&key);
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    cmd.spawn()
}

/// Python's wording, which OpenHands clients see: `[Errno 2] No such file or directory: '/x'`.
fn spawn_error(e: &std::io::Error, cwd: &Path) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let text = std::io::Error::from_raw_os_error(code).to_string();
            let text = text
                .split(" (os error")
                .next()
                .unwrap_or_default()
                .to_string();
            format!("[Errno {code}] {text}: '{}'", cwd.display())
        }
        None => e.to_string(),
    }
}

/// Why a command was ended by the server.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ending {
    Timeout,
    Stopped,
}

/// One running command: reads its pipes, sends its output, ends it on timeout or stop.
struct Runner {
    service: BashService,
    id: String,
    child: Child,
    pgid: i32,
    stdout: Option<tokio::process::ChildStdout>,
    stderr: Option<tokio::process::ChildStderr>,
    out: Vec<u8>,
    err: Vec<u8>,
    stop: Option<oneshot::Receiver<()>>,
    deadline: Option<Instant>,
    flush_at: Option<Instant>,
    kill_at: Option<Instant>,
    drain_until: Option<Instant>,
    status: Option<std::io::Result<ExitStatus>>,
    ending: Option<Ending>,
}

impl Runner {
    fn new(
        service: BashService,
        command: &BashCommand,
        mut child: Child,
        stop: oneshot::Receiver<()>,
    ) -> Self {
        let seconds = command.timeout.max(0) as u64;
        Runner {
            service,
            id: command.id.clone(),
            pgid: child.id().map_or(0, |p| p as i32),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
            child,
            out: Vec::new(),
            err: Vec::new(),
            stop: Some(stop),
            deadline: Instant::now().checked_add(Duration::from_secs(seconds)),
            flush_at: None,
            kill_at: None,
            drain_until: None,
            status: None,
            ending: None,
        }
    }

    async fn run(mut self) {
        while !self.finished() {
            self.step().await;
        }
        let exit_code = self.exit_code();
        let pieces = take_pieces(&mut self.out, &mut self.err, Flush::All);
        self.service.record(&self.id, pieces, Some(exit_code));
    }

    fn finished(&self) -> bool {
        let drained = self.stdout.is_none() && self.stderr.is_none();
        let grace_over = self.drain_until.is_some_and(|t| t <= Instant::now());
        self.status.is_some() && (drained || grace_over)
    }

    /// Waits for the next thing to happen and handles it.
    async fn step(&mut self) {
        self.out.reserve(64 * 1024);
        self.err.reserve(64 * 1024);
        let exited = self.status.is_some();
        tokio::select! {
            biased;
            asked = stopped(&mut self.stop) => {
                self.stop = None;
                if asked {
                    self.end(Ending::Stopped);
                }
            }
            _ = at(self.deadline) => {
                self.deadline = None;
                self.end(Ending::Timeout);
            }
            status = self.child.wait(), if !exited => self.exited(status),
            n = read(self.stdout.as_mut(), &mut self.out) => {
                if !matches!(n, Ok(n) if n > 0) {
                    self.stdout = None;
                }
                self.received();
            }
            n = read(self.stderr.as_mut(), &mut self.err) => {
                if !matches!(n, Ok(n) if n > 0) {
                    self.stderr = None;
                }
                self.received();
            }
            _ = at(self.flush_at) => {
                self.flush_at = None;
                self.send(Flush::Ready);
            }
            _ = at(self.kill_at) => {
                self.kill_at = None;
                self.signal(libc::SIGKILL);
            }
            _ = at(self.drain_until) => {}
        }
    }

    /// Sends whole chunks at once; schedules the rest.
    fn received(&mut self) {
        if self.out.len() >= CHUNK || self.err.len() >= CHUNK {
            self.send(Flush::Whole);
        }
        let pending = !self.out.is_empty() || !self.err.is_empty();
        if pending && self.flush_at.is_none() {
            self.flush_at = Some(Instant::now() + FLUSH_DELAY);
        }
    }

    fn send(&mut self, how: Flush) {
        let pieces = take_pieces(&mut self.out, &mut self.err, how);
        if !pieces.is_empty() {
            self.service.record(&self.id, pieces, None);
        }
    }

    /// Ends the command: SIGTERM to its group now, SIGKILL if it lingers.
    fn end(&mut self, why: Ending) {
        if self.status.is_some() || self.ending.is_some() {
            return;
        }
        self.ending = Some(why);
        self.signal(libc::SIGTERM);
        self.kill_at = Some(Instant::now() + KILL_GRACE);
    }

    fn exited(&mut self, status: std::io::Result<ExitStatus>) {
        self.status = Some(status);
        self.kill_at = None;
        if self.ending.is_some() {
            // What is left of a command we ended goes too, so its pipes close.
            self.signal(libc::SIGKILL);
        }
        self.drain_until = Some(Instant::now() + PIPE_GRACE);
    }

    fn signal(&self, signal: i32) {
        if self.pgid > 0 {
            // SAFETY: kill has no memory-safety preconditions; the group is the command's own.
            unsafe {
                libc::kill(-self.pgid, signal);
            }
        }
    }

    /// -1 on timeout or a failed wait, -N when killed by signal N, else the exit status.
    fn exit_code(&self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        if self.ending == Some(Ending::Timeout) {
            return -1;
        }
        match &self.status {
            Some(Ok(status)) => status.code().or(status.signal().map(|s| -s)).unwrap_or(-1),
            _ => -1,
        }
    }
}

/// Whether a stop was asked (false: it no longer can be).
async fn stopped(stop: &mut Option<oneshot::Receiver<()>>) -> bool {
    match stop {
        Some(rx) => rx.await.is_ok(),
        None => std::future::pending().await,
    }
}

async fn at(when: Option<Instant>) {
    match when {
        Some(t) => sleep_until(t).await,
        None => std::future::pending().await,
    }
}

async fn read<R: AsyncRead + Unpin>(
    pipe: Option<&mut R>,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    match pipe {
        Some(pipe) => pipe.read_buf(buf).await,
        None => std::future::pending().await,
    }
}

// ---------------------------------------------------------------------------------------------
// Cutting output into events

/// How much of the pending output to send.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Flush {
    /// Only whole `CHUNK`s.
    Whole,
    /// All but an unfinished UTF-8 character at the end.
    Ready,
    /// Everything (the command is over).
    All,
}

/// The pending output as events' text; with `Flush::All`, at least one (maybe empty) piece.
fn take_pieces(out: &mut Vec<u8>, err: &mut Vec<u8>, how: Flush) -> Vec<Piece> {
    let mut pieces = Vec::new();
    loop {
        let piece = (take_text(out, how), take_text(err, how));
        if piece == (None, None) {
            break;
        }
        pieces.push(piece);
    }
    if pieces.is_empty() && how == Flush::All {
        pieces.push((None, None));
    }
    pieces
}

/// Takes up to `CHUNK` bytes from the front of `buf` as text, never splitting a character
/// (unless the output is over).
fn take_text(buf: &mut Vec<u8>, how: Flush) -> Option<String> {
    if how == Flush::Whole && buf.len() < CHUNK {
        return None;
    }
    let mut cut = buf.len().min(CHUNK);
    if how != Flush::All || cut < buf.len() {
        cut = char_boundary(buf, cut);
    }
    if cut == 0 {
        return None;
    }
    let text = String::from_utf8_lossy(&buf[..cut]).into_owned();
    buf.drain(..cut);
    Some(text)
}

/// `cut`, moved back to the start of a UTF-8 character it would split.
fn char_boundary(buf: &[u8], cut: usize) -> usize {
    for start in (cut.saturating_sub(3)..cut).rev() {
        let byte = buf[start];
        if byte & 0xC0 == 0x80 {
            continue; // a continuation byte: the character starts earlier
        }
        let width = match byte {
            0xF0.. => 4,
            0xE0.. => 3,
            0xC0.. => 2,
            _ => 1,
        };
        return if start + width > cut { start } else { cut };
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_never_split_a_character() {
        let mut out = "aé".as_bytes().to_vec();
        out.pop(); // half of é
        let mut err = Vec::new();
        let pieces = take_pieces(&mut out, &mut err, Flush::Ready);
        assert_eq!(pieces, vec![(Some("a".to_string()), None)]);
        assert_eq!(out, vec![0xC3]);
        out.push(0xA9);
        let pieces = take_pieces(&mut out, &mut err, Flush::All);
        assert_eq!(pieces, vec![(Some("é".to_string()), None)]);
    }

    #[test]
    fn big_output_comes_in_whole_chunks() {
        let mut out = vec![b'x'; CHUNK * 2 + 10];
        let mut err = b"e".to_vec();
        let pieces = take_pieces(&mut out, &mut err, Flush::Whole);
        assert_eq!(pieces.len(), 2);
        assert!(pieces
            .iter()
            .all(|(o, e)| o.as_ref().unwrap().len() == CHUNK && e.is_none()));
        assert_eq!((out.len(), err.len()), (10, 1));
        let last = take_pieces(&mut Vec::new(), &mut Vec::new(), Flush::All);
        assert_eq!(last, vec![(None, None)]);
    }
}
