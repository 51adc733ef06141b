//! What keeps a long task affordable, driven through the `sandcrab run` binary against fake
//! providers on loopback: Anthropic prompt-cache breakpoints (exactly two, TTL option, off
//! switch), OpenAI `prompt_cache_key`, cache tokens in result.json and report.md, the price
//! table, the USD budget (wrap-up at 80%, `MaxBudgetReached` at 100%, exit 3, partial patch
//! written), Anthropic thinking blocks kept across a tool loop, and the Responses API shapes.

mod common;

use std::sync::Arc;

use common::{git_repo, kinds, result_json, run, sandcrab, trajectory, FakeLlm, Reply, Run};
use serde_json::{json, Value};

/// `sandcrab run` on a fresh repository against `llm` with `model` and `extra` flags; returns
/// the run, the repository and the output folder.
fn run_against(
    llm: &FakeLlm,
    model: &str,
    extra: &[&str],
) -> (Run, tempfile::TempDir, tempfile::TempDir) {
    let repo = git_repo(&[("notes.txt", "start\n")]);
    let out = tempfile::tempdir().unwrap();
    let base = if model.starts_with("anthropic/") {
        llm.base_url()
    } else {
        llm.openai_url()
    };
    let mut cmd = sandcrab();
    cmd.args(["run", "--workspace", "local", "--prompt", "append lines"])
        .arg("--repo-dir")
        .arg(repo.path())
        .arg("--out")
        .arg(out.path())
        .args([
            "--model",
            model,
            "--llm-base-url",
            &base,
            "--llm-api-key",
            "k",
        ])
        .args(["--llm-num-retries", "0", "--max-iterations", "20"])
        .args(extra);
    let result = run(&mut cmd);
    (result, repo, out)
}

/// The command of step `n`: appends a line to notes.txt (so the run leaves a patch).
fn append(n: usize) -> String {
    format!("echo line-{n} >> notes.txt")
}

/// How many tool results an Anthropic request carries: the step to play.
fn anthropic_results(body: &Value) -> usize {
    body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|m| m["content"].as_array().into_iter().flatten())
        .filter(|b| b["type"] == "tool_result")
        .count()
}

/// Every `cache_control` object anywhere in `value`.
fn breakpoints(value: &Value) -> Vec<Value> {
    match value {
        Value::Object(map) => map
            .iter()
            .flat_map(|(k, v)| match k.as_str() {
                "cache_control" => vec![v.clone()],
                _ => breakpoints(v),
            })
            .collect(),
        Value::Array(items) => items.iter().flat_map(breakpoints).collect(),
        _ => Vec::new(),
    }
}

/// An Anthropic model that runs `steps` terminal calls then `finish`, reporting cache usage.
fn anthropic_steps(steps: usize) -> FakeLlm {
    FakeLlm::start(Arc::new(move |_, body: &Value| {
        let n = anthropic_results(body);
        let (name, input) = if n < steps {
            ("terminal", json!({"command": append(n)}))
        } else {
            ("finish", json!({"message": "done"}))
        };
        Reply::ok(json!({
            "id": format!("msg_{n}"), "type": "message", "role": "assistant",
            "content": [{"type": "tool_use", "id": format!("toolu_{n}"), "name": name, "input": input}],
            "stop_reason": "tool_use",
            "usage": {"input_tokens": 100, "cache_creation_input_tokens": 200,
                      "cache_read_input_tokens": 700, "output_tokens": 10}
        }))
    }))
}

