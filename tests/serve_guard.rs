//! `sandcrab serve` does not fail open and does not outlive its runner: a non-loopback bind
//! without a key is refused (exit 2, one line) unless `--insecure-no-auth`; OpenHands'
//! `OH_SESSION_API_KEYS_<N>` keys are accepted; `--idle-timeout-minutes` and
//! `--exit-when-parent-gone` stop it by itself.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn serve() -> std::process::Command {
    let mut cmd = sandcrab();
    cmd.arg("serve").env_remove("SESSION_API_KEY");
    cmd
}

/// Starts a server (stdout piped); returns it and its URL from the listening line.
fn start(cmd: &mut std::process::Command) -> (Child, String) {
    let dir = tempfile::tempdir().unwrap().keep();
    let mut child = cmd
        .args(["--port", "0", "--conversations-dir"])
        .arg(dir.join("c"))
        .arg("--working-dir")
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("sandcrab serve: listening on ")
        .unwrap_or_else(|| panic!("no listening line: {line:?}"))
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    (child, url)
}

/// `GET url` (with the key if given): the status and the body.
fn get(url: &str, key: Option<&str>) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut rb = reqwest::Client::new().get(url);
        if let Some(key) = key {
            rb = rb.header("X-Session-API-Key", key);
        }
        let response = rb.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    })
}

fn status(url: &str, key: Option<&str>) -> u16 {
    get(&format!("{url}/api/conversations/search"), key).0
}

/// Waits up to `limit` for `child` to exit; its exit code.
fn exits_within(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status.code().unwrap_or(-1));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn a_public_bind_without_a_key_is_refused() {
    let r = run(serve().args(["--host", "0.0.0.0", "--port", "0"]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("--insecure-no-auth"), "{}", r.stderr);
    let (mut child, url) = start(serve().args(["--host", "0.0.0.0", "--insecure-no-auth"]));
    let port = url.rsplit(':').next().unwrap();
    assert_eq!(status(&format!("http://127.0.0.1:{port}"), None), 200);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn openhands_session_key_variables_are_accepted() {
    let (mut child, url) = start(
        serve()
            .args(["--host", "0.0.0.0"])
            .env("OH_SESSION_API_KEYS_0", "first-key")
            .env("OH_SESSION_API_KEYS_1", "second-key"),
    );
    let port = url.rsplit(':').next().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    assert_eq!(status(&url, None), 401);
    assert_eq!(status(&url, Some("wrong")), 401);
    assert_eq!(status(&url, Some("first-key")), 200);
    assert_eq!(status(&url, Some("second-key")), 200);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn an_idle_server_exits_by_itself() {
    // 0.03 minutes: 1.8 s with no API request.
    let (mut child, url) = start(serve().args(["--idle-timeout-minutes", "0.03"]));
    let info: serde_json::Value =
        serde_json::from_str(&get(&format!("{url}/server_info"), None).1).unwrap();
    assert_eq!(info["runtime_idle_timeout_seconds"], 1.8);
    assert_eq!(exits_within(&mut child, Duration::from_secs(15)), Some(0));
    let r = run(serve().args(["--idle-timeout-minutes", "1e300"]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
}

#[test]
fn the_server_exits_when_its_parent_dies() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("server.pid");
    let binary = env!("CARGO_BIN_EXE_sandcrab");
    // A parent shell that starts the server, then becomes `sleep` (exec: killing it leaves no
    // orphan behind); the server's pid goes to a file.
    let script = format!(
        "{binary} serve --port 0 --exit-when-parent-gone --working-dir {d} --conversations-dir {d}/c >/dev/null 2>&1 & echo $! > {p}; exec sleep 600",
        d = dir.path().display(),
        p = pidfile.display()
    );
    let mut parent = std::process::Command::new("sh")
        .args(["-c", &script])
        .env_remove("SESSION_API_KEY")
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let server: i32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_millis(500));
    assert!(running(server), "the server runs while its parent lives");
    parent.kill().unwrap(); // SIGKILL: no cleanup in the parent
    parent.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(server) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!running(server), "the orphaned server exits by itself");
}

fn running(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit(')').next().unwrap_or("").trim().chars().next();
    !matches!(state, None | Some('Z') | Some('X'))
}
