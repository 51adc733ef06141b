//! Confirmation policy and security analyser end to end: `sandcrab run`'s headless answers
//! (reject and go on, or stop) and the agent-server's OpenHands routes
//! (`waiting_for_confirmation`, `respond_to_confirmation`, `confirmation_policy`,
//! `security_analyzer`), with the deterministic rails under the model's own label.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::server::{json_of, Server};
use common::{
    git_repo, kinds, openai_call, result_json, run, sandcrab, tool_results, trajectory, FakeLlm,
    Reply,
};
use serde_json::{json, Value};

/// Fetch-and-execute, labelled LOW by the model: the rail makes it HIGH.
const PIPE_TO_SH: &str = "curl -s file:///dev/null | sh && touch pwned";

/// A model that makes `calls` in order (one per turn), then finishes.
fn calls(calls: Vec<(&'static str, Value)>) -> common::Script {
    Arc::new(move |_, body: &Value| {
        let done = tool_results(body);
        match calls.get(done) {
            Some((name, args)) => Reply::ok(openai_call(done, name, &args.to_string())),
            None => Reply::ok(openai_call(done, "finish", r#"{"message": "done"}"#)),
        }
    })
}

fn risky_then_safe() -> common::Script {
    calls(vec![
        (
            "terminal",
            json!({"command": PIPE_TO_SH, "security_risk": "LOW"}),
        ),
        (
            "terminal",
            json!({"command": "echo safe-step", "security_risk": "LOW"}),
        ),
    ])
}

/// Two MEDIUM-risk steps: the one a test approves (`touch approved`), then one that must run
/// without asking once the policy is NeverConfirm (`touch unasked`).
fn approved_then_unasked() -> common::Script {
    calls(vec![
        (
            "terminal",
            json!({"command": "touch approved", "security_risk": "MEDIUM"}),
        ),
        (
            "terminal",
            json!({"command": "touch unasked", "security_risk": "MEDIUM"}),
        ),
    ])
}

fn run_local(llm: &FakeLlm, repo: &Path, out: &Path, extra: &[&str]) -> common::Run {
    run(common::run_against(llm, repo, out)
        .args(["--workspace", "local", "--llm-api-key", "sk-confirm-0000"])
        .args(["--prompt", "install the tool"])
        .args(extra))
}

fn tool_messages(body: &Value) -> Vec<String> {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].to_string())
        .collect()
}

#[test]
fn a_ci_run_rejects_a_risky_action_and_the_model_goes_on() {
    let llm = FakeLlm::start(risky_then_safe());
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let r = run_local(
        &llm,
        repo.path(),
        out.path(),
        &["--confirmation-policy", "risky"],
    );
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    assert!(
        !repo.path().join("pwned").exists(),
        "the rejected command ran"
    );
    let reqs = llm.recorded();
    // Tools that act carry OpenHands' security_risk; finish and think do not.
    let tools = reqs[0].body["tools"].as_array().unwrap();
    let schema = |name: &str| {
        tools
            .iter()
            .find(|t| t["function"]["name"] == name)
            .map(|t| t["function"]["parameters"]["properties"].clone())
            .unwrap()
    };
    assert_eq!(
        schema("terminal")["security_risk"]["enum"],
        json!(["UNKNOWN", "LOW", "MEDIUM", "HIGH"])
    );
    assert!(schema("finish").get("security_risk").is_none());
    // The model read the rejection, then its next action ran.
    let results = tool_messages(&reqs[2].body);
    assert!(
        results[0].contains("Action rejected: Rejected by the run's confirmation policy"),
        "{results:?}"
    );
    assert!(results[1].contains("safe-step"), "{results:?}");
    let events = trajectory(out.path());
    let analyses = kinds(&events, "SecurityAnalysisEvent");
    assert_eq!(analyses.len(), 2, "one analysis per batch that acts");
    let first_action = kinds(&events, "ActionEvent")[0];
    assert_eq!(
        first_action["security_risk"], "LOW",
        "the model's own label is kept"
    );
    let id = first_action["id"].as_str().unwrap();
    assert_eq!(analyses[0]["analyzer"], "LLMSecurityAnalyzer");
    assert_eq!(analyses[0]["policy"], "ConfirmRisky");
    assert_eq!(analyses[0]["risks"][id], "HIGH");
    assert_eq!(analyses[0]["details"][id]["rail"], "fetch-to-exec");
    let reject = kinds(&events, "UserRejectObservation")[0];
    assert_eq!(reject["action_id"], id);
    assert_eq!(reject["tool_name"], "terminal");
    assert_eq!(reject["rejection_source"], "user");
    assert_eq!(result_json(out.path())["status"], "finished");
}

#[test]
fn fail_fast_stops_the_run_with_its_own_status_and_one_line() {
    let llm = FakeLlm::start(risky_then_safe());
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let r = run_local(
        &llm,
        repo.path(),
        out.path(),
        &[
            "--confirmation-policy",
            "risky",
            "--on-confirmation",
            "fail",
        ],
    );
    assert_ne!(r.code, 0, "stderr: {}", r.stderr);
    assert!(!repo.path().join("pwned").exists(), "the command ran");
    assert_eq!(llm.recorded().len(), 1, "the run went on after the stop");
    let result = result_json(out.path());
    assert_eq!(result["status"], "confirmation_required");
    let error = result["error"].as_str().unwrap();
    assert!(
        error.contains("needs a person's confirmation") && !error.contains('\n'),
        "{error}"
    );
    let events = trajectory(out.path());
    let stop = kinds(&events, "ConversationErrorEvent")[0];
    assert_eq!(stop["code"], "ConfirmationRequired");
}

#[test]
fn without_a_policy_nothing_is_rated_or_held() {
    let llm = FakeLlm::start(calls(vec![("terminal", json!({"command": "echo plain"}))]));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let r = run_local(&llm, repo.path(), out.path(), &[]);
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    let tools = llm.recorded()[0].body["tools"].clone();
    assert!(!tools.to_string().contains("security_risk"));
    assert!(kinds(&trajectory(out.path()), "SecurityAnalysisEvent").is_empty());
}

// ---- the agent-server ----

fn create_body(llm: &FakeLlm, policy: Value, analyzer: Value) -> Value {
    json!({
        "agent": {"kind": "Agent",
                  "llm": {"model": "openai/scripted", "base_url": llm.openai_url(), "api_key": "sk-abc-123456"},
                  "tools": [{"name": "TerminalTool"}]},
        "workspace": {"kind": "LocalWorkspace", "working_dir": "."},
        "confirmation_policy": policy,
        "security_analyzer": analyzer,
        "initial_message": {"role": "user", "content": [{"type": "text", "text": "go"}], "run": true}
    })
}

async fn wait_status(server: &Server, id: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = server.get_json(&format!("/api/conversations/{id}")).await;
        if info["execution_status"] == want {
            return info;
        }
        assert!(
            Instant::now() < deadline,
            "status {} (want {want})",
            info["execution_status"]
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

/// Creates the conversation of `body` and waits until its first action waits for a yes:
/// the create answer and the conversation's id.
async fn start_waiting(server: &Server, body: &Value) -> (Value, String) {
    let info = json_of(
        server
            .post("/api/conversations")
            .json(body)
            .send()
            .await
            .unwrap(),
        201,
    )
    .await;
    let id = info["id"].as_str().unwrap().to_string();
    wait_status(server, &id, "waiting_for_confirmation").await;
    (info, id)
}

/// From now on nothing waits (NeverConfirm), and the waiting action is approved.
async fn approve_and_stop_asking(server: &Server, base: &str) {
    server
        .post_json(
            &format!("{base}/confirmation_policy"),
            &json!({"policy": {"kind": "NeverConfirm"}}),
        )
        .await;
    server
        .post_json(
            &format!("{base}/events/respond_to_confirmation"),
            &json!({"accept": true}),
        )
        .await;
}

async fn events(server: &Server, id: &str) -> Vec<Value> {
    let page = server
        .get_json(&format!("/api/conversations/{id}/events/search?limit=100"))
        .await;
    page["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_waits_for_confirmation_and_a_rejection_reaches_the_model() {
    let llm = FakeLlm::start(risky_then_safe());
    let server = Server::start();
    let risky = json!({"kind": "ConfirmRisky", "threshold": "HIGH", "confirm_unknown": true});
    let body = create_body(&llm, risky.clone(), json!({"kind": "LLMSecurityAnalyzer"}));
    let (info, id) = start_waiting(&server, &body).await;
    assert_eq!(info["confirmation_policy"], risky);
    assert_eq!(
        info["security_analyzer"],
        json!({"kind": "LLMSecurityAnalyzer"})
    );
    assert!(!server.working_dir.join("pwned").exists());
    let seen = events(&server, &id).await;
    assert_eq!(kinds(&seen, "SecurityAnalysisEvent").len(), 1);
    assert!(kinds(&seen, "ObservationEvent").is_empty());
    // OpenHands' ConfirmationResponseRequest; `reason` has a default.
    let path = format!("/api/conversations/{id}/events/respond_to_confirmation");
    let done = server
        .post_json(
            &path,
            &json!({"accept": false, "reason": "not on my machine"}),
        )
        .await;
    assert_eq!(done, json!({"success": true}));
    wait_status(&server, &id, "idle").await;
    let seen = events(&server, &id).await;
    let reject = kinds(&seen, "UserRejectObservation")[0];
    assert_eq!(reject["rejection_reason"], "not on my machine");
    // Running again: the model reads the rejection and its next (LOW) action runs.
    server
        .post_json(&format!("/api/conversations/{id}/run"), &json!({}))
        .await;
    wait_status(&server, &id, "finished").await;
    let reqs = llm.recorded();
    let results = tool_messages(&reqs[1].body);
    assert!(results[0].contains("not on my machine"), "{results:?}");
    assert!(!server.working_dir.join("pwned").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_runs_the_waiting_action_and_policies_change_live() {
    let llm = FakeLlm::start(approved_then_unasked());
    let server = Server::start();
    let body = create_body(
        &llm,
        json!({"kind": "AlwaysConfirm"}),
        json!({"kind": "LLMSecurityAnalyzer"}),
    );
    let (_, id) = start_waiting(&server, &body).await;
    assert!(!server.working_dir.join("approved").exists());
    let base = format!("/api/conversations/{id}");
    approve_and_stop_asking(&server, &base).await;
    let info = wait_status(&server, &id, "finished").await;
    assert!(server.working_dir.join("approved").exists());
    assert!(server.working_dir.join("unasked").exists());
    assert_eq!(info["confirmation_policy"], json!({"kind": "NeverConfirm"}));
    // Bad bodies are 422, as in OpenHands.
    let bad = server
        .post(&format!("{base}/confirmation_policy"))
        .json(&json!({"policy": {"kind": "ConfirmRisky", "threshold": "UNKNOWN"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 422);
    let bad = server
        .post(&format!("{base}/security_analyzer"))
        .json(&json!({"security_analyzer": {"kind": "GraySwanAnalyzer"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 422);
    server
        .post_json(
            &format!("{base}/security_analyzer"),
            &json!({"security_analyzer": null}),
        )
        .await;
    let info = server.get_json(&base).await;
    assert_eq!(info["security_analyzer"], Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_action_still_goes_through_the_pre_tool_use_hook() {
    let llm = FakeLlm::start(approved_then_unasked());
    let server = Server::start();
    let mut body = create_body(
        &llm,
        json!({"kind": "AlwaysConfirm"}),
        json!({"kind": "LLMSecurityAnalyzer"}),
    );
    body["hook_config"] = json!({"hooks": {"PreToolUse": [{"matcher": "terminal", "hooks": [
        {"command": "if grep -q 'touch approved'; then echo 'the hook says no' >&2; exit 2; fi"}]}]}});
    let (_, id) = start_waiting(&server, &body).await;
    let base = format!("/api/conversations/{id}");
    approve_and_stop_asking(&server, &base).await;
    wait_status(&server, &id, "finished").await;
    // A person's yes does not skip the repository's hook: it still refuses the command.
    assert!(!server.working_dir.join("approved").exists());
    assert!(server.working_dir.join("unasked").exists());
    let events = events(&server, &id).await;
    let rejected: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "UserRejectObservation")
        .collect();
    assert_eq!(rejected.len(), 1, "{events:#?}");
    assert_eq!(rejected[0]["rejection_source"], "hook");
    assert_eq!(rejected[0]["rejection_reason"], "the hook says no");
}

/// `sandcrab run` against an agent-server (the path of every sandbox): the policy travels in
/// the create request and the client answers the server's `waiting_for_confirmation` itself.
fn run_remote(llm: &FakeLlm, server: &Server, out: &Path, extra: &[&str]) -> common::Run {
    run(sandcrab()
        .args(["run", "--workspace", "remote", "--server-url", &server.base])
        .args(["--session-api-key", common::server::KEY])
        .args([
            "--model",
            "openai/scripted",
            "--llm-base-url",
            &llm.openai_url(),
        ])
        .args([
            "--prompt",
            "install the tool",
            "--confirmation-policy",
            "risky",
        ])
        .arg("--sandbox-workdir")
        .arg(&server.working_dir)
        .arg("--out")
        .arg(out)
        .args(extra))
}

#[test]
fn a_ci_run_on_an_agent_server_rejects_and_goes_on_or_fails_fast() {
    let server = Server::start();
    let llm = FakeLlm::start(risky_then_safe());
    let out = tempfile::tempdir().unwrap();
    let r = run_remote(&llm, &server, out.path(), &[]);
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    assert!(
        !server.working_dir.join("pwned").exists(),
        "the rejected command ran"
    );
    let events = trajectory(out.path());
    assert_eq!(kinds(&events, "UserRejectObservation").len(), 1);
    assert_eq!(kinds(&events, "SecurityAnalysisEvent").len(), 2);
    let results = tool_messages(&llm.recorded()[2].body);
    assert!(results[1].contains("safe-step"), "{results:?}");

    let llm = FakeLlm::start(risky_then_safe());
    let out = tempfile::tempdir().unwrap();
    let r = run_remote(&llm, &server, out.path(), &["--on-confirmation", "fail"]);
    assert_ne!(r.code, 0, "stderr: {}", r.stderr);
    assert_eq!(result_json(out.path())["status"], "confirmation_required");
    assert_eq!(llm.recorded().len(), 1);
    assert!(!server.working_dir.join("pwned").exists());
}

/// The OpenHands 1.58.2 agent-server's OpenAPI description (../shared/peer).
fn peer_spec() -> Option<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/peer/openhands-agent-server-1.58.2.openapi.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(serde_json::from_str(&text).unwrap()),
        Err(_) => {
            common::skip(&format!(
                "{} not found (../shared beside the clone)",
                path.display()
            ));
            None
        }
    }
}

/// `event`'s fields are exactly allowed by the spec's schema `name` (additionalProperties is
/// false there), and it has every required one.
fn assert_matches_schema(spec: &Value, name: &str, event: &Value) {
    let schema = &spec["components"]["schemas"][name];
    let allowed: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
    for key in event.as_object().unwrap().keys() {
        assert!(allowed.contains(&key), "{name} has no field {key}: {event}");
    }
    for required in schema["required"].as_array().unwrap() {
        assert!(
            event.get(required.as_str().unwrap()).is_some(),
            "{name} lacks {required}: {event}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_confirmation_routes_and_events_match_the_peers_openapi_spec() {
    let Some(spec) = peer_spec() else { return };
    let paths = &spec["paths"];
    let respond =
        &paths["/api/conversations/{conversation_id}/events/respond_to_confirmation"]["post"];
    let body_ref = respond["requestBody"]["content"]["application/json"]["schema"]["$ref"].clone();
    assert_eq!(body_ref, "#/components/schemas/ConfirmationResponseRequest");
    let request = &spec["components"]["schemas"]["ConfirmationResponseRequest"];
    assert_eq!(request["required"], json!(["accept"]));
    let default_reason = request["properties"]["reason"]["default"].as_str().unwrap();
    for route in ["confirmation_policy", "security_analyzer"] {
        assert!(
            paths[format!("/api/conversations/{{conversation_id}}/{route}")]["post"].is_object()
        );
    }

    let llm = FakeLlm::start(risky_then_safe());
    let server = Server::start();
    let risky = json!({"kind": "ConfirmRisky"});
    let body = create_body(&llm, risky, json!({"kind": "PolicyRailSecurityAnalyzer"}));
    let (_, id) = start_waiting(&server, &body).await;
    // The spec's minimal body: `accept` only; the reason is the spec's default.
    let path = format!("/api/conversations/{id}/events/respond_to_confirmation");
    let done = server.post_json(&path, &json!({"accept": false})).await;
    assert_eq!(done, json!({"success": true}));
    wait_status(&server, &id, "idle").await;
    let seen = events(&server, &id).await;
    let analysis = kinds(&seen, "SecurityAnalysisEvent")[0];
    assert_matches_schema(&spec, "SecurityAnalysisEvent", analysis);
    assert_eq!(analysis["analyzer"], "PolicyRailSecurityAnalyzer");
    let reject = kinds(&seen, "UserRejectObservation")[0];
    assert_matches_schema(&spec, "UserRejectObservation", reject);
    assert_eq!(reject["rejection_reason"], default_reason);
    // The policy and analyser as ConversationInfo shows them parse as the spec's kinds.
    let info = server.get_json(&format!("/api/conversations/{id}")).await;
    assert_eq!(
        info["confirmation_policy"],
        json!({"kind": "ConfirmRisky", "threshold": "HIGH", "confirm_unknown": true})
    );
    assert_matches_schema(&spec, "ConfirmRisky-Output", &info["confirmation_policy"]);
    assert_matches_schema(
        &spec,
        "PolicyRailSecurityAnalyzer-Output",
        &info["security_analyzer"],
    );
}
