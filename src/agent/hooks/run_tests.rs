use super::*;

fn runner(
    event: &str,
    matcher: &str,
    command: &str,
    timeout: u64,
) -> (tempfile::TempDir, HookRunner) {
    let dir = tempfile::tempdir().unwrap();
    let config = HookConfig::parse(&json!({event: [{"matcher": matcher,
        "hooks": [{"command": command, "timeout": timeout}]}]}))
    .unwrap();
    let runner = HookRunner::new(
        config,
        dir.path().to_path_buf(),
        vec!["SANDCRAB_HOOK_TEST_SECRET".into()],
    );
    (dir, runner)
}

fn execution(outcome: &HookOutcome) -> &HookExecution {
    match &outcome.events[0].body {
        EventBody::HookExecutionEvent(h) => h,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn exit_2_blocks_with_stderr_and_exit_1_does_not() {
    let (_d, r) = runner("PreToolUse", "terminal", "echo no rm >&2; exit 2", 10);
    let call = HookCall {
        tool_name: Some("terminal"),
        ..HookCall::default()
    };
    let out = r.run(HookEventType::PreToolUse, "s1", call.clone()).await;
    assert!(out.blocked);
    assert_eq!(out.reason.as_deref(), Some("no rm"));
    let h = execution(&out);
    assert_eq!((h.exit_code, h.blocked, h.success), (2, true, false));
    assert_eq!(h.hook_event_type, "PreToolUse");
    let other_tool = HookCall {
        tool_name: Some("file_editor"),
        ..HookCall::default()
    };
    assert!(r
        .run(HookEventType::PreToolUse, "s1", other_tool)
        .await
        .events
        .is_empty());
    let (_d, r) = runner("PreToolUse", "*", "echo oops >&2; exit 1", 10);
    let out = r.run(HookEventType::PreToolUse, "s1", call).await;
    assert!(!out.blocked);
    assert_eq!(execution(&out).exit_code, 1);
}

#[tokio::test]
async fn a_json_decision_on_stdout_is_read() {
    let (_d, r) = runner(
        "Stop",
        "*",
        r#"echo '{"decision": "deny", "reason": "tests fail", "additionalContext": "run cargo test"}'"#,
        10,
    );
    let out = r.run(HookEventType::Stop, "s1", HookCall::default()).await;
    assert!(out.blocked);
    assert_eq!(out.reason.as_deref(), Some("tests fail"));
    assert_eq!(out.feedback().as_deref(), Some("run cargo test"));
    let h = execution(&out);
    assert!(h.success && h.blocked);
}

#[tokio::test]
async fn the_hook_gets_its_event_on_stdin_and_no_runner_secret() {
    std::env::set_var("SANDCRAB_HOOK_TEST_SECRET", "sk-hook-secret");
    let (dir, r) = runner(
        "PostToolUse",
        "*",
        "cat > input.json; env > env.txt; pwd > pwd.txt",
        10,
    );
    let call = HookCall {
        tool_name: Some("terminal"),
        tool_input: Some(json!({"command": "ls"})),
        action_id: Some("a1".into()),
        ..HookCall::default()
    };
    let out = r.run(HookEventType::PostToolUse, "conv-1", call).await;
    assert!(execution(&out).success);
    assert_eq!(execution(&out).action_id.as_deref(), Some("a1"));
    let input: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("input.json")).unwrap())
            .unwrap();
    assert_eq!(input["event_type"], "PostToolUse");
    assert_eq!(input["tool_input"]["command"], "ls");
    assert_eq!(input["session_id"], "conv-1");
    let env = std::fs::read_to_string(dir.path().join("env.txt")).unwrap();
    assert!(env.contains("OPENHANDS_EVENT_TYPE=PostToolUse"));
    assert!(env.contains("OPENHANDS_TOOL_NAME=terminal"));
    assert!(env.contains("OPENHANDS_SESSION_ID=conv-1"));
    assert!(
        !env.contains("sk-hook-secret"),
        "a runner secret reached the hook"
    );
    let pwd = std::fs::read_to_string(dir.path().join("pwd.txt")).unwrap();
    assert_eq!(
        std::path::Path::new(pwd.trim()).canonicalize().unwrap(),
        dir.path().canonicalize().unwrap()
    );
}

#[tokio::test]
async fn a_slow_hook_times_out_without_blocking() {
    let (_d, r) = runner("Stop", "*", "sleep 30", 1);
    let started = std::time::Instant::now();
    let out = r.run(HookEventType::Stop, "s", HookCall::default()).await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!out.blocked);
    assert!(execution(&out)
        .error
        .as_deref()
        .unwrap()
        .contains("timed out"));
}

#[tokio::test]
async fn verify_command_blocks_on_any_failure_with_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let r = HookRunner::new(
        HookConfig::verify("echo 'test foo ... FAILED'; exit 1"),
        dir.path().to_path_buf(),
        vec![],
    );
    let out = r.run(HookEventType::Stop, "s", HookCall::default()).await;
    assert!(out.blocked);
    assert_eq!(out.feedback().as_deref(), Some("test foo ... FAILED"));
    let ok = HookRunner::new(HookConfig::verify("true"), dir.path().to_path_buf(), vec![]);
    assert!(
        !ok.run(HookEventType::Stop, "s", HookCall::default())
            .await
            .blocked
    );
}
