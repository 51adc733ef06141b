//! The action's image as users pull it: built from ./Dockerfile with the shipped binary (the
//! musl release build, as the release workflow builds it) on locally built bases (nothing is
//! pulled: the busybox test image as the build stage, the git test image — the host's git and
//! its libraries, a stand-in for Alpine's `git` package — as the runtime base). Prints:
//!
//! - the image's size, uncompressed and compressed (`docker save | gzip -6`: the bytes a pull
//!   transfers, as registries store layers gzip-compressed);
//! - the time from `docker run` to the first model call, as the GitHub runner starts a container
//!   action (median of 7), with the agent on the local workspace inside the action container
//!   and with a sibling Docker sandbox (the action's default), the model a loopback server that
//!   answers `finish` at once.
//!
//! ```sh
//! cargo build --release --target x86_64-unknown-linux-musl --bin sandcrab
//! cargo bench --bench action_image
//! ```

#[path = "../tests/common/docker.rs"]
#[allow(dead_code)]
mod docker;

/// What `docker.rs` calls when there is no engine (tests/common's `skip` in the tests).
#[allow(dead_code)]
fn skip(why: &str) {
    println!("SKIPPED: {why}");
}

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const RUNS: usize = 7;
const TAG: &str = "sandcrab-bench-action:latest";

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var("CARGO_TARGET_DIR").map_or(root.join("target"), Into::into);
    let binary = target.join("x86_64-unknown-linux-musl/release/sandcrab");
    if !binary.exists() {
        println!(
            "action image: SKIPPED (no musl release binary at {}; cargo build --release --target x86_64-unknown-linux-musl --bin sandcrab)",
            binary.display()
        );
        return;
    }
    if docker::docker(&["info"]).is_err() {
        println!("action image: SKIPPED (no Docker engine)");
        return;
    }
    docker::build_action_image(&binary, TAG);
    sizes();
    for workspace in ["local", "docker"] {
        let mut times = Vec::new();
        for _ in 0..RUNS {
            times.push(start_to_first_model_call(workspace));
        }
        times.sort_by(f64::total_cmp);
        println!(
            "docker run → first model call, {workspace:<6} workspace (median of {RUNS}) {:>8.0} ms  (min {:.0}, max {:.0})",
            times[RUNS / 2],
            times[0],
            times[RUNS - 1]
        );
    }
    let _ = docker::docker(&["rmi", "-f", TAG]);
}

fn sizes() {
    let size: u64 = docker::docker(&["image", "inspect", "--format", "{{.Size}}", TAG])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let base: u64 = docker::docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Size}}",
        docker::git_image(),
    ])
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    let mut save = Command::new("docker")
        .args(["save", TAG])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let gzip = Command::new("gzip")
        .arg("-6")
        .stdin(save.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(save.wait().unwrap().success(), "docker save failed");
    println!(
        "action image, uncompressed                sandcrab {:>8.1} MB  (runtime base {:.1} MB)",
        mb(size),
        mb(base)
    );
    println!(
        "action image, compressed (save | gzip -6) sandcrab {:>8.1} MB",
        mb(gzip.stdout.len() as u64)
    );
}

/// Milliseconds from spawning `docker run` to the first request at the model.
fn start_to_first_model_call(workspace: &str) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (first, at) = mpsc::channel();
    std::thread::spawn(move || serve_finish(listener, first));
    let repo = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let ok = Command::new("git")
            .args(args)
            .current_dir(repo.path())
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "git {args:?}");
    };
    std::fs::write(repo.path().join("README.md"), "hello\n").unwrap();
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&[
        "-c",
        "user.name=b",
        "-c",
        "user.email=b@b.invalid",
        "commit",
        "-qm",
        "init",
    ]);
    let mount = format!("{}:/github/workspace", repo.path().display());
    let base_url = format!("SANDCRAB_LLM_BASE_URL=http://127.0.0.1:{port}/v1");
    let ws = format!("SANDCRAB_WORKSPACE={workspace}");
    let image = format!("SANDCRAB_IMAGE={}", docker::busybox_image());
    let started = Instant::now();
    let mut child = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--network",
            "host",
            "--workdir",
            "/github/workspace",
        ])
        .args([
            "-v",
            "/var/run/docker.sock:/var/run/docker.sock",
            "-v",
            &mount,
        ])
        .args(["-e", "SANDCRAB_CI_PLATFORM=none", "-e", &ws, "-e", &image])
        .args(["-e", "SANDCRAB_MODEL=openai/gpt-4o", "-e", &base_url])
        .args([
            "-e",
            "SANDCRAB_LLM_API_KEY=sk-bench",
            "-e",
            "SANDCRAB_PROMPT=say hi",
        ])
        .arg(TAG)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let first = at.recv_timeout(Duration::from_secs(120));
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let first = first.unwrap_or_else(|_| panic!("no model call ({status}): {stderr}"));
    assert!(status.success(), "the run failed: {stderr}");
    (first - started).as_secs_f64() * 1000.0
}

/// Answers every request with a `finish` tool call; sends the time of the first one.
fn serve_finish(listener: TcpListener, first: mpsc::Sender<Instant>) {
    let body = r#"{"id":"b","object":"chat.completion","created":0,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"finish","arguments":"{\"message\":\"done\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}"#;
    let mut sent = false;
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { return };
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut length = 0;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            if !sent {
                let _ = first.send(Instant::now());
                sent = true;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut buf = vec![0; length];
        let _ = reader.read_exact(&mut buf);
        let _ = write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}