#[test]
fn anthropic_requests_carry_exactly_the_two_openhands_breakpoints() {
    let llm = anthropic_steps(2);
    let (r, _repo, out) = run_against(&llm, "anthropic/claude-sonnet-4-5", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let requests = llm.recorded();
    assert_eq!(requests.len(), 3);
    for request in &requests {
        let body = &request.body;
        assert_eq!(
            breakpoints(body),
            vec![json!({"type": "ephemeral"}); 2],
            "{body}"
        );
        assert_eq!(body["system"][0]["cache_control"]["type"], "ephemeral");
        let last = body["messages"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["role"], "user");
        let last_block = last["content"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last_block["cache_control"]["type"], "ephemeral", "{last}");
    }
    // The cached prefix (tools + system) is the same on every call: nothing volatile in it.
    let prefix = |b: &Value| (b["tools"].clone(), b["system"][0]["text"].clone());
    assert!(requests
        .iter()
        .all(|r| prefix(&r.body) == prefix(&requests[0].body)));

    // 3 calls × (100 uncached + 200 write + 700 read) input, 10 output.
    let result = result_json(out.path());
    assert_eq!(result["tokens"]["prompt"], 3000);
    assert_eq!(result["tokens"]["cache_read"], 2100);
    assert_eq!(result["tokens"]["cache_write"], 600);
    assert_eq!(result["tokens"]["cache_hit_ratio"], 0.7);
    // Sonnet list prices: 300 × $3 + 600 × $3.75 + 2100 × $0.30 + 30 × $15 per Mtok.
    let cost = result["cost"].as_f64().unwrap();
    assert!((cost - 0.00423).abs() < 1e-9, "{cost}");
    let report = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(report.contains("(70% cache hits)"), "{report}");
}

#[test]
fn the_one_hour_ttl_and_the_off_switch_change_the_markers() {
    let llm = anthropic_steps(1);
    let (r, _repo, _out) = run_against(
        &llm,
        "anthropic/claude-sonnet-4-5",
        &["--prompt-cache-ttl", "1h"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let one_hour = json!({"type": "ephemeral", "ttl": "1h"});
    assert_eq!(breakpoints(&llm.recorded()[1].body), vec![one_hour; 2]);

    let llm = anthropic_steps(1);
    let (r, _repo, _out) = run_against(&llm, "anthropic/claude-sonnet-4-5", &["--no-prompt-cache"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(llm
        .recorded()
        .iter()
        .all(|r| breakpoints(&r.body).is_empty()));
}

/// An OpenAI chat model: `steps` terminal calls then `finish`; each call reports
/// `prompt_tokens` input of which `cached` were cache hits.
fn openai_steps(steps: usize, prompt_tokens: u64, cached: u64) -> FakeLlm {
    FakeLlm::start(Arc::new(move |_, body: &Value| {
        let n = common::tool_results(body);
        let (name, args) = if n < steps {
            ("terminal", json!({"command": append(n)}))
        } else {
            ("finish", json!({"message": "done"}))
        };
        let mut answer = common::openai_call(n, name, &args.to_string());
        answer["usage"] = json!({"prompt_tokens": prompt_tokens, "completion_tokens": 10,
            "prompt_tokens_details": {"cached_tokens": cached}});
        Reply::ok(answer)
    }))
}

#[test]
fn openai_requests_carry_the_conversation_id_as_prompt_cache_key() {
    let llm = openai_steps(2, 2000, 1536);
    let effort = ["--reasoning-effort", "high"];
    let (r, _repo, out) = run_against(&llm, "openai/gpt-4o", &effort);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let result = result_json(out.path());
    let id = result["conversation_id"].as_str().unwrap();
    for request in llm.recorded() {
        assert_eq!(request.path, "/v1/chat/completions");
        assert_eq!(request.body["reasoning_effort"], "high");
        assert_eq!(request.body["prompt_cache_key"], id);
        // gpt-4o does not take a retention (OpenHands' list: gpt-5*, gpt-4.1).
        assert!(request.body.get("prompt_cache_retention").is_none());
    }
    assert_eq!(result["tokens"]["cache_read"], 3 * 1536);
    assert_eq!(result["tokens"]["cache_hit_ratio"], 0.768);
}

#[test]
fn the_budget_warns_at_80_percent_then_stops_with_max_budget_reached() {
    // gpt-4o list prices: 120k input tokens = $0.30 a call (+ 10 output tokens = $0.0001).
    let llm = openai_steps(50, 120_000, 0);
    let (r, repo, out) = run_against(&llm, "openai/gpt-4o", &["--max-budget-usd", "1"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let requests = llm.recorded();
    assert_eq!(requests.len(), 4, "stops after the call that reaches $1");

    // The wrap-up message goes in once, after the call that crossed $0.80 ($0.9003).
    let wrap_ups = |body: &Value| {
        body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| {
                m["role"] == "user" && m["content"].as_str().unwrap().starts_with("[budget]")
            })
            .count()
    };
    let seen: Vec<usize> = requests.iter().map(|r| wrap_ups(&r.body)).collect();
    assert_eq!(seen, vec![0, 0, 0, 1]);

    let events = trajectory(out.path());
    let errors = kinds(&events, "ConversationErrorEvent");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["code"], "MaxBudgetReached");
    assert_eq!(
        errors[0]["detail"],
        "Agent reached maximum budget limit ($1.0000); accumulated cost $1.2004."
    );
    let result = result_json(out.path());
    assert_eq!(result["status"], "max_budget");
    assert!(result["error"]
        .as_str()
        .unwrap()
        .contains("--max-budget-usd"));
    // The partial work is published: four appended lines in changes.patch and report.md.
    let patch = std::fs::read_to_string(out.path().join("changes.patch")).unwrap();
    assert!(patch.contains("+line-3"), "{patch}");
    let report = std::fs::read_to_string(out.path().join("report.md")).unwrap();
    assert!(
        report.contains("budget spent") && report.contains("notes.txt"),
        "{report}"
    );
    assert!(repo.path().join("notes.txt").exists());
}

#[test]
fn a_bad_budget_is_one_line_of_bad_input() {
    let llm = openai_steps(0, 10, 0);
    let (r, _repo, _out) = run_against(&llm, "openai/gpt-4o", &["--max-budget-usd", "0"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--max-budget-usd is 0"), "{}", r.stderr);
    assert!(llm.recorded().is_empty());
}

#[test]
fn thinking_blocks_round_trip_through_a_tool_loop() {
    let thinking = json!({"type": "thinking", "thinking": "Append first.", "signature": "sig-1"});
    let redacted = json!({"type": "redacted_thinking", "data": "opaque-1"});
    let (t, rd) = (thinking.clone(), redacted.clone());
    let llm = FakeLlm::start(Arc::new(move |_, body: &Value| {
        let n = anthropic_results(body);
        let content = if n == 0 {
            json!([t, rd, {"type": "text", "text": "Appending."},
                   {"type": "tool_use", "id": "toolu_0", "name": "terminal",
                    "input": {"command": append(0)}}])
        } else {
            json!([{"type": "tool_use", "id": "toolu_1", "name": "finish",
                    "input": {"message": "done"}}])
        };
        Reply::ok(
            json!({"id": format!("msg_{n}"), "type": "message", "role": "assistant",
            "content": content, "stop_reason": "tool_use",
            "usage": {"input_tokens": 10, "output_tokens": 5}}),
        )
    }));
    let (r, _repo, _out) = run_against(
        &llm,
        "anthropic/claude-sonnet-4-5",
        &["--thinking-budget-tokens", "2048"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let requests = llm.recorded();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        let beta = request.headers.iter().find(|(k, _)| k == "anthropic-beta");
        assert_eq!(
            beta.map(|(_, v)| v.as_str()),
            Some("interleaved-thinking-2025-05-14")
        );
        assert_eq!(
            request.body["thinking"],
            json!({"type": "enabled", "budget_tokens": 2048})
        );
        assert!(request.body["max_tokens"].as_u64().unwrap() > 2048);
    }
    let assistant = requests[1].body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "assistant")
        .cloned()
        .unwrap();
    let blocks = assistant["content"].as_array().unwrap();
    assert_eq!(
        blocks[0], thinking,
        "thinking first, verbatim with its signature"
    );
    assert_eq!(blocks[1], redacted);
    assert_eq!(blocks[3]["type"], "tool_use");
}

#[test]
fn gpt5_speaks_the_responses_api_and_passes_reasoning_back() {
    let reasoning = json!({"type": "reasoning", "id": "rs_0",
        "summary": [{"type": "summary_text", "text": "Append a line."}],
        "encrypted_content": "gAAAA-opaque"});
    let item = reasoning.clone();
    let llm = FakeLlm::start(Arc::new(move |n, _body: &Value| {
        let call = if n == 0 {
            json!({"type": "function_call", "id": "fc_0", "call_id": "call_0",
                   "name": "terminal", "arguments": json!({"command": append(0)}).to_string(),
                   "status": "completed"})
        } else {
            json!({"type": "function_call", "id": "fc_1", "call_id": "call_1",
                   "name": "finish", "arguments": "{\"message\":\"done\"}", "status": "completed"})
        };
        let output = if n == 0 {
            json!([item, call])
        } else {
            json!([call])
        };
        Reply::ok(json!({"id": format!("resp_{n}"), "object": "response",
            "status": "completed", "output": output,
            "usage": {"input_tokens": 1000, "input_tokens_details": {"cached_tokens": 512},
                      "output_tokens": 50, "output_tokens_details": {"reasoning_tokens": 40}}}))
    }));
    let (r, _repo, out) = run_against(&llm, "openai/gpt-5", &["--reasoning-effort", "low"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let requests = llm.recorded();
    assert_eq!(requests.len(), 2);
    let id = result_json(out.path())["conversation_id"].clone();
    for request in &requests {
        let body = &request.body;
        assert_eq!(request.path, "/v1/responses");
        assert_eq!(body["store"], false);
        assert_eq!(body["include"], json!(["reasoning.encrypted_content"]));
        assert_eq!(body["reasoning"], json!({"effort": "low"}));
        assert_eq!(body["prompt_cache_key"], id);
        assert_eq!(body["prompt_cache_retention"], "24h");
        assert!(body["instructions"].as_str().unwrap().contains("sandcrab"));
        assert_eq!(body["tools"][0]["type"], "function");
        assert!(body["tools"][0]["name"].is_string(), "flat function tools");
    }
    let input = requests[1].body["input"].as_array().unwrap();
    let types: Vec<&str> = input.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "message",
            "reasoning",
            "function_call",
            "function_call_output"
        ]
    );
    assert_eq!(input[1], reasoning, "the reasoning item goes back verbatim");
    assert_eq!(input[2]["call_id"], "call_0");
    assert_eq!(input[3]["call_id"], "call_0");
    assert!(input[3]["output"].as_str().is_some());
    let result = result_json(out.path());
    assert_eq!(result["tokens"]["cache_read"], 1024);
    // gpt-5 list prices: 488 × 1.25 + 512 × 0.125 input, 50 × 10 output per Mtok, twice.
    let cost = result["cost"].as_f64().unwrap();
    assert!(
        (cost - 2.0 * (610.0 + 64.0 + 500.0) / 1e6).abs() < 1e-12,
        "{cost}"
    );
}

#[test]
fn an_agent_server_enforces_the_budget_and_caching_of_a_remote_run() {
    let llm = openai_steps(50, 120_000, 0);
    let repo = git_repo(&[("notes.txt", "start\n")]);
    let server = common::server::Server::start_in(repo.path());
    let out = tempfile::tempdir().unwrap();
    let mut cmd = sandcrab();
    cmd.args(["run", "--workspace", "remote", "--server-url", &server.base])
        .args(["--session-api-key", common::server::KEY])
        .args([
            "--model",
            "openai/gpt-4o",
            "--llm-base-url",
            &llm.openai_url(),
        ])
        .args(["--llm-api-key", "k", "--llm-num-retries", "0"])
        .args(["--prompt", "append lines", "--max-budget-usd", "1"])
        .arg("--sandbox-workdir")
        .arg(&server.working_dir)
        .arg("--out")
        .arg(out.path());
    let r = run(&mut cmd);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let requests = llm.recorded();
    assert_eq!(
        requests.len(),
        4,
        "the server stops after the call that reaches $1"
    );
    let result = result_json(out.path());
    assert_eq!(result["status"], "max_budget");
    let id = result["conversation_id"].as_str().unwrap();
    assert!(requests.iter().all(|r| r.body["prompt_cache_key"] == id));
    let patch = std::fs::read_to_string(out.path().join("changes.patch")).unwrap();
    assert!(patch.contains("+line-3"), "{patch}");
}
