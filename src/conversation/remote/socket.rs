//! The event stream of a `RemoteConversation`: a background task holding the socket
//! `ws://HOST/sockets/events/{id}` open (first frame `{"type": "auth", "session_api_key": KEY}`),
//! taking the server's state snapshot, catching up over REST after each (re)connection,
//! reconnecting with backoff (0.25 s to 5 s, jittered), and handing every frame to the conversation as a
//! `Feed`. Close codes 4001 (bad key) and 4004 (unknown conversation) end it for good.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

use super::sync::search_events;
use super::RemoteConversation;
use crate::http::retry::{Jitter, RetryPolicy};
use crate::workspace::server_api::ServerApi;

/// Waits between reconnections: 0.25 s doubling to 5 s, with equal jitter (servers that restart
/// are not met by every client at once).
const RECONNECT: RetryPolicy = RetryPolicy::new(1, Duration::from_millis(250), 2.0)
    .cap(Duration::from_secs(5))
    .jitter(Jitter::Equal);
/// How long to wait for the server's first frame (its state snapshot) after connecting.
const FIRST_FRAME_WAIT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the event-stream task hands the conversation.
pub(super) enum Feed {
    Frame(Value),
    /// The server's initial push on a new socket: state to take, not an event to log.
    Snapshot(Value),
    /// The stream cannot go on (the server refused the key, or forgot the conversation).
    Fatal(String),
}

impl RemoteConversation {
    /// Starts the event-stream task, which sends to `tx` until `close` stops it.
    pub(super) fn spawn_stream(&mut self, tx: mpsc::UnboundedSender<Feed>) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let stream = EventStream {
            api: self.api.clone(),
            id: self.id.clone(),
            tx,
            last_ts: self.last_ts.clone(),
            stop: stop_rx,
        };
        self.task = Some(tokio::spawn(stream.run()));
        self.stop = Some(stop_tx);
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How one socket session ended.
enum SessionEnd {
    Stopped,
    Dropped(String),
    Fatal(String),
}

enum Frame {
    Json(Value),
    End(SessionEnd),
}

/// The background task: keeps a socket to the conversation's events open, reconnecting and
/// catching up over REST, and forwards every frame to the conversation.
struct EventStream {
    api: ServerApi,
    id: String,
    tx: mpsc::UnboundedSender<Feed>,
    last_ts: Option<String>,
    stop: watch::Receiver<bool>,
}

impl EventStream {
    async fn run(mut self) {
        let mut backoff = RECONNECT.schedule();
        loop {
            let started = Instant::now();
            match self.session().await {
                SessionEnd::Stopped => return,
                SessionEnd::Fatal(msg) => {
                    let _ = self.tx.send(Feed::Fatal(msg));
                    return;
                }
                SessionEnd::Dropped(why) => {
                    tracing::debug!("event socket of conversation {}: {why}", self.id)
                }
            }
            if started.elapsed() > Duration::from_secs(10) {
                backoff.reset();
            }
            if let Err(SessionEnd::Fatal(msg)) = self.catch_up().await {
                let _ = self.tx.send(Feed::Fatal(msg));
                return;
            }
            if self.sleep_or_stop(backoff.next_wait()).await {
                return;
            }
        }
    }

    /// Sleeps; returns true when asked to stop meanwhile (or the conversation is gone).
    async fn sleep_or_stop(&mut self, wait: Duration) -> bool {
        if self.tx.is_closed() || *self.stop.borrow() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => false,
            _ = self.stop.changed() => true,
        }
    }

    /// One connection: connect, authenticate, take the snapshot, catch up, then stream.
    async fn session(&mut self) -> SessionEnd {
        let mut ws = match self.connect().await {
            Ok(ws) => ws,
            Err(end) => return end,
        };
        let first = match tokio::time::timeout(FIRST_FRAME_WAIT, next_frame(&mut ws)).await {
            Ok(Frame::Json(value)) => Some(value),
            Ok(Frame::End(end)) => return end,
            Err(_) => None,
        };
        // The server's initial push (a state update) is a snapshot of now: it goes first and
        // its timestamp is not a catch-up point. Any other first frame waits for the catch-up.
        let (push, held) = match first {
            Some(v) if v["kind"] == "ConversationStateUpdateEvent" => (Some(v), None),
            other => (None, other),
        };
        if let Some(push) = push {
            if self.tx.send(Feed::Snapshot(push)).is_err() {
                return SessionEnd::Stopped;
            }
        }
        if let Err(end) = self.catch_up().await {
            return end;
        }
        if let Some(held) = held {
            if !self.forward(held) {
                return SessionEnd::Stopped;
            }
        }
        self.stream(ws).await
    }

