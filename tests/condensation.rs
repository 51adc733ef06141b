//! Context condensation end to end: `sandcrab run` against a fake provider with a small context
//! window that refuses oversized prompts with the providers' own error bodies (Anthropic,
//! OpenAI, a LiteLLM proxy), as real providers do. The run must condense and finish every step.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{git_repo, kinds, result_json, run, sandcrab, trajectory, FakeLlm, Recorded, Reply};
use serde_json::{json, Value};

#[derive(Clone, Copy, PartialEq)]
enum Protocol {
    Anthropic,
    OpenAi,
}

/// Tokens of a request as the fake counts them: compact JSON length / 4.
fn tokens(body: &Value) -> usize {
    body.to_string().len() / 4
}

fn anthropic_overflow(total: usize, limit: usize) -> Value {
    json!({"type": "error", "error": {"type": "invalid_request_error",
        "message": format!("prompt is too long: {total} tokens > {limit} maximum")}})
}

fn openai_overflow(total: usize, limit: usize) -> Value {
    json!({"error": {"message": format!("This model's maximum context length is {limit} tokens. However, your messages resulted in {total} tokens. Please reduce the length of the messages."),
        "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}})
}

fn litellm_overflow() -> Value {
    json!({"error": {"message": "litellm.ContextWindowExceededError: litellm.BadRequestError: ContextWindowExceededError: input is too long for requested model",
        "type": null, "param": null, "code": "400"}})
}

/// One response with `calls` (name, JSON arguments) or, when empty, `text`.
fn reply(
    protocol: Protocol,
    step: usize,
    calls: &[(&str, Value)],
    text: &str,
    prompt: usize,
) -> Value {
    match protocol {
        Protocol::OpenAi => {
            let tool_calls: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(i, (name, args))| {
                    json!({"id": format!("call_{step}_{i}"), "type": "function",
                    "function": {"name": name, "arguments": args.to_string()}})
                })
                .collect();
            let message = if calls.is_empty() {
                json!({"role": "assistant", "content": text})
            } else {
                json!({"role": "assistant", "content": null, "tool_calls": tool_calls})
            };
            json!({"id": format!("chatcmpl-{step}"), "object": "chat.completion",
                "choices": [{"index": 0, "message": message,
                    "finish_reason": if calls.is_empty() { "stop" } else { "tool_calls" }}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": 20}})
        }
        Protocol::Anthropic => {
            let mut content: Vec<Value> = calls
                .iter()
                .enumerate()
                .map(|(i, (name, args))| {
                    json!({"type": "tool_use", "id": format!("toolu_{step}_{i}"),
                    "name": name, "input": args})
                })
                .collect();
            if calls.is_empty() {
                content.push(json!({"type": "text", "text": text}));
            }
            json!({"id": format!("msg_{step}"), "type": "message", "role": "assistant",
                "content": content, "stop_reason": if calls.is_empty() { "end_turn" } else { "tool_use" },
                "usage": {"input_tokens": prompt, "output_tokens": 20}})
        }
    }
}

/// A provider with a `limit`-token window playing `steps` steps: each prints ~`out` bytes
/// (every third step makes two parallel calls), then `finish`. A request without tools is a
/// summary call; `summary_limit` refuses bigger ones with a LiteLLM proxy's body.
struct Task {
    protocol: Protocol,
    steps: usize,
    out: usize,
    limit: usize,
    summary_limit: usize,
}

impl Task {
    fn start(self) -> (FakeLlm, Arc<AtomicUsize>) {
        let done = Arc::new(AtomicUsize::new(0));
        let counter = done.clone();
        let llm = FakeLlm::start(Arc::new(move |_, body: &Value| {
            let total = tokens(body);
            let has_tools = body["tools"].as_array().is_some_and(|t| !t.is_empty());
            if !has_tools {
                if total > self.summary_limit {
                    return Reply {
                        status: 400,
                        ..Reply::ok(litellm_overflow())
                    };
                }
                return Reply::ok(reply(
                    self.protocol,
                    0,
                    &[],
                    "USER_CONTEXT: run the steps. COMPLETED: earlier steps.",
                    total,
                ));
            }
            if total > self.limit {
                let body = match self.protocol {
                    Protocol::Anthropic => anthropic_overflow(total, self.limit),
                    Protocol::OpenAi => openai_overflow(total, self.limit),
                };
                return Reply {
                    status: 400,
                    ..Reply::ok(body)
                };
            }
            let step = counter.fetch_add(1, Ordering::SeqCst);
            if step >= self.steps {
                let finish = [("finish", json!({"message": "all steps done"}))];
                return Reply::ok(reply(self.protocol, step, &finish, "", total));
            }
            let command = |k: usize| json!({"command": format!("seq -f 'line %g of step {step}.{k} ..........' 1 {}", self.out / 30)});
            let calls: Vec<(&str, Value)> = if step % 3 == 2 {
                vec![("terminal", command(0)), ("terminal", command(1))]
            } else {
                vec![("terminal", command(0))]
            };
            Reply::ok(reply(self.protocol, step, &calls, "", total))
        }));
        (llm, done)
    }
}

fn run_cmd(protocol: Protocol, llm: &FakeLlm, repo: &Path, out: &Path) -> std::process::Command {
    let (model, url) = match protocol {
        Protocol::Anthropic => ("anthropic/claude-sonnet-4-5", llm.base_url()),
        Protocol::OpenAi => ("openai/gpt-4o", llm.openai_url()),
    };
    let mut cmd = sandcrab();
    cmd.args([
        "run",
        "--workspace",
        "local",
        "--model",
        model,
        "--llm-base-url",
        &url,
    ])
    .args([
        "--llm-api-key",
        "x",
        "--prompt",
        "run each command you are given",
    ])
    .args(["--llm-num-retries", "0", "--no-stuck-detection"])
    .env("SANDCRAB_MAX_ITERATIONS", "200")
    .arg("--repo-dir")
    .arg(repo)
    .arg("--out")
    .arg(out);
    cmd
}

/// Tool calls and results paired in every request the agent sent: each result answers a call
/// of an earlier assistant message of the same request, and every call is answered.
fn assert_calls_paired(requests: &[Recorded]) {
    for (n, r) in requests.iter().enumerate() {
        let mut open: Vec<String> = Vec::new();
        for m in r.body["messages"].as_array().into_iter().flatten() {
            let blocks: Vec<&Value> = match &m["content"] {
                Value::Array(blocks) => blocks.iter().collect(),
                _ => Vec::new(),
            };
            for call in m["tool_calls"].as_array().into_iter().flatten() {
                open.push(call["id"].as_str().unwrap().to_string());
            }
            for b in blocks.iter().filter(|b| b["type"] == "tool_use") {
                open.push(b["id"].as_str().unwrap().to_string());
            }
            let answered: Vec<&str> = if m["role"] == "tool" {
                vec![m["tool_call_id"].as_str().unwrap()]
            } else {
                blocks
                    .iter()
                    .filter(|b| b["type"] == "tool_result")
                    .map(|b| b["tool_use_id"].as_str().unwrap())
                    .collect()
            };
            for id in answered {
                let at = open.iter().position(|o| o == id);
                assert!(
                    at.is_some(),
                    "request {n}: result {id} without its call: {}",
                    r.body["messages"]
                );
                open.remove(at.unwrap());
            }
        }
        assert!(
            open.is_empty(),
            "request {n}: calls without results: {open:?}"
        );
    }
}

/// Every condensation forgets a tool call together with its result, and all calls of one
/// response together.
fn assert_units_kept_whole(events: &[Value]) {
    for c in condensations(events) {
        let forgotten: Vec<&str> = c["forgotten_event_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let gone = |e: &Value| forgotten.contains(&e["id"].as_str().unwrap());
        let actions = kinds(events, "ActionEvent");
        for obs in kinds(events, "ObservationEvent") {
            let action = actions
                .iter()
                .find(|a| a["tool_call_id"] == obs["tool_call_id"])
                .unwrap();
            assert_eq!(gone(action), gone(obs), "call and result split by {c}");
            for sibling in actions
                .iter()
                .filter(|a| a["llm_response_id"] == action["llm_response_id"])
            {
                assert_eq!(gone(action), gone(sibling), "one response split by {c}");
            }
        }
    }
}

fn condensations(events: &[Value]) -> Vec<&Value> {
    kinds(events, "Condensation")
}

fn window_error_leads_to_condensation(protocol: Protocol) {
    let (llm, done) = Task {
        protocol,
        steps: 40,
        out: 3000,
        limit: 12_000,
        summary_limit: 100_000,
    }
    .start();
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let r = run(&mut run_cmd(protocol, &llm, repo.path(), out.path()));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let result = result_json(out.path());
    assert_eq!(result["status"], "finished", "{result}");
    assert_eq!(done.load(Ordering::SeqCst), 41, "every step and the finish");
    let t = &result["tokens"];
    assert_eq!(
        t["prompt"].as_u64().unwrap() + t["completion"].as_u64().unwrap(),
        t["total"].as_u64().unwrap(),
        "summary calls are in the breakdown too: {t}"
    );
    let requests = llm.recorded();
    let refused = requests
        .iter()
        .filter(|r| r.body["tools"].is_array() && tokens(&r.body) > 12_000)
        .count();
    assert!(refused >= 1, "the window was hit at least once");
    let events = trajectory(out.path());
    assert!(
        !kinds(&events, "CondensationRequest").is_empty(),
        "the error asked for a condensation"
    );
    let cond = condensations(&events);
    assert!(!cond.is_empty());
    for c in &cond {
        assert_eq!(c["source"], "environment");
        assert_eq!(c["summary_offset"], 4, "{c}");
        assert!(
            c["summary"].as_str().unwrap().starts_with("USER_CONTEXT"),
            "{c}"
        );
        assert!(c["llm_response_id"].as_str().is_some_and(|s| !s.is_empty()));
        assert!(!c["forgotten_event_ids"].as_array().unwrap().is_empty());
    }
    // After the first error, the learnt window keeps later prompts under it: at most one
    // refusal per condensation that followed an error.
    assert!(
        refused <= kinds(&events, "CondensationRequest").len(),
        "{refused} refusals"
    );
    assert_units_kept_whole(&events);
    let agent_requests: Vec<Recorded> = requests
        .into_iter()
        .filter(|r| r.body["tools"].is_array())
        .collect();
    assert_calls_paired(&agent_requests);
    // The summary is a user message after the kept head.
    let last = &agent_requests.last().unwrap().body["messages"];
    assert!(
        last.to_string().contains("USER_CONTEXT: run the steps"),
        "{last}"
    );
    // Summary calls count in the run's tokens.
    let stats = kinds(&events, "ConversationStateUpdateEvent")
        .into_iter()
        .rfind(|e| e["key"] == "stats")
        .unwrap();
    let condenser = &stats["value"]["usage_to_metrics"]["condenser"];
    assert!(
        condenser["accumulated_token_usage"]["prompt_tokens"]
            .as_u64()
            .unwrap()
            > 0,
        "{stats}"
    );
}

#[test]
fn an_anthropic_window_error_condenses_and_the_run_finishes() {
    window_error_leads_to_condensation(Protocol::Anthropic);
}

#[test]
fn an_openai_window_error_condenses_and_the_run_finishes() {
    window_error_leads_to_condensation(Protocol::OpenAi);
}

#[test]
fn without_the_condenser_the_window_error_ends_the_run() {
    let (llm, _) = Task {
        protocol: Protocol::OpenAi,
        steps: 40,
        out: 3000,
        limit: 12_000,
        summary_limit: 100_000,
    }
    .start();
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let r = run(run_cmd(Protocol::OpenAi, &llm, repo.path(), out.path()).arg("--no-condenser"));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(result_json(out.path())["status"], "error");
    assert!(condensations(&trajectory(out.path())).is_empty());
}

#[test]
fn the_preflight_estimate_condenses_before_the_provider_refuses() {
    let (llm, done) = Task {
        protocol: Protocol::Anthropic,
        steps: 40,
        out: 3000,
        limit: 12_000,
        summary_limit: 100_000,
    }
    .start();
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let r = run(run_cmd(Protocol::Anthropic, &llm, repo.path(), out.path())
        .args(["--context-window", "12000"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(done.load(Ordering::SeqCst), 41);
    let refused = llm
        .recorded()
        .iter()
        .filter(|r| tokens(&r.body) > 12_000)
        .count();
    assert_eq!(refused, 0, "no prompt over the window was ever sent");
    let events = trajectory(out.path());
    assert!(
        condensations(&events).len() >= 2,
        "condensed more than once"
    );
    assert!(
        kinds(&events, "CondensationRequest").is_empty(),
        "no error asked for it"
    );
}

#[test]
fn an_overflowing_summary_call_falls_back_to_shorter_events() {
    // Summary calls over 2500 tokens are refused; the forgotten events are ~20 x 750 tokens.
    let (llm, done) = Task {
        protocol: Protocol::OpenAi,
        steps: 40,
        out: 3000,
        limit: 12_000,
        summary_limit: 2_500,
    }
    .start();
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let r = run(run_cmd(Protocol::OpenAi, &llm, repo.path(), out.path())
        .args(["--context-window", "12000"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(done.load(Ordering::SeqCst), 41);
    let summaries: Vec<Recorded> = llm
        .recorded()
        .into_iter()
        .filter(|r| r.body.get("tools").is_none())
        .collect();
    assert!(
        summaries.iter().any(|r| tokens(&r.body) > 2_500),
        "a summary call overflowed"
    );
    assert!(
        summaries.iter().any(|r| tokens(&r.body) <= 2_500),
        "a shorter one was accepted"
    );
    let events = trajectory(out.path());
    assert!(!condensations(&events).is_empty());
}

#[test]
fn a_resumed_conversation_sees_the_condensed_history() {
    let (llm, _) = Task {
        protocol: Protocol::OpenAi,
        steps: 30,
        out: 3000,
        limit: 12_000,
        summary_limit: 100_000,
    }
    .start();
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let id = "0b6c1a8e-4d7f-4f6e-9a51-2f1f0e3c7d11";
    let first = run(
        run_cmd(Protocol::OpenAi, &llm, repo.path(), out.path()).args([
            "--context-window",
            "12000",
            "--conversation-id",
            id,
            "--max-iterations",
            "20",
        ]),
    );
    assert_ne!(
        first.code, 0,
        "stopped at the iteration limit: {}",
        first.stderr
    );
    assert!(
        !condensations(&trajectory(out.path())).is_empty(),
        "condensed before stopping"
    );
    let before = llm.recorded().len();
    let second = run(
        run_cmd(Protocol::OpenAi, &llm, repo.path(), out.path()).args([
            "--context-window",
            "12000",
            "--conversation-id",
            id,
        ]),
    );
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(result_json(out.path())["status"], "finished");
    let resumed = &llm.recorded()[before].body;
    let messages = resumed["messages"].as_array().unwrap();
    assert!(
        resumed.to_string().contains("USER_CONTEXT: run the steps"),
        "the summary is back"
    );
    assert!(
        !resumed.to_string().contains("of step 1.0 "),
        "forgotten output stays forgotten"
    );
    assert!(messages.len() < 40, "{} messages", messages.len());
}

#[test]
fn condensing_again_with_no_new_action_ends_the_run_as_stuck() {
    // The summary itself is bigger than the window: condensing cannot make the prompt fit,
    // so after one condensation with no action since, the run stops instead of looping.
    let llm = FakeLlm::start(Arc::new(|_, body: &Value| {
        let total = tokens(body);
        if body.get("tools").is_none() {
            let huge = format!("USER_CONTEXT: {}", "detail ".repeat(8_000));
            return Reply::ok(reply(Protocol::OpenAi, 0, &[], &huge, total));
        }
        if total > 6_000 {
            return Reply {
                status: 400,
                ..Reply::ok(openai_overflow(total, 6_000))
            };
        }
        let step = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "tool")
            .count();
        let command =
            json!({"command": format!("seq -f 'line %g of step {step} ..........' 1 300")});
        Reply::ok(reply(
            Protocol::OpenAi,
            step,
            &[("terminal", command)],
            "",
            total,
        ))
    }));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let r = run(&mut run_cmd(
        Protocol::OpenAi,
        &llm,
        repo.path(),
        out.path(),
    ));
    assert_ne!(r.code, 0, "{}", r.stderr);
    let result = result_json(out.path());
    assert_eq!(result["status"], "stuck", "{result}");
    assert!(
        result["error"].as_str().unwrap().contains("context window"),
        "{result}"
    );
    let summary_calls = llm
        .recorded()
        .iter()
        .filter(|r| r.body.get("tools").is_none())
        .count();
    assert!(
        summary_calls <= 3,
        "no condensation loop: {summary_calls} summary calls"
    );
}
