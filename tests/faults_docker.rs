//! Fault injection around `sandcrab run --workspace docker`: the engine unreachable at start,
//! the engine lost mid-run (the test's own socket proxy is cut), and the sandbox's agent-server
//! killed mid-run. Each checks what the user sees and that the outputs are still written.

mod common;

use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::docker::*;
use common::*;

fn docker_run(label: &str, llm: &FakeLlm, repo: &Path, out: &Path) -> std::process::Command {
    let mut cmd = sandcrab();
    cmd.args(["run", "--workspace", "docker", "--image", git_image()])
        .args(["--label", label, "--sandbox-binary"])
        .arg(static_binary())
        .args(["--model", "openai/scripted", "--llm-base-url"])
        .arg(llm.openai_url())
        .args(["--prompt", "go", "--repo-dir"])
        .arg(repo)
        .arg("--out")
        .arg(out);
    cmd
}

fn unique_label(test: &str) -> String {
    format!("sandcrab.test.faults_docker={test}-{}", std::process::id())
}

fn labelled(label: &str) -> Vec<String> {
    let ids = docker(&["ps", "-aq", "--filter", &format!("label={label}")]).unwrap();
    ids.lines().map(String::from).collect()
}

/// Removes what a test left under its own label (containers, then networks).
fn remove_labelled(label: &str) {
    for id in labelled(label) {
        let _ = docker(&["rm", "-f", &id]);
    }
    for id in labelled_networks(label) {
        let _ = docker(&["network", "rm", &id]);
    }
}

#[test]
fn an_unreachable_engine_at_start_is_one_line_and_exit_2() {
    let llm = FakeLlm::start(terminal_steps(1, Duration::ZERO));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let dead = out.path().join("no-engine.sock");
    let r = run(sandcrab()
        .args(["run", "--workspace", "docker", "--image", "any:1"])
        .arg("--sandbox-binary")
        .arg(static_binary())
        .args(["--model", "openai/scripted", "--llm-base-url"])
        .arg(llm.openai_url())
        .args(["--prompt", "go", "--repo-dir"])
        .arg(repo.path())
        .arg("--out")
        .arg(out.path().join("out"))
        .env("DOCKER_HOST", format!("unix://{}", dead.display())));
    assert_eq!(r.code, 2, "{}", r.stderr);
    let errors: Vec<&str> = r.stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "one line: {}", r.stderr);
    assert!(
        errors[0].contains("Docker engine"),
        "says what: {}",
        errors[0]
    );
    assert!(llm.recorded().is_empty(), "no model call without a sandbox");
}

/// A unix-socket proxy to the real engine, cut (listener and every connection) by `cut`.
struct EngineProxy {
    path: PathBuf,
    cut: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

impl EngineProxy {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("engine.sock");
        let listener = UnixListener::bind(&path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let cut = Arc::new(AtomicBool::new(false));
        let flag = cut.clone();
        std::thread::spawn(move || {
            let mut open: Vec<UnixStream> = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let engine = UnixStream::connect("/var/run/docker.sock").unwrap();
                        open.push(client.try_clone().unwrap());
                        open.push(engine.try_clone().unwrap());
                        pipe(client.try_clone().unwrap(), engine.try_clone().unwrap());
                        pipe(engine, client);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            for stream in open {
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        });
        EngineProxy {
            path,
            cut,
            _dir: dir,
        }
    }

    fn docker_host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        self.cut();
    }
}

fn pipe(mut from: UnixStream, mut to: UnixStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

#[test]
fn losing_the_engine_mid_run_is_reported_and_the_outputs_are_written() {
    if !engine_or_skip() {
        return;
    }
    let label = unique_label("engine-lost");
    let llm = FakeLlm::start(terminal_steps(6, Duration::from_millis(300)));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let proxy = EngineProxy::start();
    let running = Running::spawn(
        docker_run(&label, &llm, repo.path(), out.path()).env("DOCKER_HOST", proxy.docker_host()),
    );
    wait_until("the second model call", Duration::from_secs(120), || {
        llm.recorded().len() >= 2
    });
    proxy.cut();
    let r = running.finish();
    let left = labelled(&label);
    remove_labelled(&label);
    // The conversation talks to the sandbox directly, so the run itself goes on; only the
    // removal needs the engine, and its failure must be said, with the container to remove.
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    let result = result_json(out.path());
    assert_eq!(result["status"], "finished", "{result}");
    assert!(out.path().join("changes.patch").exists());
    if !left.is_empty() {
        assert!(
            r.stderr
                .lines()
                .any(|l| l.contains("Docker") || l.contains("docker")),
            "a sandbox was left behind without a word: {}",
            r.stderr
        );
    }
}

#[test]
fn a_sandbox_server_killed_mid_run_is_reported_and_the_outputs_are_written() {
    if !engine_or_skip() {
        return;
    }
    let label = unique_label("server-killed");
    let llm = FakeLlm::start(terminal_steps(100, Duration::from_millis(200)));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let running = Running::spawn(&mut docker_run(&label, &llm, repo.path(), out.path()));
    wait_until("three model calls", Duration::from_secs(120), || {
        llm.recorded().len() >= 3
    });
    // The agent-server is the container's PID 1: killing it stops the sandbox.
    let id = labelled(&label).pop().expect("the sandbox runs");
    docker(&["kill", "--signal", "KILL", &id]).unwrap();
    let r = running.finish();
    let left = labelled(&label);
    remove_labelled(&label);
    assert_eq!(r.code, 1, "the run failed: {}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    let result = result_json(out.path());
    assert_eq!(result["status"], "error", "{result}");
    let error = result["error"].as_str().unwrap();
    assert!(error.contains("agent-server"), "{error}");
    // Reported as the container's end, from the engine, at the first failed poll: not after
    // the minute of retries an unreachable server gets.
    assert!(error.contains("exited with code 137"), "{error}");
    assert!(r.stderr.matches("retrying").count() <= 2, "{}", r.stderr);
    assert!(
        kinds(&trajectory(out.path()), "ActionEvent").len() >= 2,
        "the trajectory so far is kept"
    );
    assert!(out.path().join("changes.patch").exists());
    assert!(left.is_empty(), "the stopped sandbox is removed");
}
