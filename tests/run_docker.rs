//! `sandcrab run --workspace docker` end to end: the real binary, a real Docker engine, images
//! built locally, the static agent-server copied into the sandbox, and the model reached
//! through the runner's relay (across the sandbox's internal network, which is removed with it).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::docker::{docker, engine_or_skip, git_image, labelled_networks, static_binary};
use common::*;
use serde_json::Value;

/// A label for this test's containers, so checks do not see other tests' sandboxes.
fn run_label(test: &str) -> String {
    format!("sandcrab.test.run={test}-{}", std::process::id())
}

fn labelled_containers(label: &str) -> Vec<String> {
    let out = docker(&["ps", "-aq", "--filter", &format!("label={label}")]).unwrap();
    out.lines().map(String::from).collect()
}

fn docker_run(label: &str) -> std::process::Command {
    let mut cmd = sandcrab();
    cmd.args([
        "run",
        "--workspace",
        "docker",
        "--image",
        git_image(),
        "--label",
        label,
    ])
    .arg("--sandbox-binary")
    .arg(static_binary());
    cmd
}

#[test]
fn the_demo_runs_in_a_docker_sandbox() {
    if !engine_or_skip() {
        return;
    }
    let label = run_label("demo");
    let out = tempfile::tempdir().unwrap();
    let r = run(docker_run(&label)
        .arg("--demo")
        .arg("--out")
        .arg(out.path()));
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    let patch = std::fs::read_to_string(out.path().join("changes.patch")).unwrap();
    assert!(patch.contains("+  sub) echo $((a - b)) ;;"), "{patch}");
    let result = result_json(out.path());
    assert_eq!(result["workspace"]["kind"], "docker");
    assert_eq!(result["workspace"]["working_dir"], "/workspace");
    assert!(
        labelled_containers(&label).is_empty(),
        "the sandbox is removed"
    );
    assert!(
        labelled_networks(&label).is_empty(),
        "its network is removed"
    );
}

#[test]
fn the_model_key_never_enters_the_sandbox() {
    if !engine_or_skip() {
        return;
    }
    const KEY: &str = "sk-docker-secret-7777";
    // Every process's environment, and every file of the sandbox's own file system (-xdev
    // leaves out /proc, /sys and /dev, whose device files block readers). The pattern is put
    // together in the shell: the command itself is stored in the sandbox's event log.
    let (head, tail) = KEY.split_at(9);
    let probe = format!(
        "k={head}; k=$k{tail}; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c \"$k\"; \
         find / -xdev -type f -exec grep -l \"$k\" {{}} + 2>/dev/null | wc -l"
    );
    let llm = FakeLlm::start(Arc::new(move |_, body: &Value| match tool_results(body) {
        0 => Reply::ok(openai_call(
            0,
            "terminal",
            &serde_json::json!({"command": probe, "timeout": 120}).to_string(),
        )),
        _ => Reply::ok(openai_call(1, "finish", "{\"message\": \"checked\"}")),
    }));
    let label = run_label("key");
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let r = run(docker_run(&label)
        .args([
            "--model",
            "openai/scripted",
            "--llm-base-url",
            &llm.openai_url(),
            "--prompt",
            "look for the key",
        ])
        .env("LLM_API_KEY", KEY)
        .arg("--repo-dir")
        .arg(repo.path())
        .arg("--out")
        .arg(out.path()));
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    let requests = llm.recorded();
    assert_eq!(requests.len(), 2);
    let auth = requests[0]
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.as_str());
    assert_eq!(
        auth,
        Some(format!("Bearer {KEY}").as_str()),
        "the relay adds the real key on the way out"
    );
    let events = trajectory(out.path());
    let observation = kinds(&events, "ObservationEvent")[0]["observation"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    let counts: Vec<&str> = observation.lines().take(2).collect();
    assert_eq!(
        counts,
        vec!["0", "0"],
        "no process environment and no file in the sandbox holds the key: {observation}"
    );
    assert!(
        labelled_containers(&label).is_empty(),
        "the sandbox is removed"
    );
    assert!(
        labelled_networks(&label).is_empty(),
        "its network is removed"
    );
}

#[test]
fn sigterm_mid_run_removes_the_sandbox() {
    if !engine_or_skip() {
        return;
    }
    let llm = FakeLlm::start(terminal_steps(100, Duration::from_millis(150)));
    let label = run_label("sigterm");
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let child = docker_run(&label)
        .args([
            "--model",
            "openai/scripted",
            "--llm-base-url",
            &llm.openai_url(),
            "--prompt",
            "go",
        ])
        .arg("--repo-dir")
        .arg(repo.path())
        .arg("--out")
        .arg(out.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while llm.recorded().len() < 3 {
        assert!(
            Instant::now() < deadline,
            "the run never reached its third step"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        labelled_containers(&label).len(),
        1,
        "one sandbox while it runs"
    );
    assert_eq!(labelled_networks(&label).len(), 1, "on its own network");
    // SAFETY: signals the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(result_json(out.path())["status"], "interrupted");
    assert!(
        labelled_containers(&label).is_empty(),
        "no container left after SIGTERM"
    );
    assert!(
        labelled_networks(&label).is_empty(),
        "no network left after SIGTERM"
    );
}

/// `FROM` the git test image (the demo needs git on the runner) + the static sandcrab at
/// `/sandcrab`; rebuilt each time (the binary changes), removed by the caller.
fn runner_image(tag: &str) {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy(static_binary(), ctx.path().join("sandcrab")).unwrap();
    let dockerfile = format!(
        "FROM {}\nCOPY sandcrab /sandcrab\nLABEL sandcrab.test=image\n",
        git_image()
    );
    std::fs::write(ctx.path().join("Dockerfile"), dockerfile).unwrap();
    docker(&["build", "-q", "-t", tag, ctx.path().to_str().unwrap()]).unwrap();
}

#[test]
fn a_runner_in_a_container_joins_its_sandbox_network() {
    if !engine_or_skip() {
        return;
    }
    let label = run_label("runner-container");
    let tag = format!("sandcrab-test-runner:{}", std::process::id());
    runner_image(&tag);
    let socket = "/var/run/docker.sock:/var/run/docker.sock";
    let created = docker(&[
        "create",
        "--label",
        &label,
        "-v",
        socket,
        "-e",
        "TMPDIR=/tmp",
        &tag,
        "/sandcrab",
        "run",
        "--workspace",
        "docker",
        "--image",
        common::docker::busybox_image(),
        "--sandbox-binary",
        "/sandcrab",
        "--label",
        &label,
        "--demo",
        "--out",
        "/out",
    ]);
    let runner = created.unwrap();
    let started = docker(&["start", "-a", &runner]);
    let logs = docker(&["logs", &runner]).unwrap_or_default();
    let code = docker(&["inspect", "-f", "{{.State.ExitCode}}", &runner]);
    let out = tempfile::tempdir().unwrap();
    let copied = docker(&[
        "cp",
        &format!("{runner}:/out"),
        out.path().to_str().unwrap(),
    ]);
    let _ = docker(&["rm", "-f", &runner]);
    let _ = docker(&["rmi", &tag]);
    assert!(started.is_ok(), "{started:?}");
    assert_eq!(code.as_deref(), Ok("0"), "{logs}");
    copied.unwrap();
    let result = result_json(&out.path().join("out"));
    assert_eq!(result["status"], "finished", "{result}");
    assert!(
        labelled_containers(&label).is_empty(),
        "the sandbox is removed"
    );
    assert!(
        labelled_networks(&label).is_empty(),
        "its network is removed"
    );
}
