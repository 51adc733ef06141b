//! The terminal's persistent shell session: one `bash` (or `sh`) process in its own session and
//! process group, fed one command line at a time on stdin, its stdout (stderr merged) read by a
//! background task into a buffer.
//!
//! Each command is sent as a single line the shell parses completely before running it:
//! `command eval '<command>'; __sc_rc=$?; printf '\n__SC_<nonce>__ %s %s\n' "$__sc_rc" "$PWD"`.
//! The sentinel line that ends the output carries the exit code and the working directory.
//! (`command` keeps POSIX shells such as dash from exiting on a syntax error inside `eval`.)

use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Past this many unread bytes, the middle of the output is dropped (the model sees a truncated
/// view anyway); keeps a command that prints forever from eating the memory.
const MAX_PENDING: usize = 4 << 20;
/// How much of the head and of the tail of the output survive such a drop.
const KEEP_ON_DROP: usize = 1 << 20;

/// How the shell process is started.
#[derive(Debug, Clone)]
pub struct ShellConfig {
    /// The shell binary (`bash`, `/bin/sh`, `/bin/busybox`).
    pub program: PathBuf,
    /// Arguments before any of ours (`["sh"]` for busybox).
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub env_remove: Vec<String>,
}

impl ShellConfig {
    /// `bash` when it is on PATH, else `sh`.
    pub fn detect() -> Self {
        let program = find_on_path("bash").unwrap_or_else(|| PathBuf::from("sh"));
        Self::with_program(program)
    }

    /// A given shell; `bash` gets `--noprofile --norc`, busybox runs its `sh` applet.
    pub fn with_program(program: impl Into<PathBuf>) -> Self {
        let program = program.into();
        let name = program.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let args = match name {
            "bash" => vec!["--noprofile".into(), "--norc".into()],
            "busybox" => vec!["sh".into()],
            _ => Vec::new(),
        };
        ShellConfig {
            program,
            args,
            env: Vec::new(),
            env_remove: Vec::new(),
        }
    }
}

/// Finds an executable file `name` in the directories of `$PATH`.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// How long to wait for a command.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Give up this long after the wait started.
    pub hard: Option<Duration>,
    /// Give up after this long without new output.
    pub no_change: Option<Duration>,
}

/// How a wait ended.
#[derive(Debug)]
pub enum Outcome {
    /// The sentinel arrived: the command finished.
    Done {
        output: Vec<u8>,
        exit_code: i32,
        cwd: String,
    },
    /// A limit was reached; the command keeps running. `hard` tells which limit.
    TimedOut { output: Vec<u8>, hard: bool },
    /// The shell closed its output (it exited); `code` is its exit status when known.
    Exited { output: Vec<u8>, code: Option<i32> },
}

#[derive(Default)]
struct Pending {
    data: Vec<u8>,
    eof: bool,
    /// Where to resume searching `data` for the sentinel.
    scan_from: usize,
}

impl Pending {
    /// Drops the middle of a huge unread output, keeping its head and tail (with the sentinel).
    fn compact(&mut self) {
        let len = self.data.len();
        if len <= MAX_PENDING {
            return;
        }
        let note = format!(
            "\n[... {} bytes of output dropped ...]\n",
            len - 2 * KEEP_ON_DROP
        );
        self.data
            .splice(KEEP_ON_DROP..len - KEEP_ON_DROP, note.into_bytes());
        self.scan_from = 0;
    }
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    notify: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One running shell.
pub struct ShellSession {
    child: Child,
    stdin: ChildStdin,
    pid: u32,
    marker: Vec<u8>,
    shared: Arc<Shared>,
    reader: JoinHandle<()>,
    running: bool,
}

impl ShellSession {
    /// Starts the shell in `cwd` and sets it up (stderr into stdout, `trap : INT`).
    pub async fn spawn(config: &ShellConfig, cwd: &Path) -> io::Result<Self> {
        let mut child = command(config, cwd).spawn()?;
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other("shell exited at once"))?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("no stdin"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        let shared = Arc::new(Shared::default());
        let reader = tokio::spawn(read_output(stdout, shared.clone()));
        // A second SIGINT (which exits without running Drop) still ends the shell's group.
        crate::workspace::release::register(&release_key(pid), move || {
            // SAFETY: killpg has no memory-safety preconditions; the group is the shell's own.
            unsafe { libc::killpg(pid as libc::pid_t, libc::SIGKILL) };
        });
        let nonce = format!("{:016x}", fastrand::u64(..));
        let mut session = ShellSession {
            child,
            stdin,
            pid,
            marker: format!("\n__SC_{nonce}__ ").into_bytes(),
            shared,
            reader,
            running: false,
        };
        session.write_line("exec 2>&1; trap : INT").await?;
        Ok(session)
    }

