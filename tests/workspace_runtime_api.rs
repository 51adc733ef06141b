//! `RuntimeApiWorkspace` against a fake Runtime API that really provisions (each runtime a
//! process running the requested command): the start request's fields, slow start, failed
//! pods, auth failures, pause-on-close and resume by session id, cleanup; and a conversation
//! paused by one `sandcrab run` (SIGINT, pause-on-close) and finished by a second one.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::fake_runtime_api::{FakeRuntimeApi, RuntimeBehaviour, IMAGE, RUNTIME_KEY};
use sandcrab::workspace::{ExecRequest, RuntimeApiOptions, RuntimeApiWorkspace, Workspace};
use serde_json::json;

fn options(api: &FakeRuntimeApi, workdir: &Path) -> RuntimeApiOptions {
    let mut opts = RuntimeApiOptions::new(api.url(), RUNTIME_KEY, IMAGE);
    opts.workdir = workdir.display().to_string();
    opts.start_timeout = Duration::from_secs(30);
    opts
}

#[tokio::test]
async fn a_slow_runtime_starts_with_the_sdk_request_and_stops_on_close() {
    let api = FakeRuntimeApi::start(RuntimeBehaviour { pending_polls: 3 });
    let repo = common::git_repo(&[("a.txt", "alpha\n")]);
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(&api, &dir.path().join("ws"));
    opts.session_id = "sess-1".into();
    opts.resource_factor = 2;
    opts.env = vec![("FORWARDED".into(), "yes".into())];
    let ws = RuntimeApiWorkspace::start(opts, Some(repo.path()))
        .await
        .unwrap();
    assert!(!ws.attached());

    let start = api
        .requests()
        .into_iter()
        .find(|r| r.path == "/start")
        .unwrap();
    assert_eq!(
        start.body,
        json!({
            "image": IMAGE,
            "command": "/usr/local/bin/sandcrab serve --host 0.0.0.0 --port 60000",
            "working_dir": "/", "environment": {"FORWARDED": "yes"}, "session_id": "sess-1",
            "run_as_user": 10001, "fs_group": 10001, "image_pull_policy": "IfNotPresent",
            "runtime_class": "sysbox-runc", "resource_factor": 2
        })
    );
    let calls = api.calls();
    assert_eq!(calls[0], "GET /sessions/sess-1", "attach is tried first");
    assert!(
        calls
            .iter()
            .filter(|c| *c == "GET /sessions/sess-1")
            .count()
            >= 5,
        "pending 3 times: {calls:?}"
    );
    assert!(api
        .requests()
        .iter()
        .all(|r| r.api_key.as_deref() == Some(RUNTIME_KEY)));

    let out = ws
        .execute(ExecRequest::new("cat a.txt; echo $FORWARDED"))
        .await
        .unwrap();
    assert_eq!(out.stdout, "alpha\nyes\n", "{out:?}");
    let runtime_id = ws.runtime_id().to_string();
    ws.close().await.unwrap();
    let stop = api
        .requests()
        .into_iter()
        .find(|r| r.path == "/stop")
        .expect("POST /stop");
    assert_eq!(stop.body, json!({"runtime_id": runtime_id}));
    assert_eq!(api.session_state("sess-1"), Some(("stopped".into(), false)));
}

