//! The agent-server's conversations over the wire: the real binary serving, a fake model on
//! loopback, and raw HTTP and WebSocket clients speaking OpenHands' protocol.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use common::server::{Server, KEY};

fn client() -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("X-Session-API-Key", KEY.parse().unwrap());
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// A create body as the OpenHands SDK sends it (trimmed to what matters).
fn create_body(llm: &FakeLlm, working_dir: &std::path::Path, run: bool) -> Value {
    json!({
        "agent": {"kind": "Agent", "llm": {"model": "openai/scripted", "base_url": llm.openai_url(), "api_key": "sk-abc-123456", "usage_id": "agent"},
                  "tools": [{"name": "TerminalTool"}, {"name": "FileEditorTool"}, {"name": "TaskTrackerTool"}]},
        "workspace": {"kind": "LocalWorkspace", "working_dir": working_dir},
        "max_iterations": 50,
        "initial_message": {"role": "user", "content": [{"type": "text", "text": "run the steps"}], "run": run}
    })
}

/// `POST /api/conversations`, expecting 201 Created; the new conversation's info.
async fn create(c: &reqwest::Client, server: &Server, body: &Value) -> Value {
    let res = c
        .post(format!("{}/api/conversations", server.base))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

async fn info(c: &reqwest::Client, url: &str, id: &str) -> Value {
    c.get(format!("{url}/api/conversations/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait_status(c: &reqwest::Client, url: &str, id: &str, want: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let i = info(c, url, id).await;
        if i["execution_status"] == want {
            return i;
        }
        assert!(
            Instant::now() < deadline,
            "status stayed {} (want {want})",
            i["execution_status"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn all_events(c: &reqwest::Client, url: &str, id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut page: Option<String> = None;
    loop {
        let mut req = c
            .get(format!("{url}/api/conversations/{id}/events/search"))
            .query(&[("limit", "7")]);
        if let Some(p) = &page {
            req = req.query(&[("page_id", p)]);
        }
        let body: Value = req.send().await.unwrap().json().await.unwrap();
        out.extend(body["items"].as_array().unwrap().iter().cloned());
        match body["next_page_id"].as_str() {
            Some(p) => page = Some(p.to_string()),
            None => return out,
        }
    }
}

#[tokio::test]
async fn create_run_finish_and_read_back() {
    let llm = FakeLlm::start(terminal_steps(3, Duration::ZERO));
    let (conv_dir, work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = Server::start_with(work.path(), conv_dir.path());
    let c = client();
    let created = create(&c, &server, &create_body(&llm, work.path(), true)).await;
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(
        created["agent"]["llm"]["api_key"], "**********",
        "the key is masked"
    );
    let done = wait_status(&c, &server.base, &id, "finished").await;
    assert!(
        done["stats"]["usage_to_metrics"]["agent"]["accumulated_token_usage"]["prompt_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    let events = all_events(&c, &server.base, &id).await;
    let actions: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "ActionEvent")
        .collect();
    assert_eq!(actions.len(), 4);
    assert_eq!(events[0]["kind"], "SystemPromptEvent");
    let final_response: Value = c
        .get(format!(
            "{}/api/conversations/{id}/agent_final_response",
            server.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        final_response,
        json!({"response": "finished after 3 steps"})
    );
    let search: Value = c
        .get(format!("{}/api/conversations/search", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(search["items"][0]["id"], id.as_str());
    // The same id again: the existing conversation, 200.
    let mut again = create_body(&llm, work.path(), false);
    again["conversation_id"] = json!(id);
    assert_eq!(
        c.post(format!("{}/api/conversations", server.base))
            .json(&again)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let count: usize = c
        .get(format!(
            "{}/api/conversations/{id}/events/count?kind=ObservationEvent",
            server.base
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(count, 4);
}

#[tokio::test]
async fn run_twice_is_409_pause_stops_and_delete_removes() {
    let llm = FakeLlm::start(terminal_steps(100, Duration::from_millis(50)));
    let (conv_dir, work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = Server::start_with(work.path(), conv_dir.path());
    let c = client();
    let created = create(&c, &server, &create_body(&llm, work.path(), false)).await;
    let id = created["id"].as_str().unwrap();
    let run_url = format!("{}/api/conversations/{id}/run", server.base);
    assert_eq!(c.post(&run_url).send().await.unwrap().status(), 200);
    assert_eq!(c.post(&run_url).send().await.unwrap().status(), 409);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        c.post(format!("{}/api/conversations/{id}/pause", server.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    wait_status(&c, &server.base, id, "paused").await;
    assert_eq!(
        c.delete(format!("{}/api/conversations/{id}", server.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(format!("{}/api/conversations/{id}", server.base))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert!(!conv_dir.path().join(id).exists());
}

#[tokio::test]
async fn a_server_killed_mid_run_loses_nothing_and_the_run_continues() {
    let llm = FakeLlm::start(terminal_steps(6, Duration::from_millis(100)));
    let (conv_dir, work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut server = Server::start_with(work.path(), conv_dir.path());
    let c = client();
    let created = create(&c, &server, &create_body(&llm, work.path(), true)).await;
    let id = created["id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(450)).await;
    let before = all_events(&c, &server.base, &id).await;
    server.kill();
    let server = Server::start_with(work.path(), conv_dir.path());
    let after_restart = all_events(&c, &server.base, &id).await;
    let ids = |evs: &[Value]| {
        evs.iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert!(
        ids(&after_restart).starts_with(&ids(&before)),
        "every event seen before the kill is still there"
    );
    assert_eq!(
        info(&c, &server.base, &id).await["execution_status"],
        "idle"
    );
    assert_eq!(
        c.post(format!("{}/api/conversations/{id}/run", server.base))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    wait_status(&c, &server.base, &id, "finished").await;
    let events = all_events(&c, &server.base, &id).await;
    let commands: Vec<&str> = events
        .iter()
        .filter_map(|e| e["action"]["command"].as_str())
        .collect();
    let expected: Vec<String> = (0..6).map(|i| format!("echo step-{i}")).collect();
    assert_eq!(
        commands, expected,
        "each step once, in order, across the restart"
    );
}

fn ws_url(http: &str, id: &str) -> String {
    format!(
        "{}/sockets/events/{id}?resend_mode=all",
        http.replacen("http", "ws", 1)
    )
}

#[tokio::test]
async fn websocket_streams_state_history_and_live_events() {
    let llm = FakeLlm::start(terminal_steps(2, Duration::from_millis(30)));
    let (conv_dir, work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = Server::start_with(work.path(), conv_dir.path());
    let c = client();
    let created = create(&c, &server, &create_body(&llm, work.path(), false)).await;
    let id = created["id"].as_str().unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(&server.base, id))
        .await
        .unwrap();
    ws.send(Message::text(
        json!({"type": "auth", "session_api_key": KEY}).to_string(),
    ))
    .await
    .unwrap();
    let first = next_json(&mut ws).await;
    assert_eq!(
        (first["kind"].as_str(), first["key"].as_str()),
        (Some("ConversationStateUpdateEvent"), Some("full_state"))
    );
    assert_eq!(
        next_json(&mut ws).await["kind"],
        "SystemPromptEvent",
        "resend_mode=all replays history"
    );
    c.post(format!("{}/api/conversations/{id}/run", server.base))
        .send()
        .await
        .unwrap();
    let mut seen = Vec::new();
    loop {
        let event = next_json(&mut ws).await;
        if event["key"] == "full_state" && event["value"]["execution_status"] == "finished" {
            break;
        }
        seen.push(event);
    }
    let ids: Vec<&str> = seen.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(ids.len(), unique.len(), "no event twice");
    assert_eq!(
        seen.iter().filter(|e| e["kind"] == "ActionEvent").count(),
        3
    );
    // A message over the socket starts a run.
    ws.send(Message::text(
        json!({"role": "user", "content": [{"type": "text", "text": "once more"}]}).to_string(),
    ))
    .await
    .unwrap();
    wait_status(&c, &server.base, id, "finished").await;
}

#[tokio::test]
async fn websocket_rejects_bad_keys_and_unknown_conversations() {
    let (conv_dir, work) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let server = Server::start_with(work.path(), conv_dir.path());
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(
        &server.base,
        "00000000-0000-0000-0000-000000000000",
    ))
    .await
    .unwrap();
    ws.send(Message::text(
        json!({"type": "auth", "session_api_key": "wrong"}).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(close_code(&mut ws).await, 4001);
    let url = format!(
        "{}&session_api_key={KEY}",
        ws_url(&server.base, "00000000-0000-0000-0000-000000000000")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(close_code(&mut ws).await, 4004);
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = msg {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

async fn close_code(ws: &mut Ws) -> u16 {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("closed within 5 s")
        {
            Some(Ok(Message::Close(Some(frame)))) => return frame.code.into(),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}
