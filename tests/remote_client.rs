//! The remote client (`RemoteWorkspace`, `RemoteConversation`).
//!
//! Error paths and the socket's reconnect/catch-up run against a small fake agent-server on
//! loopback. The functional checks (`functional_checks`) run against a real agent-server:
//! OpenHands' own (`peer_compat`, driven by `tests/compat/peer_client.sh`) and ours
//! (`own_server_functional`, which starts `sandcrab serve` and the scripted model itself); the
//! peer check is `#[ignore]`d because it needs the OpenHands peer (tests/compat/peer_client.sh).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use sandcrab::conversation::remote::{RemoteAgentSpec, RemoteConversation, RemoteOptions};
use sandcrab::conversation::{Conversation, RunEnd};
use sandcrab::protocol::event::{EventBody, Source};
use sandcrab::workspace::{ExecRequest, GitChangeStatus, OutputChunk, RemoteWorkspace, Workspace};

const CID: &str = "11111111-2222-3333-4444-555555555555";

// ---------------------------------------------------------------------------------------------
// The fake agent-server.

#[derive(Clone, Copy, PartialEq)]
enum SocketMode {
    /// First connection: two events then a drop; second: the rest and `finished`.
    Reconnect,
    /// Close with this code after the auth frame.
    Close(u16),
    /// No socket route: a run "happens" over REST only.
    Absent,
}

struct FakeState {
    store: Vec<Value>,
    status: String,
    mode: SocketMode,
    auth_frames: Vec<String>,
    searches: Vec<HashMap<String, String>>,
    bash_body: Option<Value>,
    bash_polls: usize,
    runs: usize,
    pauses: usize,
    /// How long a REST-only run takes.
    run_time: Duration,
}

#[derive(Clone)]
struct Fake(Arc<Mutex<FakeState>>);

impl Fake {
    fn new(mode: SocketMode, store: Vec<Value>) -> Self {
        Fake(Arc::new(Mutex::new(FakeState {
            store,
            status: "idle".into(),
            mode,
            auth_frames: Vec::new(),
            searches: Vec::new(),
            bash_body: None,
            bash_polls: 0,
            runs: 0,
            pauses: 0,
            run_time: Duration::from_millis(500),
        })))
    }

    fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        f(&mut self.0.lock().unwrap())
    }
}

fn ts(n: u32) -> String {
    format!("2026-01-01T00:00:00.{n:06}")
}

fn message(id: &str, n: u32, source: &str, text: &str) -> Value {
    let role = if source == "user" {
        "user"
    } else {
        "assistant"
    };
    json!({"kind": "MessageEvent", "id": id, "timestamp": ts(n), "source": source,
           "llm_message": {"role": role, "content": [{"type": "text", "text": text}]},
           "llm_response_id": format!("resp-{id}")})
}

fn status_update(id: &str, n: u32, status: &str) -> Value {
    json!({"kind": "ConversationStateUpdateEvent", "id": id, "timestamp": ts(n),
           "source": "environment", "key": "execution_status", "value": status})
}

/// A snapshot, dated in the future: the client must not take its timestamp for catch-up.
fn snapshot(status: &str) -> Value {
    json!({"kind": "ConversationStateUpdateEvent", "id": uuid::Uuid::new_v4().to_string(),
           "timestamp": "2099-01-01T00:00:00.000000", "source": "environment",
           "key": "full_state", "value": {"execution_status": status}})
}

fn info(status: &str) -> Value {
    json!({"id": CID, "execution_status": status, "max_iterations": 50,
           "stats": {"usage_to_metrics": {}}, "workspace": {"working_dir": "/work"}})
}