    /// The shell's pid (also its process group and session id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether a command was sent and its sentinel has not arrived yet.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Whether the shell closed its output (it exited).
    pub fn is_closed(&self) -> bool {
        self.shared.lock().eof
    }

    /// Sends `command` wrapped in `eval` with the sentinel after it.
    pub async fn run(&mut self, command: &str) -> io::Result<()> {
        let line = self.wrap(command);
        self.write_line(&line).await?;
        self.running = true;
        Ok(())
    }

    fn wrap(&self, command: &str) -> String {
        let quoted = command
            .replace('\0', "")
            .replace("\r\n", "\n")
            .replace('\'', r"'\''");
        let tag = String::from_utf8_lossy(&self.marker[1..])
            .trim_end()
            .to_string();
        format!(
            "command eval '{quoted}\n'; __sc_rc=$?; printf '\\n{tag} %s %s\\n' \"$__sc_rc\" \"$PWD\""
        )
    }

    /// Writes `text` and a newline to the shell's stdin (input for the running program).
    pub async fn send_input(&mut self, text: &str) -> io::Result<()> {
        self.write_line(text).await
    }

    async fn write_line(&mut self, text: &str) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(text.len() + 1);
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(b'\n');
        self.stdin.write_all(&bytes).await?;
        self.stdin.flush().await
    }

    /// Sends `sig` to the whole process group.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: killpg has no memory-safety preconditions; the group is the shell's own.
        unsafe {
            libc::killpg(self.pid as libc::pid_t, sig);
        }
    }

    /// Waits for the sentinel, a limit, or the end of the shell.
    pub async fn wait(&mut self, limits: Limits) -> Outcome {
        let hard = limits.hard.map(|d| Instant::now() + d);
        let mut last_change = Instant::now();
        let shared = self.shared.clone();
        loop {
            // `notify_one` leaves a permit when nobody waits, so no wake-up is lost.
            let notified = shared.notify.notified();
            if let Some(outcome) = self.check().await {
                return outcome;
            }
            let soft = limits.no_change.map(|d| last_change + d);
            let deadline = [hard, soft].into_iter().flatten().min();
            let far = Instant::now() + Duration::from_secs(365 * 86400);
            tokio::select! {
                _ = notified => last_change = Instant::now(),
                // The shell may exit while a background job still holds the pipe open.
                status = self.child.wait() => return self.exited(status.ok()).await,
                _ = tokio::time::sleep_until(deadline.unwrap_or(far)) => {
                    let hard_hit = hard.is_some_and(|h| Instant::now() >= h);
                    let output = self.take_partial();
                    return Outcome::TimedOut { output, hard: hard_hit };
                }
            }
        }
    }

    /// The shell process ended: collects what it printed (briefly waiting for the pipe's end).
    async fn exited(&mut self, status: Option<std::process::ExitStatus>) -> Outcome {
        let shared = self.shared.clone();
        let drained = async {
            loop {
                let notified = shared.notify.notified();
                if shared.lock().eof {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(200), drained).await;
        self.running = false;
        let output = std::mem::take(&mut shared.lock().data);
        let code = status.and_then(|s| s.code().or(s.signal_code()));
        Outcome::Exited { output, code }
    }

    /// Looks for the sentinel in what was read so far.
    async fn check(&mut self) -> Option<Outcome> {
        let output = {
            let shared = self.shared.clone();
            let mut pending = shared.lock();
            if let Some(done) = self.find_sentinel(&mut pending) {
                self.running = false;
                return Some(done);
            }
            if !pending.eof {
                return None;
            }
            std::mem::take(&mut pending.data)
        };
        self.running = false;
        let code = self.reap(Duration::from_secs(1)).await;
        Some(Outcome::Exited { output, code })
    }

    fn find_sentinel(&mut self, pending: &mut Pending) -> Option<Outcome> {
        let data = &pending.data;
        let start = pending.scan_from.min(data.len());
        let Some(rel) = find(&data[start..], &self.marker) else {
            pending.scan_from = data.len().saturating_sub(self.marker.len());
            return None;
        };
        let at = start + rel;
        pending.scan_from = at;
        let rest = &data[at + self.marker.len()..];
        let line_len = rest.iter().position(|&b| b == b'\n')?;
        let line = String::from_utf8_lossy(&rest[..line_len]).into_owned();
        let (code, cwd) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let exit_code = code.trim().parse().unwrap_or(-1);
        let cwd = cwd.to_string();
        let end = at + self.marker.len() + line_len + 1;
        let mut output: Vec<u8> = pending.data.drain(..end).collect();
        output.truncate(at);
        pending.scan_from = 0;
        Some(Outcome::Done {
            output,
            exit_code,
            cwd,
        })
    }

    /// Takes the output read so far, except a possible beginning of the sentinel at its end.
    fn take_partial(&mut self) -> Vec<u8> {
        let shared = self.shared.clone();
        let mut pending = shared.lock();
        let cut = partial_marker_start(&pending.data, &self.marker);
        pending.scan_from = 0;
        pending.data.drain(..cut).collect()
    }

    /// Waits up to `grace` for the shell to exit, then kills it.
    async fn reap(&mut self, grace: Duration) -> Option<i32> {
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) => status.code().or(status.signal_code()),
            _ => {
                self.kill();
                None
            }
        }
    }

    /// Kills the whole process group at once.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.start_kill();
        self.running = false;
    }

    /// Kills the process group and waits for the shell to be gone.
    pub async fn close(mut self) {
        self.kill();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await;
    }
}

