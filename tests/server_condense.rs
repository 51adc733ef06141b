//! The agent-server's condensation surface, as OpenHands clients use it: the condenser in the
//! agent JSON of `StartConversationRequest`, and `POST /api/conversations/{id}/condense` (409
//! when the agent has no condenser; otherwise a `CondensationRequest` and a `Condensation`).

mod common;

use std::time::{Duration, Instant};

use common::server::{Server, KEY};
use common::{FakeLlm, Reply};
use serde_json::{json, Value};

fn client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("X-Session-API-Key", KEY.parse().unwrap());
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// Three `terminal` steps then `finish`; a request without tools gets a summary.
fn model() -> FakeLlm {
    FakeLlm::start(std::sync::Arc::new(|_, body: &Value| {
        let usage = json!({"prompt_tokens": 100, "completion_tokens": 5});
        if body.get("tools").is_none() {
            return Reply::ok(
                json!({"id": "sum-1", "choices": [{"index": 0, "finish_reason": "stop",
                "message": {"role": "assistant", "content": "USER_CONTEXT: three steps ran"}}], "usage": usage}),
            );
        }
        let done = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "tool")
            .count();
        let (name, args) = if done < 3 {
            ("terminal", json!({"command": format!("echo step-{done}")}))
        } else {
            ("finish", json!({"message": "done"}))
        };
        Reply::ok(
            json!({"id": format!("r{done}"), "choices": [{"index": 0, "finish_reason": "tool_calls",
            "message": {"role": "assistant", "content": null, "tool_calls": [{"id": format!("c{done}"),
            "type": "function", "function": {"name": name, "arguments": args.to_string()}}]}}], "usage": usage}),
        )
    }))
}

fn create_body(llm: &FakeLlm, dir: &std::path::Path, condenser: Option<Value>) -> Value {
    let llm_json = json!({"model": "openai/scripted", "base_url": llm.openai_url(), "api_key": "sk-cond-secret-1", "usage_id": "agent"});
    let mut agent = json!({"kind": "Agent", "llm": llm_json, "tools": [{"name": "TerminalTool"}]});
    if let Some(c) = condenser {
        agent["condenser"] = c;
    }
    json!({"agent": agent, "workspace": {"kind": "LocalWorkspace", "working_dir": dir},
        "initial_message": {"role": "user", "content": [{"type": "text", "text": "run the steps"}], "run": true}})
}

async fn start_and_finish(c: &reqwest::Client, server: &Server, body: &Value) -> (String, Value) {
    let res = c
        .post(format!("{}/api/conversations", server.base))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let info: Value = res.json().await.unwrap();
    let id = info["id"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now: Value = c
            .get(format!("{}/api/conversations/{id}", server.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if now["execution_status"] == "finished" {
            break;
        }
        assert!(Instant::now() < deadline, "{now}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (id, info)
}

async fn events(c: &reqwest::Client, server: &Server, id: &str) -> Vec<Value> {
    let url = format!(
        "{}/api/conversations/{id}/events/search?limit=100",
        server.base
    );
    let body: Value = c.get(url).send().await.unwrap().json().await.unwrap();
    body["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn condense_route_condenses_with_the_condenser_from_the_start_request() {
    let llm = model();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start_in(work.path());
    let c = client();
    let condenser = json!({"kind": "LLMSummarizingCondenser", "max_size": 80, "keep_first": 4,
        "llm": {"model": "openai/scripted", "base_url": llm.openai_url(), "api_key": "sk-cond-secret-1", "usage_id": "condenser"}});
    let (id, info) = start_and_finish(
        &c,
        &server,
        &create_body(&llm, work.path(), Some(condenser)),
    )
    .await;
    assert_eq!(
        info["agent"]["condenser"]["kind"],
        "LLMSummarizingCondenser"
    );
    assert!(
        !info.to_string().contains("sk-cond-secret-1"),
        "keys are masked: {info}"
    );
    let res = c
        .post(format!("{}/api/conversations/{id}/condense", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"success": true}));
    let all = events(&c, &server, &id).await;
    let kinds: Vec<&str> = all.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    let request = kinds
        .iter()
        .position(|k| *k == "CondensationRequest")
        .expect("a request");
    let condensation = kinds
        .iter()
        .position(|k| *k == "Condensation")
        .expect("a condensation");
    assert!(request < condensation, "{kinds:?}");
    let cond = &all[condensation];
    assert_eq!(cond["summary"], "USER_CONTEXT: three steps ran");
    assert_eq!(cond["summary_offset"], 4);
    assert_eq!(cond["llm_response_id"], "sum-1");
    assert_eq!(cond["source"], "environment");
    // system, task, step 0 kept; steps 1, 2 and the finish forgotten (whole pairs).
    assert_eq!(
        cond["forgotten_event_ids"].as_array().unwrap().len(),
        6,
        "{cond}"
    );
    let summary_call = llm
        .recorded()
        .into_iter()
        .find(|r| r.body.get("tools").is_none())
        .unwrap();
    assert!(
        summary_call.body.to_string().contains("echo step-2"),
        "the forgotten events are summarized"
    );
    let stats: Value = c
        .get(format!("{}/api/conversations/{id}", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let condenser_usage =
        &stats["stats"]["usage_to_metrics"]["condenser"]["accumulated_token_usage"];
    assert_eq!(condenser_usage["prompt_tokens"], 100, "{stats}");
}

#[tokio::test]
async fn condense_without_a_condenser_is_409() {
    let llm = model();
    let work = tempfile::tempdir().unwrap();
    let server = Server::start_in(work.path());
    let c = client();
    let (id, _) = start_and_finish(&c, &server, &create_body(&llm, work.path(), None)).await;
    let res = c
        .post(format!("{}/api/conversations/{id}/condense", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    let res = c
        .post(format!(
            "{}/api/conversations/00000000-0000-0000-0000-000000000000/condense",
            server.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}
