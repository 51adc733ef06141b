//! `sandcrab run` end to end: the real binary, a real git repository, real shell commands and
//! a fake model provider on loopback.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// A repo with the calc example committed.
fn calc_repo() -> tempfile::TempDir {
    let ex = examples_dir().join("calc");
    let read = |f: &str| std::fs::read_to_string(ex.join(f)).unwrap();
    git_repo(&[
        ("calc.sh", &read("calc.sh")),
        ("test.sh", &read("test.sh")),
        ("README.md", &read("README.md")),
    ])
}

#[test]
fn demo_fixes_the_bug_offline_and_writes_every_output() {
    let out = tempfile::tempdir().unwrap();
    let r = run(sandcrab().args(["run", "--demo", "--out"]).arg(out.path()));
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    let patch = std::fs::read_to_string(out.path().join("changes.patch")).unwrap();
    assert!(patch.contains("-  sub) echo $((a + b)) ;;"), "{patch}");
    assert!(patch.contains("+  sub) echo $((a - b)) ;;"), "{patch}");
    let result = result_json(out.path());
    assert_eq!(result["status"], "finished");
    assert_eq!(result["changed_files"][0]["path"], "calc.sh");
    assert!(result["tokens"]["total"].as_u64().unwrap() > 0);
    let events = trajectory(out.path());
    let observations = kinds(&events, "ObservationEvent");
    let last_test = observations
        .iter()
        .rev()
        .find(|o| o["tool_name"] == "terminal")
        .unwrap();
    assert!(last_test["observation"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("4 of 4 cases ok"));
    let report = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(
        report.contains("finished") && report.contains("calc.sh"),
        "{report}"
    );
    assert!(
        r.stderr.contains("[  1] task_tracker"),
        "progress lines: {}",
        r.stderr
    );
}

#[test]
fn scripted_yaml_model_runs_on_a_repo_dir() {
    let repo = calc_repo();
    let out = tempfile::tempdir().unwrap();
    let r = run(sandcrab()
        .args(["run", "--model"])
        .arg(format!(
            "scripted:{}",
            examples_dir().join("calc-fix.yaml").display()
        ))
        .arg("--prompt-file")
        .arg(examples_dir().join("calc-task.md"))
        .arg("--repo-dir")
        .arg(repo.path())
        .arg("--out")
        .arg(out.path()));
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    let fixed = std::fs::read_to_string(repo.path().join("calc.sh")).unwrap();
    assert!(fixed.contains("sub) echo $((a - b))"));
    // The repository's index is untouched by the patch computation.
    assert_eq!(git(repo.path(), &["diff", "--cached", "--name-only"]), "");
}

fn run_openai(llm: &FakeLlm, repo: &std::path::Path, out: &std::path::Path, extra: &[&str]) -> Run {
    run(common::run_against(llm, repo, out)
        .args(["--prompt", "do it"])
        .args(extra))
}

#[test]
fn openai_multi_step_run_sends_history_and_finishes() {
    let llm = FakeLlm::start(terminal_steps(3, Duration::ZERO));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let r = run_openai(
        &llm,
        repo.path(),
        out.path(),
        &["--llm-api-key", "sk-test-key-000"],
    );
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    let reqs = llm.recorded();
    assert_eq!(reqs.len(), 4);
    let auth = reqs[0]
        .headers
        .iter()
        .find(|(k, _)| k == "authorization")
        .map(|(_, v)| v.clone());
    assert_eq!(auth.as_deref(), Some("Bearer sk-test-key-000"));
    let last = &reqs[3].body["messages"];
    let tool_msgs: Vec<&Value> = last
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .collect();
    assert_eq!(tool_msgs.len(), 3);
    assert!(tool_msgs[2]["content"].as_str().unwrap().contains("step-2"));
    assert_eq!(result_json(out.path())["summary"], "finished after 3 steps");
}

#[test]
fn rate_limit_with_retry_after_is_retried() {
    let inner = terminal_steps(1, Duration::ZERO);
    let llm = FakeLlm::start(Arc::new(move |n, body| {
        if n == 0 {
            Reply::status(429).header("retry-after", "1")
        } else {
            inner(n, body)
        }
    }));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let r = run_openai(&llm, repo.path(), out.path(), &[]);
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    assert_eq!(llm.recorded().len(), 3);
    assert!(
        r.stderr.contains("429"),
        "the retry is logged: {}",
        r.stderr
    );
}

#[test]
fn server_errors_beyond_the_retry_budget_exit_1_with_a_clear_line() {
    let llm = FakeLlm::start(Arc::new(|_, _| Reply::status(500)));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let r = run_openai(&llm, repo.path(), out.path(), &["--llm-num-retries", "2"]);
    assert_eq!(r.code, 1, "stderr: {}", r.stderr);
    assert_eq!(llm.recorded().len(), 3);
    assert!(r.stderr.contains("HTTP 500"), "{}", r.stderr);
    assert!(!r.stderr.contains("panicked"));
    let result = result_json(out.path());
    assert_eq!(result["status"], "error");
    assert!(result["error"].as_str().unwrap().contains("500"));
}

#[test]
fn malformed_tool_call_json_goes_back_to_the_model() {
    let llm = FakeLlm::start(Arc::new(|n, _| match n {
        0 => Reply::ok(openai_call(0, "terminal", "{\"command\": \"echo hi\"")),
        1 => Reply::ok(openai_call(1, "terminal", "{\"command\": \"echo fixed\"}")),
        _ => Reply::ok(openai_call(2, "finish", "{\"message\": \"done\"}")),
    }));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let r = run_openai(&llm, repo.path(), out.path(), &[]);
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    let second = &llm.recorded()[1].body["messages"];
    let tool = second
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap();
    assert!(
        tool["content"].as_str().unwrap().contains("not valid JSON"),
        "{tool}"
    );
    let events = trajectory(out.path());
    assert_eq!(kinds(&events, "AgentErrorEvent").len(), 1);
    assert!(kinds(&events, "ActionEvent")[0]["action"].is_null());
}

#[test]
fn anthropic_run_uses_messages_api_and_finishes() {
    let llm = FakeLlm::start(Arc::new(|_, body: &Value| {
        let results = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|m| m["content"].as_array().cloned().unwrap_or_default())
            .filter(|c| c["type"] == "tool_result")
            .count();
        match results {
            0 => Reply::ok(anthropic_call(
                0,
                "terminal",
                json!({"command": "echo from-claude > note.txt"}),
            )),
            _ => Reply::ok(anthropic_call(
                1,
                "finish",
                json!({"message": "wrote note.txt"}),
            )),
        }
    }));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let r = run(sandcrab()
        .args([
            "run",
            "--model",
            "anthropic/claude-test",
            "--llm-base-url",
            &llm.base_url(),
            "--llm-api-key",
            "sk-ant-test",
            "--prompt",
            "write a note",
        ])
        .arg("--repo-dir")
        .arg(repo.path())
        .arg("--out")
        .arg(out.path()));
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    let reqs = llm.recorded();
    assert_eq!(reqs[0].path, "/v1/messages");
    assert!(reqs[0]
        .headers
        .iter()
        .any(|(k, v)| k == "x-api-key" && v == "sk-ant-test"));
    assert_eq!(reqs[0].body["model"], "claude-test");
    let patch = std::fs::read_to_string(out.path().join("changes.patch")).unwrap();
    assert!(patch.contains("+from-claude"), "{patch}");
}