impl Drop for ShellSession {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
        self.reader.abort();
        crate::workspace::release::unregister(&release_key(self.pid));
    }
}

/// The shell's entry in the release registry.
fn release_key(pid: u32) -> String {
    format!("shell:{pid}")
}

trait SignalCode {
    fn signal_code(&self) -> Option<i32>;
}

impl SignalCode for std::process::ExitStatus {
    fn signal_code(&self) -> Option<i32> {
        use std::os::unix::process::ExitStatusExt;
        self.signal().map(|s| 128 + s)
    }
}

fn command(config: &ShellConfig, cwd: &Path) -> Command {
    let mut cmd = Command::new(&config.program);
    cmd.args(&config.args)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for name in &config.env_remove {
        cmd.env_remove(name);
    }
    cmd.env("PAGER", "cat")
        .env("GIT_PAGER", "cat")
        .env("TERM", "dumb");
    cmd.envs(config.env.iter().map(|(k, v)| (k, v)));
    // SAFETY: the closure only calls async-signal-safe functions (setsid, signal).
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            // A parent that ignores SIGINT would make `trap : INT` and C-c useless.
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGQUIT, libc::SIG_DFL);
            Ok(())
        });
    }
    cmd
}

/// Copies the shell's output into the shared buffer, waking the waiter on each chunk.
async fn read_output(mut stdout: ChildStdout, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stdout.read(&mut buf).await.unwrap_or(0);
        {
            let mut pending = shared.lock();
            if n == 0 {
                pending.eof = true;
            } else {
                pending.data.extend_from_slice(&buf[..n]);
                pending.compact();
            }
        }
        shared.notify.notify_one();
        if n == 0 {
            return;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The index where a (possibly incomplete) sentinel starts at the end of `data`, else its length.
fn partial_marker_start(data: &[u8], marker: &[u8]) -> usize {
    if let Some(at) = find(data, marker) {
        return at;
    }
    let longest = marker.len().min(data.len());
    (1..=longest)
        .rev()
        .find(|&k| data[data.len() - k..] == marker[..k])
        .map_or(data.len(), |k| data.len() - k)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_LIMIT: Limits = Limits {
        hard: Some(Duration::from_secs(10)),
        no_change: None,
    };

    #[test]
    fn partial_marker_is_held_back() {
        let marker = b"\n__SC_x__ ";
        assert_eq!(partial_marker_start(b"abc\n__S", marker), 3);
        assert_eq!(partial_marker_start(b"abc", marker), 3);
        assert_eq!(partial_marker_start(b"abc\n", marker), 3);
        assert_eq!(partial_marker_start(b"a\n__SC_x__ 0 /", marker), 1);
    }

    #[tokio::test]
    async fn runs_commands_and_parses_the_sentinel() {
        let dir = tempfile::tempdir().unwrap();
        let mut shell = ShellSession::spawn(&ShellConfig::detect(), dir.path())
            .await
            .unwrap();
        shell.run("echo 'it''s'; false").await.unwrap();
        match shell.wait(NO_LIMIT).await {
            Outcome::Done {
                output,
                exit_code,
                cwd,
            } => {
                assert_eq!(output, b"its\n");
                assert_eq!(exit_code, 1);
                assert_eq!(Path::new(&cwd), dir.path().canonicalize().unwrap());
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(!shell.is_running());
        shell.close().await;
    }

    #[tokio::test]
    async fn huge_output_is_compacted() {
        let dir = tempfile::tempdir().unwrap();
        let mut shell = ShellSession::spawn(&ShellConfig::detect(), dir.path())
            .await
            .unwrap();
        shell
            .run("head -c 9000000 /dev/zero | tr '\\0' a")
            .await
            .unwrap();
        let Outcome::Done { output, .. } = shell.wait(NO_LIMIT).await else {
            panic!("no sentinel");
        };
        assert!(output.len() < MAX_PENDING + 65 * 1024, "{}", output.len());
        assert!(String::from_utf8_lossy(&output).contains("bytes of output dropped"));
        shell.close().await;
    }
}