fn fake_router(fake: Fake, with_socket: bool) -> Router {
    let router = Router::new()
        .route("/alive", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/api/conversations", post(create_conversation))
        .route("/api/conversations/{id}", get(get_conversation))
        .route("/api/conversations/{id}/events/search", get(search_events))
        .route("/api/conversations/{id}/run", post(run_conversation))
        .route("/api/conversations/{id}/pause", post(pause_conversation))
        .route("/api/bash/start_bash_command", post(start_bash))
        .route("/api/bash/bash_events/search", get(bash_events));
    let router = if with_socket {
        router.route("/sockets/events/{id}", get(events_socket))
    } else {
        router
    };
    router.with_state(fake)
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

async fn create_conversation(State(fake): State<Fake>) -> Json<Value> {
    Json(info(&fake.with(|s| s.status.clone())))
}

async fn get_conversation(State(fake): State<Fake>, Path(id): Path<String>) -> Response {
    if id != CID {
        return (StatusCode::NOT_FOUND, Json(json!({"detail": "Not Found"}))).into_response();
    }
    Json(info(&fake.with(|s| s.status.clone()))).into_response()
}

/// Filters by `timestamp__gte` and pages two events at a time.
async fn search_events(
    State(fake): State<Fake>,
    Query(query): Query<HashMap<String, String>>,
) -> Json<Value> {
    let (items, next) = fake.with(|s| {
        s.searches.push(query.clone());
        let since = query.get("timestamp__gte").cloned().unwrap_or_default();
        let matching: Vec<Value> = s
            .store
            .iter()
            .filter(|e| e["timestamp"].as_str().unwrap_or_default() >= since.as_str())
            .cloned()
            .collect();
        let offset: usize = query
            .get("page_id")
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let page: Vec<Value> = matching.iter().skip(offset).take(2).cloned().collect();
        let next = (offset + 2 < matching.len()).then(|| (offset + 2).to_string());
        (page, next)
    });
    Json(json!({"items": items, "next_page_id": next}))
}

/// Without a socket, a run "happens" `run_time` after it is started, unless paused; its end
/// is only in the REST status (no state-update event).
async fn run_conversation(State(fake): State<Fake>) -> Json<Value> {
    let run_time = fake.with(|s| {
        s.runs += 1;
        s.status = "running".into();
        s.run_time
    });
    let later = fake.clone();
    tokio::spawn(async move {
        tokio::time::sleep(run_time).await;
        later.with(|s| {
            if s.mode == SocketMode::Absent && s.status == "running" {
                s.store.push(message("p1", 20, "agent", "all done"));
                s.status = "finished".into();
            }
        });
    });
    Json(json!({"success": true}))
}

async fn pause_conversation(State(fake): State<Fake>) -> Json<Value> {
    fake.with(|s| {
        s.pauses += 1;
        s.status = "paused".into();
        s.store.push(
            json!({"kind": "PauseEvent", "id": "q1", "timestamp": ts(30),
                            "source": "user"}),
        );
        s.store.push(status_update("q2", 31, "paused"));
    });
    Json(json!({"success": true}))
}

async fn start_bash(State(fake): State<Fake>, Json(body): Json<Value>) -> Json<Value> {
    fake.with(|s| s.bash_body = Some(body.clone()));
    Json(json!({"kind": "BashCommand", "id": "c1", "command": body["command"]}))
}

/// Releases one more output chunk per poll; honours `order__gt`.
async fn bash_events(
    State(fake): State<Fake>,
    Query(query): Query<HashMap<String, String>>,
) -> Json<Value> {
    let chunks = [
        json!({"kind": "BashOutput", "id": "o0", "command_id": "c1", "order": 0,
               "exit_code": null, "stdout": "a\n", "stderr": null}),
        json!({"kind": "BashOutput", "id": "o1", "command_id": "c1", "order": 1,
               "exit_code": null, "stdout": null, "stderr": "b\n"}),
        json!({"kind": "BashOutput", "id": "o2", "command_id": "c1", "order": 2,
               "exit_code": 3, "stdout": "c\n", "stderr": null}),
    ];
    let released = fake.with(|s| {
        s.bash_polls += 1;
        s.bash_polls
    });
    let after: i64 = query
        .get("order__gt")
        .and_then(|o| o.parse().ok())
        .unwrap_or(-1);
    let items: Vec<Value> = chunks
        .into_iter()
        .take(released)
        .filter(|c| c["order"].as_i64().unwrap() > after)
        .collect();
    Json(json!({"items": items, "next_page_id": null}))
}

async fn events_socket(ws: WebSocketUpgrade, State(fake): State<Fake>) -> Response {
    ws.on_upgrade(move |socket| serve_socket(socket, fake))
}

async fn send_json(socket: &mut WebSocket, value: &Value) {
    let _ = socket.send(Message::Text(value.to_string().into())).await;
}

async fn serve_socket(mut socket: WebSocket, fake: Fake) {
    let auth = match socket.recv().await {
        Some(Ok(Message::Text(text))) => text.to_string(),
        _ => return,
    };
    let (mode, connection) = fake.with(|s| {
        s.auth_frames.push(auth);
        (s.mode, s.auth_frames.len())
    });
    match mode {
        SocketMode::Close(code) => {
            let frame = CloseFrame {
                code,
                reason: "go away".into(),
            };
            let _ = socket.send(Message::Close(Some(frame))).await;
        }
        SocketMode::Reconnect if connection == 1 => first_connection(socket, fake).await,
        SocketMode::Reconnect | SocketMode::Absent => later_connection(socket, fake).await,
    }
}

/// Sends e1 and e2, records e3 and e4 without sending them, and drops the socket.
async fn first_connection(mut socket: WebSocket, fake: Fake) {
    send_json(&mut socket, &snapshot("running")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for event in [
        message("e1", 3, "agent", "one"),
        message("e2", 4, "agent", "two"),
    ] {
        fake.with(|s| s.store.push(event.clone()));
        send_json(&mut socket, &event).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    fake.with(|s| {
        s.store.push(message("e3", 5, "agent", "three"));
        s.store.push(message("e4", 6, "agent", "four"));
    });
}

/// Sends e4 again, then e5 and the `finished` status, and stays open.
async fn later_connection(mut socket: WebSocket, fake: Fake) {
    send_json(&mut socket, &snapshot("running")).await;
    send_json(&mut socket, &message("e4", 6, "agent", "four")).await;
    let odd = json!({"kind": "StreamingDeltaEvent", "id": "u1", "timestamp": ts(6),
                     "source": "agent", "delta": "fo"});
    send_json(&mut socket, &odd).await;
    let _ = socket.send(Message::Text("not json".into())).await;
    let rest = [
        message("e5", 7, "agent", "five"),
        status_update("e6", 8, "finished"),
    ];
    for event in rest {
        fake.with(|s| {
            s.store.push(event.clone());
            s.status = "finished".into();
        });
        send_json(&mut socket, &event).await;
    }
    while let Some(Ok(_)) = socket.recv().await {}
}

fn spec() -> RemoteAgentSpec {
    RemoteAgentSpec::new("openai/scripted")
}

fn event_ids(conv: &RemoteConversation) -> Vec<String> {
    conv.events().iter().map(|e| e.id.clone()).collect()
}

// ---------------------------------------------------------------------------------------------
// Against the fake.

#[tokio::test]
async fn execute_polls_chunks_in_order_and_streams_them() {
    let fake = Fake::new(SocketMode::Reconnect, Vec::new());
    let url = serve(fake_router(fake.clone(), false)).await;
    let ws = RemoteWorkspace::new(&url, Some("k".into()), "/work").unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let request = ExecRequest::new("run it")
        .cwd("sub")
        .env("FOO", "b a r")
        .timeout(Duration::from_secs(7))
        .stream_to(tx);
    let started = Instant::now();
    let result = ws.execute(request).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "polling is slow"
    );
    assert_eq!(
        (
            result.exit_code,
            result.stdout.as_str(),
            result.stderr.as_str()
        ),
        (3, "a\nc\n", "b\n")
    );
    assert_eq!(result.command, "run it");
    assert!(!result.timeout_occurred);
    let mut chunks = Vec::new();
    while let Ok(chunk) = rx.try_recv() {
        chunks.push(chunk);
    }
    assert_eq!(
        chunks,
        vec![
            OutputChunk::Stdout("a\n".into()),
            OutputChunk::Stderr("b\n".into()),
            OutputChunk::Stdout("c\n".into()),
        ]
    );
    let body = fake.with(|s| s.bash_body.clone()).unwrap();
    assert_eq!(body["cwd"], "/work/sub");
    assert_eq!(body["timeout"], 7);
    assert_eq!(body["command"], "export FOO='b a r'; run it");
}

#[tokio::test]
async fn a_wrong_key_is_one_clear_error() {
    let router = Router::new().fallback(|| async {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({"detail": "Unauthorized"})),
        )
    });
    let url = serve(router).await;
    let ws = RemoteWorkspace::new(&url, Some("wrong".into()), "/work").unwrap();
    let err = ws.execute(ExecRequest::new("true")).await.unwrap_err();
    let msg = err.to_string();
    for part in [
        "401",
        "Unauthorized",
        "session API key",
        "start_bash_command",
    ] {
        assert!(msg.contains(part), "{part:?} missing from {msg:?}");
    }
    let tmp = tempfile::NamedTempFile::new().unwrap();
    let err = ws.upload(tmp.path(), "x.txt").await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    let err = RemoteConversation::create(&ws, spec(), RemoteOptions::default())
        .await
        .err()
        .unwrap();
    assert!(format!("{err:#}").contains("401"), "{err:#}");
}

#[tokio::test]
async fn an_unreachable_server_names_itself() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let ws = RemoteWorkspace::new(&url, None, "/work").unwrap();
    assert!(!ws.alive().await);
    let err = ws.git_changes(".").await.unwrap_err().to_string();
    assert!(
        err.contains("cannot reach the agent-server") && err.contains(&url),
        "{err}"
    );
    let err = ws.wait_until_alive(Duration::from_millis(300)).await;
    assert!(err.unwrap_err().to_string().contains("/alive"));
}

