//! WebSocket `/sockets/events/{id}`: the conversation's events as they happen.
//!
//! As OpenHands does it: the key comes as the `session_api_key` query parameter or
//! `X-Session-API-Key` header, or else as a first frame `{"type":"auth","session_api_key":...}`
//! within 10 s (close 4001 when wrong); an unknown conversation closes 4004. A new subscriber
//! gets a `full_state` snapshot first, then the history its `resend_mode` asks for (`all`, or
//! `since` with `after_timestamp`), then every new event, and another `full_state` when a run
//! ends. A `Message` frame from the client is sent to the conversation with `run: true`.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::conversations::spec::SendMessage;
use super::conversations::Handle;
use super::AppState;
use crate::protocol::event::Event;

const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

pub fn routes() -> Router<AppState> {
    Router::new().route("/sockets/events/{id}", get(events_socket))
}

#[derive(Debug, Default, Deserialize)]
pub struct SocketQuery {
    session_api_key: Option<String>,
    resend_mode: Option<String>,
    after_timestamp: Option<String>,
    resend_all: Option<bool>,
}

async fn events_socket(
    ws: WebSocketUpgrade,
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<SocketQuery>,
    headers: HeaderMap,
) -> Response {
    let header_key = headers
        .get("x-session-api-key")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    ws.on_upgrade(move |socket| serve_socket(socket, state, id, query, header_key))
}

async fn serve_socket(
    mut socket: WebSocket,
    state: AppState,
    id: String,
    query: SocketQuery,
    header_key: Option<String>,
) {
    let presented = query.session_api_key.clone().or(header_key);
    if !authenticate(&mut socket, &state.config.session_api_keys, presented).await {
        return close(socket, 4001, "Authentication failed").await;
    }
    let Some(handle) = state.conversations.get(&id) else {
        return close(socket, 4004, "Conversation not found").await;
    };
    if let Err(e) = stream(&mut socket, &handle, &query).await {
        tracing::debug!("event socket of {id} ended: {e}");
    }
}

/// Checks the key from the URL/header, or else reads the first-frame auth.
async fn authenticate(socket: &mut WebSocket, keys: &[String], presented: Option<String>) -> bool {
    if keys.is_empty() {
        return true;
    }
    if let Some(key) = presented {
        return super::auth::key_accepted(keys, &key);
    }
    let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(AUTH_TIMEOUT, socket.recv()).await
    else {
        return false;
    };
    let frame: Value = serde_json::from_str(&text).unwrap_or_default();
    frame["type"] == "auth"
        && frame["session_api_key"]
            .as_str()
            .is_some_and(|k| super::auth::key_accepted(keys, k))
}

async fn close(mut socket: WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// The state snapshot, the asked-for history, then events as they come and client messages.
async fn stream(
    socket: &mut WebSocket,
    handle: &std::sync::Arc<Handle>,
    query: &SocketQuery,
) -> Result<(), axum::Error> {
    let mut changes = handle.subscribe();
    send(socket, &handle.full_state_event()).await?;
    let (mut sent, mut runs_seen) = resend(socket, handle, query).await?;
    loop {
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let (fresh, runs_ended) = {
                    let view = handle.view();
                    (
                        view.events[sent.min(view.events.len())..].to_vec(),
                        view.runs_ended + view.settings_changed,
                    )
                };
                for event in &fresh {
                    send(socket, event).await?;
                }
                sent += fresh.len();
                if runs_ended != runs_seen {
                    runs_seen = runs_ended;
                    send(socket, &handle.full_state_event()).await?;
                }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                Some(Ok(Message::Text(text))) => on_client_frame(socket, handle, &text).await?,
                Some(Ok(_)) => {}
            }
        }
    }
}

/// Sends the history `resend_mode` asks for; returns (events covered, runs ended so far).
async fn resend(
    socket: &mut WebSocket,
    handle: &Handle,
    query: &SocketQuery,
) -> Result<(usize, u64), axum::Error> {
    let (history, runs_ended) = {
        let view = handle.view();
        (view.events.clone(), view.runs_ended + view.settings_changed)
    };
    let mode = query
        .resend_mode
        .as_deref()
        .or(query.resend_all.unwrap_or(false).then_some("all"));
    let replay: Vec<&Event> = match (mode, &query.after_timestamp) {
        (Some("all"), _) => history.iter().collect(),
        (Some("since"), Some(after)) => history
            .iter()
            .filter(|e| e.timestamp.as_str() >= after.as_str())
            .collect(),
        _ => Vec::new(),
    };
    for event in replay {
        send(socket, event).await?;
    }
    Ok((history.len(), runs_ended))
}

async fn on_client_frame(
    socket: &mut WebSocket,
    handle: &std::sync::Arc<Handle>,
    text: &str,
) -> Result<(), axum::Error> {
    let frame: Value = serde_json::from_str(text).unwrap_or_default();
    if frame["type"] == "auth" {
        return Ok(());
    }
    let result = match serde_json::from_value::<SendMessage>(frame) {
        Ok(message) => handle
            .send_message(message.text(), true)
            .await
            .map_err(|e| e.detail),
        Err(e) => Err(format!("not a message: {e}")),
    };
    if let Err(detail) = result {
        let error = json!({"kind": "ServerErrorEvent", "source": "environment", "code": "InvalidMessage", "detail": detail});
        socket.send(Message::Text(error.to_string().into())).await?;
    }
    Ok(())
}

async fn send(socket: &mut WebSocket, event: &Event) -> Result<(), axum::Error> {
    let text = serde_json::to_string(event).unwrap_or_default();
    socket.send(Message::Text(text.into())).await
}
