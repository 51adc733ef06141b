//! `CloudWorkspace` against a fake OpenHands Cloud that really provisions (each sandbox a
//! `sandcrab serve` process): start, slow start, error states, auth failures, keep-alive and
//! resume by id, get_llm/get_secrets, pause/resume in the middle of a conversation, cleanup
//! on close and drop; and `sandcrab run --workspace cloud` end to end.

mod common;

use std::path::Path;
use std::time::Duration;

use common::fake_cloud::{CloudBehaviour, FakeCloud, CLOUD_KEY};
use sandcrab::conversation::remote::{RemoteAgentSpec, RemoteConversation, RemoteOptions};
use sandcrab::conversation::{Conversation, RunEnd};
use sandcrab::workspace::{CloudOptions, CloudWorkspace, ExecRequest, Workspace, WorkspaceError};
use serde_json::json;

fn options(cloud: &FakeCloud, workdir: &Path) -> CloudOptions {
    let mut opts = CloudOptions::new(cloud.url(), CLOUD_KEY);
    opts.workdir = workdir.display().to_string();
    opts.start_timeout = Duration::from_secs(30);
    opts
}

#[tokio::test]
async fn slow_start_then_commands_run_in_the_sandbox_and_close_deletes_it() {
    let cloud = FakeCloud::start(CloudBehaviour {
        starting_polls: 3,
        ..Default::default()
    });
    let repo = common::git_repo(&[("hello.txt", "from the repo\n")]);
    let workdir = tempfile::tempdir().unwrap();
    let mut opts = options(&cloud, &workdir.path().join("ws"));
    opts.sandbox_spec_id = Some("ghcr.io/openhands/agent-server:main-python".into());
    let ws = CloudWorkspace::start(opts, Some(repo.path()))
        .await
        .unwrap();
    let id = ws.sandbox_id().to_string();
    assert_eq!(cloud.status_of(&id).as_deref(), Some("RUNNING"));

    let out = ws
        .execute(ExecRequest::new(
            "cat hello.txt && git log --oneline | wc -l",
        ))
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0, "{out:?}");
    assert_eq!(out.stdout, "from the repo\n1\n");
    assert!(!workdir
        .path()
        .join("ws")
        .join(".sandcrab-repo.tar")
        .exists());

    let requests = cloud.requests();
    assert_eq!(requests[0].path, "/api/v1/sandboxes");
    assert_eq!(requests[0].method, "POST");
    assert_eq!(
        requests[0].query,
        "sandbox_spec_id=ghcr.io%2Fopenhands%2Fagent-server%3Amain-python"
    );
    let polls: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/api/v1/sandboxes")
        .collect();
    assert!(
        polls.len() >= 4,
        "STARTING 3 times, then RUNNING: {:?}",
        cloud.calls()
    );
    assert!(polls.iter().all(|r| r.query == format!("id={id}")));
    let bearer = format!("Bearer {CLOUD_KEY}");
    assert!(requests
        .iter()
        .all(|r| r.authorization.as_deref() == Some(bearer.as_str())));

    ws.close().await.unwrap();
    let delete = cloud
        .requests()
        .into_iter()
        .find(|r| r.method == "DELETE")
        .expect("a DELETE");
    assert_eq!(delete.path, format!("/api/v1/sandboxes/{id}"));
    assert_eq!(delete.query, format!("sandbox_id={id}"));
    assert!(cloud.live().is_empty(), "the sandbox process is gone");
    ws.close().await.unwrap();
    assert_eq!(
        cloud
            .calls()
            .iter()
            .filter(|c| c.starts_with("DELETE"))
            .count(),
        1,
        "close is idempotent"
    );
}

