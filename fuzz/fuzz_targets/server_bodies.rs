//! The agent-server's request bodies, through the real router in-process: conversation create
//! (`POST /api/conversations`), a message (`POST .../events`) and `execute_bash_command`. The
//! first byte picks the route, the rest is the body. Bodies that would run something (a valid
//! bash command, a conversation told to run) are skipped: the fuzzer must not execute
//! arbitrary commands; every rejection path (FastAPI-style 422s) is exercised. Any answer is
//! fine; a panic or a 5xx is a finding.
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use sandcrab::server::{router, AppState, ServerConfig};
use serde_json::Value;
use tower::ServiceExt;

fn state() -> &'static (AppState, tokio::runtime::Runtime, tempfile::TempDir) {
    static STATE: OnceLock<(AppState, tokio::runtime::Runtime, tempfile::TempDir)> =
        OnceLock::new();
    STATE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let config = ServerConfig {
            host: "127.0.0.1".into(),
            port: 0,
            session_api_keys: vec!["k".into()],
            conversations_dir: dir.path().join("conversations"),
            working_dir: dir.path().to_path_buf(),
        };
        let state = runtime.block_on(async { AppState::new(config).unwrap() });
        (state, runtime, dir)
    })
}

/// Whether the body would start work: a bash command, or a conversation with a message.
fn would_run(route: u8, body: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    match route {
        0 => !value["initial_message"].is_null(),
        2 => value.get("command").is_some_and(Value::is_string),
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let route = selector % 3;
    if would_run(route, body) {
        return;
    }
    let path = match route {
        0 => "/api/conversations",
        1 => "/api/conversations/0123456789abcdef0123456789abcdef/events",
        _ => "/api/bash/execute_bash_command",
    };
    let (state, runtime, _) = state();
    let request = Request::post(path)
        .header("content-type", "application/json")
        .header("X-Session-API-Key", "k")
        .body(Body::from(body.to_vec()))
        .unwrap();
    let status = runtime
        .block_on(router(state.clone()).oneshot(request))
        .unwrap()
        .status();
    assert!(
        status != StatusCode::INTERNAL_SERVER_ERROR,
        "{path} answered 500 to {:?}",
        String::from_utf8_lossy(body)
    );
});
