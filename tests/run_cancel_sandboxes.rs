//! SIGINT during provisioning leaves nothing behind: `sandcrab run` held at a setup stage (the
//! hidden `SANDCRAB_TEST_HOLD_AT`) and interrupted there exits 130 and has deleted the Cloud
//! sandbox, stopped the runtime, removed the Docker container and network it created.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::docker::{docker, engine_or_skip, git_image, labelled_networks, static_binary};
use common::fake_cloud::{CloudBehaviour, FakeCloud, CLOUD_KEY};
use common::fake_runtime_api::{FakeRuntimeApi, RuntimeBehaviour, IMAGE, RUNTIME_KEY};

/// Starts `cmd` held at `stage`, waits until it holds there, sends SIGINT; the exit code and
/// stderr.
fn interrupt_at(mut cmd: Command, stage: &str) -> (i32, String) {
    let mut child: Child = cmd
        .env("SANDCRAB_TEST_HOLD_AT", stage)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut seen = String::new();
    let holding = format!("sandcrab: holding at {stage}");
    loop {
        match lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line == holding {
                    break;
                }
            }
            Err(_) => {
                let _ = child.kill();
                panic!("never held at {stage}: {seen}");
            }
        }
    }
    // SAFETY: sends SIGINT to the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    while let Ok(line) = lines.recv_timeout(Duration::from_millis(200)) {
        seen.push_str(&line);
        seen.push('\n');
    }
    (status.code().unwrap_or(-1), seen)
}

fn base_run(repo: &std::path::Path, out: &std::path::Path) -> Command {
    let mut cmd = common::sandcrab();
    cmd.args(["run", "--prompt", "go", "--model", "openai/scripted"])
        .args(["--llm-base-url", "http://127.0.0.1:9/v1"])
        .arg("--repo-dir")
        .arg(repo)
        .arg("--out")
        .arg(out);
    cmd
}

#[test]
fn sigint_while_a_cloud_sandbox_starts_deletes_it() {
    let cloud = FakeCloud::start(CloudBehaviour {
        starting_polls: 1000,
        ..Default::default()
    });
    let repo = common::git_repo(&[("a.txt", "a\n")]);
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = base_run(repo.path(), &dir.path().join("out"));
    cmd.args(["--workspace", "cloud", "--cloud-url", &cloud.url()])
        .arg("--sandbox-workdir")
        .arg(dir.path().join("ws"))
        .env("SANDCRAB_CLOUD_API_KEY", CLOUD_KEY);
    let (code, stderr) = interrupt_at(cmd, "after-sandbox-create");
    assert_eq!(code, 130, "{stderr}");
    assert!(cloud.live().is_empty(), "the sandbox is gone: {stderr}");
    assert!(
        cloud
            .calls()
            .iter()
            .any(|c| c.starts_with("DELETE /api/v1/sandboxes/")),
        "{:?}",
        cloud.calls()
    );
}

#[test]
fn sigint_during_the_repository_upload_leaves_no_temporary_tar() {
    let cloud = FakeCloud::start(CloudBehaviour::default());
    let repo = common::git_repo(&[("a.txt", "a\n")]);
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mut cmd = base_run(repo.path(), &dir.path().join("out"));
    cmd.args(["--workspace", "cloud", "--cloud-url", &cloud.url()])
        .arg("--sandbox-workdir")
        .arg(dir.path().join("ws"))
        .env("SANDCRAB_CLOUD_API_KEY", CLOUD_KEY)
        .env("TMPDIR", &tmp);
    let (code, stderr) = interrupt_at(cmd, "during-repo-upload");
    assert_eq!(code, 130, "{stderr}");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}\n{stderr}");
    assert!(cloud.live().is_empty(), "the sandbox is gone: {stderr}");
}

#[test]
fn sigint_while_a_runtime_starts_stops_it() {
    let api = FakeRuntimeApi::start(RuntimeBehaviour {
        pending_polls: 1000,
    });
    let repo = common::git_repo(&[("a.txt", "a\n")]);
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = base_run(repo.path(), &dir.path().join("out"));
    cmd.args([
        "--workspace",
        "runtime-api",
        "--runtime-api-url",
        &api.url(),
    ])
    .args(["--runtime-api-image", IMAGE])
    .args(["--runtime-api-session-id", "sess-cancel"])
    .arg("--sandbox-workdir")
    .arg(dir.path().join("ws"))
    .env("SANDCRAB_RUNTIME_API_KEY", RUNTIME_KEY);
    let (code, stderr) = interrupt_at(cmd, "after-runtime-start");
    assert_eq!(code, 130, "{stderr}");
    assert!(
        api.calls().contains(&"POST /stop".to_string()),
        "{:?}: {stderr}",
        api.calls()
    );
    let (status, running) = api.session_state("sess-cancel").unwrap();
    assert_eq!((status.as_str(), running), ("stopped", false));
}

#[test]
fn sigint_at_each_docker_setup_stage_leaves_nothing_on_the_engine() {
    if !engine_or_skip() {
        return;
    }
    let repo = common::git_repo(&[("a.txt", "a\n")]);
    for stage in [
        "before-network-create",
        "after-network-create",
        "after-container-create",
        "after-copy-in",
        "after-server-start",
    ] {
        let label = format!("sandcrab.test.cancel={stage}-{}", std::process::id());
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = base_run(repo.path(), &dir.path().join("out"));
        cmd.args([
            "--workspace",
            "docker",
            "--image",
            git_image(),
            "--label",
            &label,
        ])
        .arg("--sandbox-binary")
        .arg(static_binary());
        let (code, stderr) = interrupt_at(cmd, stage);
        assert_eq!(code, 130, "{stage}: {stderr}");
        let containers = docker(&["ps", "-aq", "--filter", &format!("label={label}")]).unwrap();
        assert_eq!(
            containers.trim(),
            "",
            "{stage}: a container is left: {stderr}"
        );
        assert!(
            labelled_networks(&label).is_empty(),
            "{stage}: a network is left: {stderr}"
        );
    }
}