#[tokio::test]
async fn an_error_state_fails_with_one_line_and_the_sandbox_is_deleted() {
    let cloud = FakeCloud::start(CloudBehaviour {
        starting_polls: 1,
        error: true,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let err = CloudWorkspace::start(options(&cloud, dir.path()), None)
        .await
        .err()
        .expect("fails");
    let text = err.to_string();
    assert!(text.contains("is ERROR") && !text.contains('\n'), "{text}");
    assert!(
        cloud
            .calls()
            .iter()
            .any(|c| c.starts_with("DELETE /api/v1/sandboxes/")),
        "{:?}",
        cloud.calls()
    );
    assert!(cloud.live().is_empty());
}

#[tokio::test]
async fn a_wrong_key_is_an_auth_error_naming_the_flag() {
    let cloud = FakeCloud::start(CloudBehaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(&cloud, dir.path());
    opts.api_key = "wrong".into();
    let text = CloudWorkspace::start(opts, None)
        .await
        .err()
        .expect("fails")
        .to_string();
    assert!(
        text.contains("refused the API key") && text.contains("HTTP 401"),
        "{text}"
    );
    assert!(text.contains("--cloud-api-key"), "{text}");
    assert!(cloud.live().is_empty(), "nothing was provisioned");
}

#[tokio::test]
async fn a_sandbox_without_an_agent_server_url_fails_and_is_deleted() {
    let cloud = FakeCloud::start(CloudBehaviour {
        no_agent_server: true,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let text = CloudWorkspace::start(options(&cloud, dir.path()), None)
        .await
        .err()
        .expect("fails")
        .to_string();
    assert!(text.contains("exposes no AGENT_SERVER URL"), "{text}");
    assert!(cloud.live().is_empty());
}

#[tokio::test]
async fn start_times_out_while_starting() {
    let cloud = FakeCloud::start(CloudBehaviour {
        starting_polls: 10_000,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(&cloud, dir.path());
    opts.start_timeout = Duration::from_millis(700);
    let text = CloudWorkspace::start(opts, None)
        .await
        .err()
        .expect("fails")
        .to_string();
    assert!(
        text.contains("not ready within") && text.contains("STARTING"),
        "{text}"
    );
    assert!(cloud.live().is_empty());
}

#[tokio::test]
async fn keep_alive_keeps_the_sandbox_and_its_id_resumes_it_paused() {
    let cloud = FakeCloud::start(CloudBehaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(&cloud, dir.path());
    opts.keep_alive = true;
    let first = CloudWorkspace::start(opts.clone(), None).await.unwrap();
    let id = first.sandbox_id().to_string();
    first
        .execute(ExecRequest::new("echo kept > state.txt"))
        .await
        .unwrap();
    first.pause().await.unwrap();
    assert_eq!(cloud.status_of(&id).as_deref(), Some("PAUSED"));
    assert!(cloud.with_proc(&id, |p| p.is_stopped()), "SIGSTOPped");
    first.close().await.unwrap();
    drop(first);
    assert!(!cloud.calls().iter().any(|c| c.starts_with("DELETE")));

    opts.keep_alive = false;
    opts.sandbox_id = Some(id.clone());
    let again = CloudWorkspace::start(opts, None).await.unwrap();
    assert!(cloud
        .calls()
        .contains(&format!("POST /api/v1/sandboxes/{id}/resume")));
    let out = again
        .execute(ExecRequest::new("cat state.txt"))
        .await
        .unwrap();
    assert_eq!(out.stdout, "kept\n");
    again.close().await.unwrap();
    assert_eq!(cloud.status_of(&id).as_deref(), Some("MISSING"));
}

#[tokio::test]
async fn get_llm_returns_the_account_settings_and_get_secrets_only_references() {
    let behaviour = CloudBehaviour {
        llm: json!({"llm_model": "openai/gpt-acct", "llm_api_key": "acct-llm-key", "llm_base_url": "http://llm.example/v1"}),
        secrets: [
            ("GITHUB_TOKEN".to_string(), "ghp_value".to_string()),
            ("NPM".to_string(), "npm_value".to_string()),
        ]
        .into(),
        ..Default::default()
    };
    let cloud = FakeCloud::start(behaviour);
    let dir = tempfile::tempdir().unwrap();
    let ws = CloudWorkspace::start(options(&cloud, dir.path()), None)
        .await
        .unwrap();
    let llm = ws.get_llm().await.unwrap();
    assert_eq!(llm.model.as_deref(), Some("openai/gpt-acct"));
    assert_eq!(llm.api_key.as_deref(), Some("acct-llm-key"));
    assert_eq!(llm.base_url.as_deref(), Some("http://llm.example/v1"));
    let me = cloud
        .requests()
        .into_iter()
        .find(|r| r.path == "/api/v1/users/me")
        .unwrap();
    assert_eq!(me.query, "expose_secrets=true");
    assert_eq!(
        me.session_key.as_deref(),
        Some(ws.session_key()),
        "the session key goes with the Bearer key"
    );

    let secrets = ws.get_secrets(None).await.unwrap();
    assert_eq!(secrets.keys().collect::<Vec<_>>(), ["GITHUB_TOKEN", "NPM"]);
    let gh = &secrets["GITHUB_TOKEN"].to_json();
    assert_eq!(gh["kind"], "LookupSecret");
    assert_eq!(
        gh["url"],
        format!(
            "{}/api/v1/sandboxes/{}/settings/secrets/GITHUB_TOKEN",
            cloud.url(),
            ws.sandbox_id()
        )
    );
    assert_eq!(gh["headers"]["X-Session-API-Key"], ws.session_key());
    assert!(!gh.to_string().contains("ghp_value"));
    let only = ws.get_secrets(Some(&["NPM".to_string()])).await.unwrap();
    assert_eq!(only.keys().collect::<Vec<_>>(), ["NPM"]);
    let listing = cloud
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/settings/secrets"))
        .unwrap();
    assert_eq!(
        listing.authorization, None,
        "settings calls carry the session key only"
    );
    assert!(
        !cloud
            .requests()
            .iter()
            .any(|r| r.path.contains("/settings/secrets/")),
        "values are never fetched here"
    );
    ws.close().await.unwrap();
}

#[tokio::test]
async fn a_service_without_pause_says_so() {
    let cloud = FakeCloud::start(CloudBehaviour {
        no_pause: true,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let ws = CloudWorkspace::start(options(&cloud, dir.path()), None)
        .await
        .unwrap();
    let err = ws.pause().await.unwrap_err();
    assert!(matches!(err, WorkspaceError::Unsupported { .. }), "{err}");
    ws.close().await.unwrap();
}

#[tokio::test]
async fn dropping_an_unclosed_workspace_deletes_the_sandbox() {
    let cloud = FakeCloud::start(CloudBehaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let ws = CloudWorkspace::start(options(&cloud, dir.path()), None)
        .await
        .unwrap();
    let id = ws.sandbox_id().to_string();
    drop(ws);
    assert_eq!(cloud.status_of(&id).as_deref(), Some("MISSING"));
    assert!(cloud.live().is_empty());
}

/// A script of `steps` terminal calls, each appending its number to `log` once, then finish.
pub fn appending_script(dir: &Path, log: &Path, steps: usize) -> std::path::PathBuf {
    let mut yaml = String::new();
    for i in 1..=steps {
        yaml.push_str(&format!(
            "- tool: terminal\n  args: {{command: \"echo step-{i} >> {} && sleep 0.2\"}}\n",
            log.display()
        ));
    }
    yaml.push_str("- tool: finish\n  args: {message: all steps done}\n");
    let path = dir.join("script.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

#[tokio::test]
async fn pausing_the_sandbox_mid_conversation_loses_and_repeats_nothing() {
    let cloud = FakeCloud::start(CloudBehaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let ws = CloudWorkspace::start(options(&cloud, dir.path()), None)
        .await
        .unwrap();
    let log = dir.path().join("steps.log");
    let script = appending_script(dir.path(), &log, 6);
    let spec = RemoteAgentSpec::new(format!("scripted:{}", script.display()));
    let mut conversation = RemoteConversation::create(ws.remote(), spec, RemoteOptions::default())
        .await
        .unwrap();
    conversation.send_message("append six lines").await.unwrap();
    let running = tokio::spawn(async move {
        let end = conversation.run().await.unwrap();
        (conversation, end)
    });
    while std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .count()
        < 2
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ws.pause().await.unwrap();
    let id = ws.sandbox_id().to_string();
    assert!(cloud.with_proc(&id, |p| p.is_stopped()));
    let during = std::fs::read_to_string(&log).unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let later = std::fs::read_to_string(&log).unwrap();
    assert!(
        later.lines().count() <= during.lines().count() + 1,
        "at most the step in flight ran while paused"
    );
    ws.resume().await.unwrap();
    let (conversation, end) = running.await.unwrap();
    assert_eq!(end, RunEnd::Finished);

    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let expected: Vec<String> = (1..=6).map(|i| format!("step-{i}")).collect();
    assert_eq!(lines, expected, "every step ran exactly once, in order");
    let events = conversation.events();
    let actions: Vec<_> = events
        .iter()
        .filter(|e| e.kind() == "ActionEvent")
        .collect();
    let observations = events
        .iter()
        .filter(|e| e.kind() == "ObservationEvent")
        .count();
    assert_eq!(actions.len(), 7, "six terminal calls and finish");
    assert_eq!(observations, 7, "each action has its observation");
    let mut ids: Vec<_> = events.iter().map(|e| e.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), events.len(), "no event twice");
    ws.close().await.unwrap();
}

fn cloud_run(cloud: &FakeCloud, repo: &Path, out: &Path, workdir: &Path) -> std::process::Command {
    let mut cmd = common::sandcrab();
    cmd.args(["run", "--cloud-url", &cloud.url()])
        .arg("--repo-dir")
        .arg(repo)
        .arg("--out")
        .arg(out)
        .arg("--sandbox-workdir")
        .arg(workdir)
        .env("SANDCRAB_CLOUD_API_KEY", CLOUD_KEY);
    cmd
}

#[test]
fn sandcrab_run_in_a_cloud_sandbox_end_to_end() {
    let cloud = FakeCloud::start(CloudBehaviour {
        starting_polls: 2,
        ..Default::default()
    });
    let repo = common::git_repo(&[("a.txt", "broken\n")]);
    let dir = tempfile::tempdir().unwrap();
    let (workdir, out) = (dir.path().join("ws"), dir.path().join("out"));
    let script = dir.path().join("fix.yaml");
    std::fs::write(
        &script,
        "- tool: terminal\n  args: {command: \"echo fixed > a.txt && cat a.txt\"}\n- tool: finish\n  args: {message: fixed a.txt}\n",
    )
    .unwrap();
    let run = common::run(
        cloud_run(&cloud, repo.path(), &out, &workdir)
            .args(["--workspace", "cloud", "--prompt", "fix a.txt"])
            .arg("--model")
            .arg(format!("scripted:{}", script.display())),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let result = common::result_json(&out);
    assert_eq!(result["status"], "finished");
    assert_eq!(result["workspace"]["kind"], "cloud");
    let patch = std::fs::read_to_string(out.join("changes.patch")).unwrap();
    assert!(
        patch.contains("-broken") && patch.contains("+fixed"),
        "{patch}"
    );
    assert_eq!(
        std::fs::read_to_string(repo.path().join("a.txt")).unwrap(),
        "broken\n",
        "the original is untouched"
    );
    assert!(cloud.live().is_empty(), "the sandbox was deleted");
    assert!(cloud
        .calls()
        .iter()
        .any(|c| c.starts_with("DELETE /api/v1/sandboxes/")));
    for file in ["result.json", "trajectory.jsonl", "report.md"] {
        let text = std::fs::read_to_string(out.join(file)).unwrap();
        assert!(!text.contains(CLOUD_KEY), "{file} holds the Cloud key");
    }
    assert!(!run.stderr.contains(CLOUD_KEY));
}

#[test]
fn runner_requirements_none_uses_the_cloud_account_model_and_secrets() {
    let llm = common::FakeLlm::start(common::terminal_steps(2, Duration::ZERO));
    let behaviour = CloudBehaviour {
        llm: json!({"llm_model": "openai/gpt-acct", "llm_api_key": "acct-llm-key-789", "llm_base_url": llm.openai_url()}),
        secrets: [("GITHUB_TOKEN".to_string(), "ghp_never_here".to_string())].into(),
        ..Default::default()
    };
    let cloud = FakeCloud::start(behaviour);
    let repo = common::git_repo(&[("a.txt", "a\n")]);
    let dir = tempfile::tempdir().unwrap();
    let (workdir, out) = (dir.path().join("ws"), dir.path().join("out"));
    let run = common::run(cloud_run(&cloud, repo.path(), &out, &workdir).args([
        "--runner-requirements",
        "none",
        "--prompt",
        "echo twice",
    ]));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("1 account secret(s) given to the agent"),
        "{}",
        run.stderr
    );
    let result = common::result_json(&out);
    assert_eq!(result["workspace"]["kind"], "cloud");
    assert_eq!(result["model"], "openai/gpt-acct");
    let calls = llm.recorded();
    assert_eq!(
        calls.len(),
        3,
        "two steps and finish, called from the sandbox"
    );
    let auth = calls[0]
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.clone());
    assert_eq!(auth.as_deref(), Some("Bearer acct-llm-key-789"));
    assert!(
        !cloud
            .requests()
            .iter()
            .any(|r| r.path.contains("/settings/secrets/")),
        "secret values never fetched by the runner"
    );
    for file in ["result.json", "trajectory.jsonl", "report.md"] {
        let text = std::fs::read_to_string(out.join(file)).unwrap();
        assert!(
            !text.contains("acct-llm-key-789"),
            "{file} holds the account key"
        );
    }
}

#[test]
fn runner_requirements_none_without_a_cloud_key_says_what_to_set() {
    let run = common::run(common::sandcrab().args([
        "run",
        "--runner-requirements",
        "none",
        "--model",
        "openai/x",
        "--prompt",
        "p",
    ]));
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--cloud-api-key"), "{}", run.stderr);
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
}

#[test]
fn runner_requirements_auto_falls_back_to_cloud_without_a_docker_engine() {
    let cloud = FakeCloud::start(CloudBehaviour::default());
    let repo = common::git_repo(&[("a.txt", "a\n")]);
    let dir = tempfile::tempdir().unwrap();
    let (workdir, out) = (dir.path().join("ws"), dir.path().join("out"));
    let script = dir.path().join("s.yaml");
    std::fs::write(&script, "- tool: finish\n  args: {message: done}\n").unwrap();
    let run = common::run(
        cloud_run(&cloud, repo.path(), &out, &workdir)
            .args(["--runner-requirements", "auto", "--prompt", "p"])
            .arg("--model")
            .arg(format!("scripted:{}", script.display()))
            .env(
                "DOCKER_HOST",
                format!("unix://{}/no-docker.sock", dir.path().display()),
            ),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("no Docker engine answers; using an OpenHands Cloud sandbox"),
        "{}",
        run.stderr
    );
    assert_eq!(common::result_json(&out)["workspace"]["kind"], "cloud");
    assert!(cloud.live().is_empty());
}