    async fn stream(&mut self, mut ws: Socket) -> SessionEnd {
        let mut stop = self.stop.clone();
        loop {
            let frame = tokio::select! {
                frame = next_frame(&mut ws) => frame,
                _ = stop.changed() => {
                    let _ = ws.close(None).await;
                    return SessionEnd::Stopped;
                }
            };
            match frame {
                Frame::Json(value) => {
                    if !self.forward(value) {
                        return SessionEnd::Stopped;
                    }
                }
                Frame::End(end) => return end,
            }
        }
    }

    async fn connect(&self) -> Result<Socket, SessionEnd> {
        let url = socket_url(self.api.base_url(), &self.id);
        let connected =
            tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(url));
        let mut ws = match connected.await {
            Err(_) => return Err(SessionEnd::Dropped("connecting timed out".into())),
            Ok(Err(tungstenite::Error::Http(resp)))
                if matches!(resp.status().as_u16(), 401 | 403) =>
            {
                return Err(SessionEnd::Fatal(format!(
                    "the agent-server refused the event socket (HTTP {}); check the session API key",
                    resp.status()
                )))
            }
            Ok(Err(e)) => return Err(SessionEnd::Dropped(format!("cannot connect: {e}"))),
            Ok(Ok((ws, _))) => ws,
        };
        if let Some(key) = self.api.api_key() {
            let auth = json!({"type": "auth", "session_api_key": key}).to_string();
            if let Err(e) = ws.send(Message::text(auth)).await {
                return Err(SessionEnd::Dropped(format!("cannot authenticate: {e}")));
            }
        }
        Ok(ws)
    }

    /// Fetches the events since the last one forwarded (all of them the first time).
    async fn catch_up(&mut self) -> Result<(), SessionEnd> {
        let items = search_events(&self.api, &self.id, self.last_ts.as_deref())
            .await
            .map_err(|e| match e.status {
                Some(StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND) => {
                    SessionEnd::Fatal(e.message)
                }
                _ => SessionEnd::Dropped(format!("catching up failed: {e}")),
            })?;
        for item in items {
            if !self.forward(item) {
                return Err(SessionEnd::Stopped);
            }
        }
        Ok(())
    }

    /// Hands an event on, remembering its timestamp unless it is a `full_state` snapshot
    /// (which is not in the server's log). Returns false when the conversation is gone.
    fn forward(&mut self, value: Value) -> bool {
        let snapshot = value["key"] == "full_state";
        if let (false, Some(ts)) = (snapshot, value["timestamp"].as_str()) {
            if self.last_ts.as_deref().is_none_or(|last| ts > last) {
                self.last_ts = Some(ts.to_string());
            }
        }
        self.tx.send(Feed::Frame(value)).is_ok()
    }
}

/// `ws(s)://HOST/sockets/events/{id}` for an `http(s)://HOST` base.
fn socket_url(base: &str, id: &str) -> String {
    let base = match base.strip_prefix("http") {
        Some(rest) => format!("ws{rest}"),
        None => base.to_string(),
    };
    format!("{base}/sockets/events/{id}")
}

/// The next JSON frame, or how the socket ended.
async fn next_frame(ws: &mut Socket) -> Frame {
    loop {
        match ws.next().await {
            None => return Frame::End(SessionEnd::Dropped("the socket closed".into())),
            Some(Err(e)) => return Frame::End(SessionEnd::Dropped(format!("socket error: {e}"))),
            Some(Ok(Message::Close(frame))) => return Frame::End(close_end(frame)),
            Some(Ok(Message::Text(text))) => match serde_json::from_str(&text) {
                Ok(value) => return Frame::Json(value),
                Err(e) => tracing::debug!("skipping a frame that is not JSON: {e}"),
            },
            Some(Ok(_)) => {}
        }
    }
}

/// 4001 (bad key) and 4004 (unknown conversation) are final; other closes are reconnected.
fn close_end(frame: Option<CloseFrame>) -> SessionEnd {
    let Some(frame) = frame else {
        return SessionEnd::Dropped("the server closed the socket".into());
    };
    let reason = frame.reason.as_str();
    match u16::from(frame.code) {
        4001 => SessionEnd::Fatal(format!(
            "the agent-server refused the event socket's session API key (close code 4001: {reason})"
        )),
        4004 => SessionEnd::Fatal(format!(
            "the agent-server does not know this conversation (close code 4004: {reason})"
        )),
        code => SessionEnd::Dropped(format!("the server closed the socket ({code}: {reason})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_url_follows_the_scheme() {
        assert_eq!(
            socket_url("http://h:1", "c"),
            "ws://h:1/sockets/events/c".to_string()
        );
        assert_eq!(socket_url("https://h", "c"), "wss://h/sockets/events/c");
    }
}