async fn socket_closing_with(code: u16) -> String {
    let fake = Fake::new(SocketMode::Close(code), Vec::new());
    let url = serve(fake_router(fake.clone(), true)).await;
    let ws = RemoteWorkspace::new(&url, Some("k".into()), "/work").unwrap();
    let mut conv = RemoteConversation::create(&ws, spec(), RemoteOptions::default())
        .await
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), conv.run())
        .await
        .expect("the run gives up at once")
        .unwrap_err();
    let auth: Value = serde_json::from_str(&fake.with(|s| s.auth_frames[0].clone())).unwrap();
    assert_eq!(auth, json!({"type": "auth", "session_api_key": "k"}));
    format!("{err:#}")
}

#[tokio::test]
async fn a_socket_refusing_the_key_is_a_clear_error() {
    let msg = socket_closing_with(4001).await;
    assert!(
        msg.contains("4001") && msg.contains("session API key"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_socket_not_knowing_the_conversation_is_a_clear_error() {
    let msg = socket_closing_with(4004).await;
    assert!(
        msg.contains("4004") && msg.contains("does not know"),
        "{msg}"
    );
}

#[tokio::test]
async fn reconnecting_catches_up_every_event_exactly_once() {
    let before = vec![
        message("e0", 1, "user", "hello"),
        json!({"kind": "TokenEvent", "id": "u0", "timestamp": ts(2), "source": "agent",
               "prompt_token_ids": [1, 2]}),
    ];
    let fake = Fake::new(SocketMode::Reconnect, before);
    let url = serve(fake_router(fake.clone(), true)).await;
    let ws = RemoteWorkspace::new(&url, Some("k".into()), "/work").unwrap();
    let mut conv = RemoteConversation::create(&ws, spec(), RemoteOptions::default())
        .await
        .unwrap();
    assert_eq!(event_ids(&conv), ["e0"], "unknown kinds stay out");
    let heard = Arc::new(Mutex::new(Vec::new()));
    let sink = heard.clone();
    conv.add_listener(Box::new(move |e| sink.lock().unwrap().push(e.id.clone())));
    let end = tokio::time::timeout(Duration::from_secs(20), conv.run())
        .await
        .expect("the run ends")
        .unwrap();
    assert_eq!(end, RunEnd::Finished);
    assert_eq!(event_ids(&conv), ["e0", "e1", "e2", "e3", "e4", "e5", "e6"]);
    assert_eq!(*heard.lock().unwrap(), ["e1", "e2", "e3", "e4", "e5", "e6"]);
    let caught_up = fake.with(|s| {
        s.searches
            .iter()
            .any(|q| q.get("timestamp__gte") == Some(&ts(4)))
    });
    assert!(caught_up, "no catch-up from the last event seen");
    assert_eq!(fake.with(|s| s.auth_frames.len()), 2);
    assert_eq!(conv.iterations(), 5);
    assert_eq!(conv.final_response().as_deref(), Some("five"));
    conv.close().await.unwrap();
}

#[tokio::test]
async fn without_a_socket_the_run_ends_by_polling() {
    let fake = Fake::new(SocketMode::Absent, vec![message("e0", 1, "user", "go")]);
    let url = serve(fake_router(fake.clone(), false)).await;
    let ws = RemoteWorkspace::new(&url, None, "/work").unwrap();
    let mut conv = RemoteConversation::create(&ws, spec(), RemoteOptions::default())
        .await
        .unwrap();
    let end = tokio::time::timeout(Duration::from_secs(20), conv.run())
        .await
        .expect("the run ends")
        .unwrap();
    assert_eq!(end, RunEnd::Finished);
    assert_eq!(event_ids(&conv), ["e0", "p1"]);
    assert_eq!(conv.final_response().as_deref(), Some("all done"));
    assert_eq!(fake.with(|s| s.runs), 1);
}

#[tokio::test]
async fn the_pause_flag_pauses_the_run_once() {
    let fake = Fake::new(SocketMode::Absent, vec![message("e0", 1, "user", "go")]);
    fake.with(|s| s.run_time = Duration::from_secs(30));
    let url = serve(fake_router(fake.clone(), false)).await;
    let ws = RemoteWorkspace::new(&url, None, "/work").unwrap();
    let mut conv = RemoteConversation::create(&ws, spec(), RemoteOptions::default())
        .await
        .unwrap();
    let pause = conv.pause_handle();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        pause.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let end = tokio::time::timeout(Duration::from_secs(20), conv.run())
        .await
        .expect("the run ends")
        .unwrap();
    assert_eq!(end, RunEnd::Paused);
    assert_eq!(fake.with(|s| s.pauses), 1);
    assert_eq!(event_ids(&conv), ["e0", "q1", "q2"]);
}

#[tokio::test]
async fn an_existing_conversation_is_attached_to() {
    let fake = Fake::new(SocketMode::Absent, vec![message("e0", 1, "user", "hi")]);
    let url = serve(fake_router(fake.clone(), false)).await;
    let ws = RemoteWorkspace::new(&url, None, "/work").unwrap();
    let options = RemoteOptions {
        conversation_id: Some(CID.into()),
        ..RemoteOptions::default()
    };
    let conv = RemoteConversation::create(&ws, spec(), options)
        .await
        .unwrap();
    assert!(conv.resumed());
    assert_eq!(conv.id(), CID);
    assert_eq!(event_ids(&conv), ["e0"]);
    let options = RemoteOptions {
        conversation_id: Some("99999999-2222-3333-4444-555555555555".into()),
        ..RemoteOptions::default()
    };
    let fresh = RemoteConversation::create(&ws, spec(), options)
        .await
        .unwrap();
    assert!(!fresh.resumed());
}

// ---------------------------------------------------------------------------------------------
// Functional checks against a real agent-server.

/// A real agent-server to check, and the scripted model it can reach.
struct Target {
    url: String,
    key: Option<String>,
    /// The scripted model's base URL (`.../v1`) as the server reaches it.
    llm: Option<String>,
    model: String,
    /// A fresh directory (on the server) for the checks.
    workdir: String,
}

impl Target {
    fn new(url: String, key: Option<String>, llm: Option<String>) -> Self {
        Target {
            url,
            key: key.filter(|k| !k.is_empty()),
            llm,
            model: std::env::var("SANDCRAB_TEST_MODEL").unwrap_or("openai/scripted".into()),
            workdir: format!("/tmp/sandcrab-compat-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    fn workspace(&self) -> RemoteWorkspace {
        RemoteWorkspace::new(&self.url, self.key.clone(), self.workdir.clone()).unwrap()
    }
}

/// PASS/FAIL lines, one per check; fails the test at the end if any failed.
#[derive(Default)]
struct Checks {
    failed: Vec<String>,
}

impl Checks {
    fn check(&mut self, name: &str, ok: bool, detail: impl std::fmt::Debug) {
        if ok {
            println!("PASS {name}");
        } else {
            println!("FAIL {name}: {detail:?}");
            self.failed.push(name.to_string());
        }
    }

    fn finish(self) {
        assert!(self.failed.is_empty(), "failed checks: {:?}", self.failed);
    }
}

async fn functional_checks(target: Target) {
    let mut checks = Checks::default();
    let ws = target.workspace();
    let alive = ws.wait_until_alive(Duration::from_secs(30)).await;
    checks.check("server alive", alive.is_ok(), &alive);
    let info = ws.server_info().await;
    checks.check("server_info", info.is_ok(), &info);
    let made = ws
        .execute(ExecRequest::new(format!("mkdir -p {}/sub", target.workdir)).cwd("/"))
        .await;
    checks.check(
        "create the working dir",
        made.as_ref().is_ok_and(|r| r.exit_code == 0),
        &made,
    );
    command_checks(&ws, &target, &mut checks).await;
    file_checks(&ws, &mut checks).await;
    git_checks(&ws, &mut checks).await;
    if target.llm.is_some() {
        conversation_checks(&ws, &target, &mut checks).await;
    } else {
        println!("SKIP conversation checks (no scripted model URL)");
    }
    checks.finish();
}

async fn command_checks(ws: &RemoteWorkspace, target: &Target, checks: &mut Checks) {
    let started = Instant::now();
    let hi = ws.execute(ExecRequest::new("echo hi")).await;
    let took = started.elapsed();
    checks.check(
        "execute echo hi",
        hi.as_ref()
            .is_ok_and(|r| r.exit_code == 0 && r.stdout == "hi\n" && r.stderr.is_empty()),
        &hi,
    );
    println!("INFO echo hi took {} ms", took.as_millis());
    let failing = ws
        .execute(ExecRequest::new("echo out; echo err >&2; exit 3"))
        .await;
    checks.check(
        "failing command: exit code and both streams",
        failing
            .as_ref()
            .is_ok_and(|r| r.exit_code == 3 && r.stdout == "out\n" && r.stderr == "err\n"),
        &failing,
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let streamed = ws
        .execute(
            ExecRequest::new("echo $FOO; pwd")
                .cwd("sub")
                .env("FOO", "it's")
                .stream_to(tx),
        )
        .await;
    let mut seen = String::new();
    while let Ok(OutputChunk::Stdout(text)) = rx.try_recv() {
        seen.push_str(&text);
    }
    let expected = format!("it's\n{}/sub\n", target.workdir);
    checks.check(
        "env, relative cwd and streamed output",
        streamed.as_ref().is_ok_and(|r| r.stdout == expected) && seen == expected,
        (&streamed, &seen),
    );
    let slow = ws
        .execute(ExecRequest::new("sleep 10").timeout(Duration::from_secs(1)))
        .await;
    checks.check(
        "timeout: exit -1 and timeout_occurred",
        slow.as_ref()
            .is_ok_and(|r| r.exit_code == -1 && r.timeout_occurred),
        &slow,
    );
}

async fn file_checks(ws: &RemoteWorkspace, checks: &mut Checks) {
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("hello.txt");
    std::fs::write(&src, "hello\nworld\n").unwrap();
    let up = ws.upload(&src, "up/hello.txt").await;
    checks.check(
        "upload a file",
        up.as_ref()
            .is_ok_and(|r| r.success && r.file_size == Some(12)),
        &up,
    );
    let back = local.path().join("back/hello.txt");
    let down = ws.download("up/hello.txt", &back).await;
    let text = std::fs::read_to_string(&back).unwrap_or_default();
    checks.check(
        "download it back",
        down.as_ref().is_ok_and(|r| r.success) && text == "hello\nworld\n",
        (&down, &text),
    );
    let missing = ws.download("no/such/file", &local.path().join("x")).await;
    checks.check(
        "download of a missing file fails softly",
        missing
            .as_ref()
            .is_ok_and(|r| !r.success && r.error.is_some()),
        &missing,
    );
    let tree = local.path().join("tree");
    std::fs::create_dir_all(tree.join("deep")).unwrap();
    std::fs::write(tree.join("a.txt"), "A").unwrap();
    std::fs::write(tree.join("deep/b.txt"), "B").unwrap();
    let up = ws.upload(&tree, "tree").await;
    let copy = local.path().join("copy");
    let down = ws.download("tree", &copy).await;
    let a = std::fs::read_to_string(copy.join("a.txt")).unwrap_or_default();
    let b = std::fs::read_to_string(copy.join("deep/b.txt")).unwrap_or_default();
    checks.check(
        "upload and download a directory",
        up.as_ref().is_ok_and(|r| r.success)
            && down.as_ref().is_ok_and(|r| r.success)
            && (a.as_str(), b.as_str()) == ("A", "B"),
        (&up, &down),
    );
}

async fn git_checks(ws: &RemoteWorkspace, checks: &mut Checks) {
    let setup = "mkdir -p repo && cd repo && git init -q -b main && \
        git config user.email t@example.com && git config user.name t && \
        printf 'one\\n' > a.txt && git add . && git commit -qm init && \
        printf 'two\\n' >> a.txt && printf 'new\\n' > b.txt";
    let made = ws.execute(ExecRequest::new(setup)).await;
    checks.check(
        "make a git repository",
        made.as_ref().is_ok_and(|r| r.exit_code == 0),
        &made,
    );
    let changes = ws.git_changes("repo").await;
    let found = |path: &str, status| {
        changes
            .as_ref()
            .is_ok_and(|c| c.iter().any(|g| g.path == path && g.status == status))
    };
    checks.check(
        "git_changes",
        found("a.txt", GitChangeStatus::Updated) && found("b.txt", GitChangeStatus::Added),
        &changes,
    );
    let diff = ws.git_diff("repo/a.txt").await;
    checks.check(
        "git_diff",
        diff.as_ref().is_ok_and(|d| {
            d.original.as_deref().is_some_and(|o| o.trim() == "one")
                && d.modified
                    .as_deref()
                    .is_some_and(|m| m.trim() == "one\ntwo")
        }),
        &diff,
    );
}

fn agent_spec(target: &Target) -> RemoteAgentSpec {
    let mut spec = RemoteAgentSpec::new(target.model.clone());
    spec.base_url = target.llm.clone();
    spec.api_key = Some("sk-compat-not-a-real-key".into());
    spec
}

async fn conversation_checks(ws: &RemoteWorkspace, target: &Target, checks: &mut Checks) {
    let options = RemoteOptions {
        max_iterations: 20,
        secrets: vec!["step-2".into()],
        ..RemoteOptions::default()
    };
    let created = RemoteConversation::create(ws, agent_spec(target), options).await;
    checks.check(
        "create a conversation",
        created.is_ok(),
        created.as_ref().err(),
    );
    let Ok(mut conv) = created else { return };
    // Servers differ in what exists before the first message (ours records the system prompt
    // at create, OpenHands with the first message): count from here.
    let before = conv.events().len();
    let heard = Arc::new(Mutex::new(0usize));
    let sink = heard.clone();
    conv.add_listener(Box::new(move |_| *sink.lock().unwrap() += 1));
    let sent = conv.send_message("Run the scripted steps.").await;
    checks.check(
        "send a message",
        sent.is_ok() && conv.last_user_message().as_deref() == Some("Run the scripted steps."),
        &sent,
    );
    let end = tokio::time::timeout(Duration::from_secs(120), conv.run()).await;
    checks.check(
        "run to finish",
        matches!(end, Ok(Ok(RunEnd::Finished))),
        &end,
    );
    run_checks(&conv, checks, before + *heard.lock().unwrap());
    resume_checks(ws, target, &conv, checks).await;
    let _ = conv.close().await;
    max_iterations_check(ws, target, checks).await;
    pause_check(ws, target, checks).await;
}

fn run_checks(conv: &RemoteConversation, checks: &mut Checks, heard: usize) {
    let outputs: Vec<String> = conv
        .events()
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::ObservationEvent {
                tool_name,
                observation,
                ..
            } if tool_name == "terminal" => Some(observation.to_string()),
            _ => None,
        })
        .collect();
    checks.check(
        "three terminal steps, in order",
        outputs.len() == 3 && outputs[0].contains("step-0") && outputs[1].contains("step-1"),
        &outputs,
    );
    let all = serde_json::to_string(conv.events()).unwrap();
    checks.check(
        "secrets are redacted from events",
        !all.contains("step-2") && all.contains("<secret-hidden>"),
        "step-2 visible",
    );
    checks.check(
        "final response",
        conv.final_response().as_deref() == Some("finished after 3 steps"),
        conv.final_response(),
    );
    checks.check("iterations", conv.iterations() == 4, conv.iterations());
    let (tokens, _) = conv.stats().totals();
    checks.check("stats have tokens", tokens > 0, conv.stats());
    checks.check(
        "listener heard every new event once",
        heard == conv.events().len(),
        (heard, conv.events().len()),
    );
    let kinds: Vec<&str> = conv.events().iter().map(|e| e.kind()).collect();
    checks.check(
        "system prompt first, user message second",
        kinds.starts_with(&["SystemPromptEvent", "MessageEvent"])
            && conv.events()[1].source == Source::User,
        &kinds,
    );
}

async fn resume_checks(
    ws: &RemoteWorkspace,
    target: &Target,
    first: &RemoteConversation,
    checks: &mut Checks,
) {
    let options = RemoteOptions {
        conversation_id: Some(first.id().to_string()),
        secrets: vec!["step-2".into()],
        ..RemoteOptions::default()
    };
    let attached = RemoteConversation::create(ws, agent_spec(target), options).await;
    let Ok(mut again) = attached else {
        checks.check("attach to the conversation", false, attached.err());
        return;
    };
    let ids = |c: &RemoteConversation| c.events().iter().map(|e| e.id.clone()).collect::<Vec<_>>();
    checks.check(
        "attach: resumed, same events",
        again.resumed() && ids(&again) == ids(first),
        (again.resumed(), ids(&again).len(), ids(first).len()),
    );
    let sent = again.send_message("Once more.").await;
    let end = tokio::time::timeout(Duration::from_secs(120), again.run()).await;
    checks.check(
        "a second run finishes",
        sent.is_ok() && matches!(end, Ok(Ok(RunEnd::Finished))),
        (&sent, &end),
    );
    checks.check(
        "iterations add up",
        again.iterations() == 5,
        again.iterations(),
    );
    let deleted = again.delete().await;
    checks.check("delete", deleted.is_ok(), &deleted);
}

async fn max_iterations_check(ws: &RemoteWorkspace, target: &Target, checks: &mut Checks) {
    let options = RemoteOptions {
        max_iterations: 2,
        ..RemoteOptions::default()
    };
    let Ok(mut conv) = RemoteConversation::create(ws, agent_spec(target), options).await else {
        checks.check("max iterations", false, "create failed");
        return;
    };
    let _ = conv.send_message("Run the scripted steps.").await;
    let end = tokio::time::timeout(Duration::from_secs(120), conv.run()).await;
    checks.check(
        "max iterations",
        matches!(end, Ok(Ok(RunEnd::MaxIterations(2)))),
        &end,
    );
    let _ = conv.delete().await;
}

/// Pauses at the first action (the flag is set by a listener), then runs on to the end.
async fn pause_check(ws: &RemoteWorkspace, target: &Target, checks: &mut Checks) {
    let created = RemoteConversation::create(ws, agent_spec(target), RemoteOptions::default());
    let Ok(mut conv) = created.await else {
        checks.check("pause", false, "create failed");
        return;
    };
    let pause = conv.pause_handle();
    let mut fired = false;
    conv.add_listener(Box::new(move |e| {
        if e.kind() == "ActionEvent" && !fired {
            fired = true;
            pause.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }));
    let _ = conv.send_message("Run the scripted steps.").await;
    let end = tokio::time::timeout(Duration::from_secs(120), conv.run()).await;
    let actions = |c: &RemoteConversation| {
        c.events()
            .iter()
            .filter(|e| e.kind() == "ActionEvent")
            .count()
    };
    let paused_at = actions(&conv);
    checks.check(
        "pause after the first action",
        matches!(end, Ok(Ok(RunEnd::Paused))) && paused_at < 4,
        (&end, paused_at),
    );
    let end = tokio::time::timeout(Duration::from_secs(120), conv.run()).await;
    checks.check(
        "run again after a pause",
        matches!(end, Ok(Ok(RunEnd::Finished))) && actions(&conv) == 4,
        (&end, actions(&conv)),
    );
    let _ = conv.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs OpenHands' agent-server and the scripted model: tests/compat/peer_client.sh"]
async fn peer_compat() {
    let url = std::env::var("SANDCRAB_PEER_URL").expect("SANDCRAB_PEER_URL is set");
    let key = std::env::var("SANDCRAB_PEER_KEY").ok();
    let llm = std::env::var("SANDCRAB_PEER_LLM").ok();
    functional_checks(Target::new(url, key, llm)).await;
}

/// Our client against our server, every check: `sandcrab serve` and the scripted model of
/// `../shared/bench/scripted_llm.py --steps 3` (`common::terminal_steps`), both started here.
/// Each answer takes 150 ms, as a real model's take longer: with an instant model the pause
/// check raced the three steps to their end on a loaded machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_server_functional() {
    let llm = common::FakeLlm::start(common::terminal_steps(3, Duration::from_millis(150)));
    let server = common::server::Server::start_in(std::path::Path::new("/"));
    let target = Target::new(
        server.base.clone(),
        Some(common::server::KEY.into()),
        Some(llm.openai_url()),
    );
    functional_checks(target).await;
}