#[tokio::test]
async fn a_failed_pod_fails_with_its_logs_and_is_stopped() {
    let api = FakeRuntimeApi::start(RuntimeBehaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(&api, dir.path());
    opts.image = "registry.example/missing:1".into();
    opts.session_id = "sess-bad".into();
    let text = RuntimeApiWorkspace::start(opts, None)
        .await
        .err()
        .expect("fails")
        .to_string();
    assert!(
        text.contains("pod status: failed") && text.contains("Failed to pull image"),
        "{text}"
    );
    assert!(text.contains("--runtime-api-image"), "{text}");
    assert!(api.calls().contains(&"POST /stop".to_string()));
}

#[tokio::test]
async fn a_wrong_key_is_an_auth_error_naming_the_flag() {
    let api = FakeRuntimeApi::start(RuntimeBehaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(&api, dir.path());
    opts.api_key = "nope".into();
    let text = RuntimeApiWorkspace::start(opts, None)
        .await
        .err()
        .expect("fails")
        .to_string();
    assert!(
        text.contains("refused the API key") && text.contains("--runtime-api-key"),
        "{text}"
    );
    assert!(
        !api.calls().contains(&"POST /start".to_string()),
        "nothing started"
    );
}

#[tokio::test]
async fn pause_on_close_pauses_and_the_session_id_resumes_it() {
    let api = FakeRuntimeApi::start(RuntimeBehaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(&api, dir.path());
    opts.session_id = "sess-keep".into();
    opts.pause_on_close = true;
    let first = RuntimeApiWorkspace::start(opts.clone(), None)
        .await
        .unwrap();
    first
        .execute(ExecRequest::new("echo before > state.txt"))
        .await
        .unwrap();
    first.close().await.unwrap();
    assert_eq!(
        api.session_state("sess-keep"),
        Some(("paused".into(), true))
    );
    assert!(api.with_proc("sess-keep", |p| p.is_stopped()));
    drop(first);

    opts.pause_on_close = false;
    let again = RuntimeApiWorkspace::start(opts, None).await.unwrap();
    assert!(again.attached());
    assert_eq!(
        api.calls().iter().filter(|c| *c == "POST /start").count(),
        1,
        "no second runtime"
    );
    assert!(api.calls().contains(&"POST /resume".to_string()));
    let out = again
        .execute(ExecRequest::new("cat state.txt"))
        .await
        .unwrap();
    assert_eq!(out.stdout, "before\n");
    again.pause().await.unwrap();
    assert!(api.with_proc("sess-keep", |p| p.is_stopped()));
    again.resume().await.unwrap();
    assert_eq!(
        again
            .execute(ExecRequest::new("echo back"))
            .await
            .unwrap()
            .stdout,
        "back\n"
    );
    drop(again);
    assert_eq!(
        api.session_state("sess-keep"),
        Some(("stopped".into(), false)),
        "dropping stops the runtime"
    );
}

fn script(dir: &Path, log: &Path, steps: usize) -> std::path::PathBuf {
    let mut yaml = String::new();
    for i in 1..=steps {
        yaml.push_str(&format!(
            "- tool: terminal\n  args: {{command: \"echo step-{i} >> {} && sleep 0.4\"}}\n",
            log.display()
        ));
    }
    yaml.push_str("- tool: finish\n  args: {message: all steps done}\n");
    let path = dir.join("script.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn run_cmd(
    api: &FakeRuntimeApi,
    repo: &Path,
    out: &Path,
    workdir: &Path,
    script: &Path,
) -> std::process::Command {
    let mut cmd = common::sandcrab();
    cmd.args([
        "run",
        "--workspace",
        "runtime-api",
        "--runtime-api-url",
        &api.url(),
    ])
    .args([
        "--runtime-api-image",
        IMAGE,
        "--runtime-api-session-id",
        "sess-cli",
    ])
    .args(["--conversation-id", "2c1f7e2e-4c0b-4a39-9a53-1f1e1f1e1f1e"])
    .arg("--repo-dir")
    .arg(repo)
    .arg("--out")
    .arg(out)
    .arg("--sandbox-workdir")
    .arg(workdir)
    .arg("--model")
    .arg(format!("scripted:{}", script.display()))
    .args(["--prompt", "append the steps"])
    .env("SANDCRAB_RUNTIME_API_KEY", RUNTIME_KEY);
    cmd
}

#[test]
fn a_run_interrupted_with_pause_on_close_is_finished_by_a_second_run() {
    let api = FakeRuntimeApi::start(RuntimeBehaviour::default());
    let repo = common::git_repo(&[("README", "r\n")]);
    let dir = tempfile::tempdir().unwrap();
    let (workdir, out) = (dir.path().join("ws"), dir.path().join("out"));
    let log = dir.path().join("steps.log");
    let script = script(dir.path(), &log, 6);

    let mut first = run_cmd(&api, repo.path(), &out, &workdir, &script)
        .arg("--runtime-api-pause-on-close")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(first.stderr.take().unwrap());
    let mut seen = String::new();
    while std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .count()
        < 2
    {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("the first run ended early:\n{seen}");
        }
        seen.push_str(&line);
    }
    unsafe { libc::kill(first.id() as i32, libc::SIGINT) };
    let rest = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
        text
    });
    let status = first.wait().unwrap();
    let stderr_text = format!("{seen}{}", rest.join().unwrap());
    assert_eq!(status.code(), Some(130), "{stderr_text}");
    assert!(
        stderr_text.contains("resume with --runtime-api-session-id sess-cli"),
        "{stderr_text}"
    );
    assert_eq!(api.session_state("sess-cli"), Some(("paused".into(), true)));
    let done_first = std::fs::read_to_string(&log).unwrap().lines().count();
    assert!(
        done_first < 6,
        "the first run stopped early ({done_first} steps)"
    );

    let second = common::run(
        run_cmd(&api, repo.path(), &out, &workdir, &script)
            .arg("--max-iterations")
            .arg("20"),
    );
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(
        second.stderr.contains("resuming conversation"),
        "{}",
        second.stderr
    );
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let expected: Vec<String> = (1..=6).map(|i| format!("step-{i}")).collect();
    assert_eq!(
        lines, expected,
        "every step ran exactly once across both runs"
    );
    assert_eq!(
        api.calls().iter().filter(|c| *c == "POST /start").count(),
        1
    );
    assert!(api.calls().contains(&"POST /resume".to_string()));
    assert_eq!(
        api.session_state("sess-cli"),
        Some(("stopped".into(), false)),
        "the second run stopped it"
    );

    let events = common::trajectory(&out);
    let actions = common::kinds(&events, "ActionEvent");
    assert_eq!(
        actions.len(),
        7,
        "six steps and finish, nothing lost or repeated"
    );
    let result = common::result_json(&out);
    assert_eq!(result["status"], "finished");
    assert_eq!(result["workspace"]["kind"], "runtime_api");
    let all = std::fs::read_to_string(out.join("trajectory.jsonl")).unwrap();
    assert!(!all.contains(RUNTIME_KEY));
}