#[test]
fn shared_scripted_llm_drives_fifty_terminal_steps() {
    let Some(llm) = SharedScriptedLlm::start(50) else {
        return;
    };
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let r = run(sandcrab()
        .args([
            "run",
            "--model",
            "openai/scripted",
            "--llm-base-url",
            &llm.openai_url(),
            "--prompt",
            "run the script",
            // scripted_llm.py picks the step from the tool results in the request, which a
            // condensed history (past 80 events) would replay.
            "--no-condenser",
        ])
        .arg("--repo-dir")
        .arg(repo.path())
        .arg("--out")
        .arg(out.path()));
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    let events = trajectory(out.path());
    let actions = kinds(&events, "ActionEvent");
    assert_eq!(
        actions
            .iter()
            .filter(|a| a["tool_name"] == "terminal")
            .count(),
        50
    );
    assert_eq!(actions.last().unwrap()["tool_name"], "finish");
    assert_eq!(result_json(out.path())["actions"], 51);
}

#[test]
fn max_iterations_exit_1() {
    let llm = FakeLlm::start(terminal_steps(50, Duration::ZERO));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let r = run_openai(&llm, repo.path(), out.path(), &["--max-iterations", "3"]);
    assert_eq!(r.code, 1, "stderr: {}", r.stderr);
    assert_eq!(result_json(out.path())["status"], "max_iterations");
    assert_eq!(llm.recorded().len(), 3);
}

#[test]
fn repeating_the_same_action_is_stuck() {
    let llm = FakeLlm::start(Arc::new(|n, _| {
        Reply::ok(openai_call(n, "terminal", "{\"command\": \"echo same\"}"))
    }));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let r = run_openai(&llm, repo.path(), out.path(), &[]);
    assert_eq!(r.code, 1, "stderr: {}", r.stderr);
    assert_eq!(result_json(out.path())["status"], "stuck");
    assert_eq!(llm.recorded().len(), 4);
}

