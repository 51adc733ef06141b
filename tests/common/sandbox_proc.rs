//! A fake provider's "sandbox": a `sandcrab serve` child in its own process group, on a free
//! loopback port, with its own session key, working and conversations directories. Pause is
//! SIGSTOP to the group, resume SIGCONT, stop SIGKILL; dropping it stops it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub struct SandboxProc {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub key: String,
    pub root: tempfile::TempDir,
}

impl SandboxProc {
    /// Starts `program args...` (a `sandcrab serve` command line whose `--port` must be 0),
    /// with `env`, in a fresh directory; waits for its listening line.
    pub fn start(
        program: &Path,
        args: &[String],
        env: &[(String, String)],
    ) -> Result<Self, String> {
        let root = tempfile::tempdir().unwrap();
        let key = format!("sess-{}", uuid_like());
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(root.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("SESSION_API_KEY", &key)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0);
        if !args.iter().any(|a| a == "--conversations-dir") {
            cmd.arg("--conversations-dir")
                .arg(root.path().join("conversations"));
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let _ = stdout.read_line(&mut line);
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let Some(rest) = line.trim().strip_prefix("sandcrab serve: listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("the sandbox did not start: {line:?}"));
        };
        let url = rest.split_whitespace().next().unwrap().to_string();
        Ok(SandboxProc {
            child,
            url,
            key,
            root,
        })
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn pause(&self) {
        unsafe { libc::kill(-self.pid(), libc::SIGSTOP) };
    }

    pub fn resume(&self) {
        unsafe { libc::kill(-self.pid(), libc::SIGCONT) };
    }

    /// Whether the process is stopped (state `T` in /proc), waiting up to 2 s for a signal
    /// just sent to take effect.
    pub fn is_stopped(&self) -> bool {
        let state = || {
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid()))
                .map(|s| {
                    s.rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('T')
                })
                .unwrap_or(false)
        };
        for _ in 0..100 {
            if state() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        false
    }

    pub fn stop(&mut self) {
        unsafe { libc::kill(-self.pid(), libc::SIGCONT) };
        unsafe { libc::kill(-self.pid(), libc::SIGKILL) };
        let _ = self.child.wait();
    }

    /// Whether the process is still running (not reaped, not a zombie).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for SandboxProc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A random hex id.
pub fn uuid_like() -> String {
    (0..16)
        .map(|_| format!("{:x}", fastrand::u8(..16)))
        .collect()
}

/// Serves `app` on a free loopback port from its own thread and runtime until the returned
/// sender is dropped.
pub fn serve_in_thread(
    app: axum::Router,
) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = shutdown_rx.await;
                })
                .await;
        });
    });
    (addr_rx.recv().unwrap(), shutdown)
}
