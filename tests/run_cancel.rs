//! Stopping `sandcrab run` at any moment, on the local workspace (no Docker needed): the time
//! limit cuts off a running command and still writes the partial outputs; a second SIGINT
//! still ends the agent's shell; inputs that used to panic are one line and exit 2.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// A model that runs `command` (with a 300 s hard timeout) first, then finishes.
fn long_command(command: String) -> FakeLlm {
    FakeLlm::start(Arc::new(move |_, body| {
        if tool_results(body) == 0 {
            let args = json!({"command": command, "timeout": 300}).to_string();
            Reply::ok(openai_call(0, "terminal", &args))
        } else {
            Reply::ok(openai_call(1, "finish", "{\"message\": \"done\"}"))
        }
    }))
}

fn run_args(llm: &FakeLlm, repo: &std::path::Path, out: &std::path::Path) -> std::process::Command {
    let mut cmd = sandcrab();
    cmd.args([
        "run",
        "--model",
        "openai/scripted",
        "--llm-base-url",
        &llm.openai_url(),
        "--prompt",
        "go",
    ])
    .arg("--repo-dir")
    .arg(repo)
    .arg("--out")
    .arg(out);
    cmd
}

/// Waits (up to 20 s) for the file `path` to hold a pid.
fn read_pid(path: &std::path::Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "the command never started");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether `pid` is a live process (not gone, not a zombie), waiting up to 3 s for it to go.
fn alive(pid: i32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().unwrap_or("").trim().chars().next();
        if matches!(state, None | Some('Z') | Some('X')) {
            return false;
        }
        if Instant::now() >= deadline {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_time_limit_stops_a_running_command_and_writes_partial_outputs() {
    let marks = tempfile::tempdir().unwrap();
    let pidfile = marks.path().join("sleep.pid");
    let llm = long_command(format!(
        "sh -c 'echo $$ > {}; exec sleep 600'",
        pidfile.display()
    ));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let started = Instant::now();
    // 0.05 minutes: 3 s.
    let r = run(run_args(&llm, repo.path(), out.path()).args(["--timeout-minutes", "0.05"]));
    let took = started.elapsed();
    assert_eq!(r.code, 130, "stderr: {}", r.stderr);
    assert!(
        took < Duration::from_secs(40),
        "took {took:?}: {}",
        r.stderr
    );
    let result = result_json(out.path());
    assert_eq!(result["status"], "interrupted");
    let error = result["error"].as_str().unwrap();
    assert!(error.contains("time limit"), "{error}");
    let actions = kinds(&trajectory(out.path()), "ActionEvent").len();
    assert_eq!(actions, 1, "the sleep was the step cut off");
    assert!(!alive(read_pid(&pidfile)), "the sleep is stopped too");
}

#[test]
fn a_second_sigint_still_ends_the_agents_shell() {
    let marks = tempfile::tempdir().unwrap();
    let pidfile = marks.path().join("sleep.pid");
    let llm = long_command(format!(
        "sh -c 'echo $$ > {}; exec sleep 600'",
        pidfile.display()
    ));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let child = run_args(&llm, repo.path(), out.path())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let sleep_pid = read_pid(&pidfile);
    let started = Instant::now();
    for _ in 0..2 {
        // SAFETY: sends SIGINT to the child we spawned.
        unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
        std::thread::sleep(Duration::from_millis(200));
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "exits at once: {stderr}"
    );
    assert!(stderr.contains("interrupted again"), "{stderr}");
    assert!(
        !alive(sleep_pid),
        "the agent's command does not outlive sandcrab"
    );
}

#[test]
fn inputs_that_used_to_panic_are_one_line_and_exit_2() {
    let repo = git_repo(&[("a.txt", "a\n")]);
    let dir = repo.path().to_str().unwrap();
    let base = [
        "run",
        "--prompt",
        "x",
        "--repo-dir",
        dir,
        "--model",
        "openai/m",
    ];
    let cases: [&[&str]; 5] = [
        &["--llm-timeout", "1e20"],
        &["--llm-timeout", "NaN"],
        &["--timeout-minutes", "1e18"],
        &["--timeout-minutes=-1"],
        &[
            "--workspace",
            "cloud",
            "--cloud-api-key",
            "k",
            "--cloud-start-timeout",
            "18446744073709551615",
        ],
    ];
    for extra in cases {
        let r = run(sandcrab().args(base).args(extra));
        assert_eq!(r.code, 2, "{extra:?}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{extra:?}: {}", r.stderr);
        assert_eq!(
            r.stderr.trim().lines().count(),
            1,
            "{extra:?}: {}",
            r.stderr
        );
    }
}