#[test]
fn an_interrupted_conversation_resumes_with_the_same_id() {
    // First run: the provider fails for good after two steps.
    let inner = terminal_steps(4, Duration::ZERO);
    let llm = FakeLlm::start(Arc::new(move |n, body| {
        if n == 2 {
            Reply::status(400)
        } else {
            inner(n, body)
        }
    }));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let id = ["--conversation-id", "resume-me"];
    let first = run_openai(&llm, repo.path(), out.path(), &id);
    assert_eq!(first.code, 1, "stderr: {}", first.stderr);
    // Second run, same id, healthy provider: it continues at step 2, not from scratch.
    let llm2 = FakeLlm::start(terminal_steps(4, Duration::ZERO));
    let second = run_openai(&llm2, repo.path(), out.path(), &id);
    assert_eq!(second.code, 0, "stderr: {}", second.stderr);
    assert!(second.stderr.contains("resuming conversation resume-me"));
    assert_eq!(llm2.recorded().len(), 3, "steps 2, 3 and finish");
    let events = trajectory(out.path());
    let users = kinds(&events, "MessageEvent")
        .into_iter()
        .filter(|e| e["source"] == "user")
        .count();
    assert_eq!(users, 1, "the task is not sent twice");
    let commands: Vec<&str> = kinds(&events, "ActionEvent")
        .iter()
        .filter_map(|a| a["action"]["command"].as_str())
        .collect();
    assert_eq!(
        commands,
        vec!["echo step-0", "echo step-1", "echo step-2", "echo step-3"]
    );
}

#[test]
fn sigint_mid_run_writes_partial_results_and_exits_130() {
    let llm = FakeLlm::start(terminal_steps(100, Duration::from_millis(100)));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let child = sandcrab()
        .args([
            "run",
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
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    // SAFETY: sends SIGINT to the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result = result_json(out.path());
    assert_eq!(result["status"], "interrupted");
    assert!(result["actions"].as_u64().unwrap() >= 2);
    assert!(!kinds(&trajectory(out.path()), "PauseEvent").is_empty());
}

#[test]
fn the_api_key_never_reaches_the_shell_or_the_outputs() {
    let secret = "sk-very-secret-value-42";
    let llm = FakeLlm::start(Arc::new(move |n, _| match n {
        0 => Reply::ok(openai_call(
            0,
            "terminal",
            "{\"command\": \"echo key=[$LLM_API_KEY]; env | grep -c sk-very || true\"}",
        )),
        1 => Reply::ok(openai_call(
            1,
            "terminal",
            &json!({"command": format!("echo {secret} > leaked.txt")}).to_string(),
        )),
        _ => Reply::ok(openai_call(2, "finish", "{\"message\": \"done\"}")),
    }));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let r = run(sandcrab()
        .args([
            "run",
            "--model",
            "openai/scripted",
            "--llm-base-url",
            &llm.openai_url(),
            "--prompt",
            "go",
        ])
        .env("LLM_API_KEY", secret)
        .arg("--repo-dir")
        .arg(repo.path())
        .arg("--out")
        .arg(out.path()));
    // The agent wrote the key into a file: the changes are withheld (exit 4, one line).
    assert_eq!(r.code, 4, "stderr: {}", r.stderr);
    assert!(
        r.stderr.contains(
            "sandcrab: refused: the agent's changes hold a secret of this run in leaked.txt:"
        ),
        "{}",
        r.stderr
    );
    let events = trajectory(out.path());
    let first_obs = kinds(&events, "ObservationEvent")[0]["observation"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        first_obs.starts_with("key=[]\n0"),
        "the shell has no key: {first_obs}"
    );
    for file in [
        "trajectory.jsonl",
        "result.json",
        "report.md",
        "changes.patch",
    ] {
        let text = std::fs::read_to_string(out.path().join(file)).unwrap();
        assert!(!text.contains(secret), "{file} leaks the key");
    }
    assert!(std::fs::read_to_string(out.path().join("changes.patch"))
        .unwrap()
        .is_empty());
    assert_eq!(result_json(out.path())["status"], "secret_in_changes");
    assert!(!r.stderr.contains(secret) && !r.stdout.contains(secret));
}

fn bad_input(args: &[&str]) -> Run {
    let r = run(sandcrab().args(args));
    assert_eq!(r.code, 2, "args {args:?}: stderr {}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "one line: {}", r.stderr);
    r
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let repo = git_repo(&[("a.txt", "a\n")]);
    let dir = repo.path().to_str().unwrap();
    let r = bad_input(&[
        "run",
        "--model",
        "openai/x",
        "--llm-base-url",
        "http://127.0.0.1:9/v1",
        "--repo-dir",
        dir,
    ]);
    assert!(r.stderr.contains("no task given"));
    let r = bad_input(&[
        "run",
        "--model",
        "openai/x",
        "--llm-base-url",
        "http://127.0.0.1:9/v1",
        "--prompt",
        "x",
        "--repo-dir",
        "/nonexistent/dir",
    ]);
    assert!(r.stderr.contains("/nonexistent/dir"));
    let r = bad_input(&[
        "run",
        "--model",
        "mystery/model-9",
        "--prompt",
        "x",
        "--repo-dir",
        dir,
    ]);
    assert!(r.stderr.contains("unknown model"));
    let yaml = repo.path().join("bad.yaml");
    std::fs::write(&yaml, "- tool: terminal\n  args: [unclosed\n").unwrap();
    let r = bad_input(&[
        "run",
        "--model",
        &format!("scripted:{}", yaml.display()),
        "--prompt",
        "x",
        "--repo-dir",
        dir,
    ]);
    assert!(r.stderr.contains("bad.yaml"));
    let r = bad_input(&[
        "run",
        "--prompt-file",
        "/nonexistent/task.md",
        "--model",
        "scripted:x.yaml",
        "--repo-dir",
        dir,
    ]);
    assert!(r.stderr.contains("task.md") || r.stderr.contains("x.yaml"));
    let r = bad_input(&[
        "run",
        "--model",
        "openai/gpt-4o",
        "--prompt",
        "x",
        "--repo-dir",
        dir,
    ]);
    assert!(r.stderr.contains("API key"));
}

#[test]
fn a_finished_conversation_takes_a_new_prompt_as_a_follow_up() {
    let llm = FakeLlm::start(terminal_steps(1, Duration::ZERO));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let first = run_openai(
        &llm,
        repo.path(),
        out.path(),
        &["--conversation-id", "follow"],
    );
    assert_eq!(first.code, 0, "stderr: {}", first.stderr);
    let again = run_openai(
        &llm,
        repo.path(),
        out.path(),
        &["--conversation-id", "follow"],
    );
    assert_eq!(again.code, 0, "stderr: {}", again.stderr);
    assert_eq!(
        llm.recorded().len(),
        2,
        "a finished conversation is not run again"
    );
    let second = run(sandcrab()
        .args([
            "run",
            "--model",
            "openai/scripted",
            "--llm-base-url",
            &llm.openai_url(),
            "--prompt",
            "and now this",
        ])
        .args(["--conversation-id", "follow"])
        .arg("--repo-dir")
        .arg(repo.path())
        .arg("--out")
        .arg(out.path()));
    assert_eq!(second.code, 0, "stderr: {}", second.stderr);
    let events = trajectory(out.path());
    let users: Vec<&str> = kinds(&events, "MessageEvent")
        .iter()
        .filter(|e| e["source"] == "user")
        .map(|e| e["llm_message"]["content"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        users,
        vec!["do it", "and now this"],
        "the same prompt is not sent twice"
    );
}

#[test]
fn run_drives_a_remote_agent_server() {
    let repo = git_repo(&[("a.txt", "a\n")]);
    let server = common::server::Server::start_in(repo.path());
    let llm = FakeLlm::start(Arc::new(|_, body: &Value| match tool_results(body) {
        0 => Reply::ok(openai_call(
            0,
            "terminal",
            "{\"command\": \"echo remote > made.txt\"}",
        )),
        _ => Reply::ok(openai_call(
            1,
            "finish",
            "{\"message\": \"made it remotely\"}",
        )),
    }));
    let out = tempfile::tempdir().unwrap();
    let r = run(sandcrab()
        .args([
            "run",
            "--workspace",
            "remote",
            "--server-url",
            &server.base,
            "--session-api-key",
            common::server::KEY,
        ])
        .args([
            "--model",
            "openai/scripted",
            "--llm-base-url",
            &llm.openai_url(),
            "--prompt",
            "make a file",
        ])
        .arg("--sandbox-workdir")
        .arg(&server.working_dir)
        .arg("--out")
        .arg(out.path()));
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    assert!(
        r.stderr.contains("[  1] terminal: echo remote > made.txt"),
        "progress: {}",
        r.stderr
    );
    let result = result_json(out.path());
    assert_eq!(result["workspace"]["kind"], "remote");
    assert_eq!(result["summary"], "made it remotely");
    assert_eq!(result["actions"], 2);
    let patch = std::fs::read_to_string(out.path().join("changes.patch")).unwrap();
    assert!(
        patch.contains("+++ b/made.txt") && patch.contains("+remote"),
        "{patch}"
    );
    assert!(
        !std::fs::read_to_string(out.path().join("trajectory.jsonl"))
            .unwrap()
            .contains(common::server::KEY)
    );
}

#[test]
fn remote_without_a_server_is_bad_input() {
    let r = bad_input(&[
        "run",
        "--workspace",
        "remote",
        "--model",
        "openai/x",
        "--llm-base-url",
        "http://127.0.0.1:9/v1",
        "--prompt",
        "x",
    ]);
    assert!(r.stderr.contains("--server-url"), "{}", r.stderr);
}
