//! `RemoteConversation`: the agent loop runs in an agent-server (OpenHands' 1.58, or our own
//! `sandcrab serve`); this process starts it, streams its events and waits for the run's end.
//!
//! Wire protocol, as checked against OpenHands agent-server 1.58.2:
//! - create: `POST /api/conversations`. The smallest body it accepts is
//!   `{"agent": {"llm": {"model": M}}, "workspace": {"working_dir": W}}`; we send
//!   `{"agent": {"kind": "Agent", "llm": {model, base_url?, api_key?, "usage_id": "agent"},
//!   "tools": [{"name": "terminal"}, ...]}, "workspace": {"kind": "LocalWorkspace",
//!   "working_dir": W}, max_iterations, stuck_detection, conversation_id?}`. Tool spec names
//!   are the registry names (`terminal`, `file_editor`, `task_tracker`): class-style names
//!   (`TerminalTool`) are converted, since the server rejects them when the first message
//!   arrives ("ToolDefinition 'TerminalTool' is not registered"). With a `conversation_id`
//!   that `GET /api/conversations/{id}` finds, we attach to it instead.
//! - events: a full `GET .../events/search` (paged by `next_page_id`), then the socket
//!   `ws://HOST/sockets/events/{id}`, authenticated by a first frame
//!   `{"type": "auth", "session_api_key": KEY}` (bad key: close 4001; unknown conversation:
//!   close 4004). The server's first frame is a `ConversationStateUpdateEvent` with key
//!   `full_state` (a snapshot: not in the event log); then every new event as it happens.
//!   After each (re)connection we catch up with `events/search?timestamp__gte=LAST`; events are
//!   deduplicated by id. Reconnects back off from 0.25 s to 5 s, fetching events over REST
//!   between attempts, so a server without the socket still works (by polling).
//! - run: `POST .../run` (409: already running), then wait for a terminal or paused
//!   `execution_status` (state updates `execution_status` = "finished", or a `full_state`
//!   snapshot), with `GET /api/conversations/{id}` every 2 s as a fallback (trusted after two
//!   agreeing answers). The server sends `ConversationErrorEvent` just after the `error`
//!   status, so we wait briefly for trailing events before mapping the end.
//!
//! Events of kinds our `Event` lacks (`TokenEvent`, ...) and `full_state`
//! snapshots are kept out of `events()`; every stored event is redacted first.
//!
//! This module owns the `RemoteConversation` type, its creation (create or attach) and its
//! `Conversation` impl; `spec` builds the create request, `socket` runs the event stream,
//! `sync` takes events into the log (from the stream or REST), `run` waits for a run's end.

mod run;
mod socket;
mod spec;
mod sync;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::{Conversation, RunEnd};
use crate::event_log::{EventLog, Listener};
use crate::protocol::event::{Event, EventBody, Source};
use crate::protocol::metrics::ConversationStats;
use crate::protocol::state::ExecutionStatus;
use crate::redact::Redactor;
use crate::workspace::server_api::ServerApi;
use crate::workspace::{RemoteWorkspace, Workspace};
use socket::Feed;

pub use spec::{tool_spec_name, RemoteAgentSpec, RemoteOptions, DEFAULT_TOOLS};

/// A conversation running in an agent-server.
pub struct RemoteConversation {
    api: ServerApi,
    id: String,
    resumed: bool,
    log: EventLog,
    seen: HashSet<String>,
    /// The newest timestamp of a logged (server-persisted) event, for catch-up queries.
    last_ts: Option<String>,
    status: ExecutionStatus,
    stats: ConversationStats,
    max_iterations: u32,
    pause: Arc<AtomicBool>,
    feed: mpsc::UnboundedReceiver<Feed>,
    stop: Option<watch::Sender<bool>>,
    task: Option<JoinHandle<()>>,
    fatal: Option<String>,
    /// `full_state` snapshots seen so far (the server sends one when a run ends).
    full_states: u64,
    /// "running" statuses seen so far (each run starts with one).
    runnings: u64,
    /// How `run` answers actions that wait for confirmation (CI); `None`: it returns.
    headless: Option<crate::agent::security::Headless>,
    /// The sandbox the server runs in, asked whether it stopped when the server stops
    /// answering ([`Self::watch_sandbox`]).
    sandbox: Option<Arc<dyn Workspace>>,
}

impl RemoteConversation {
    /// Starts a conversation on the workspace's server, or attaches to
    /// `options.conversation_id` when the server has it; syncs its events and opens the socket.
    pub async fn create(
        workspace: &RemoteWorkspace,
        spec: RemoteAgentSpec,
        options: RemoteOptions,
    ) -> Result<Self> {
        let api = workspace.api().clone();
        let (info, resumed) = open_or_start(&api, workspace.working_dir(), &spec, &options).await?;
        let id = info["id"]
            .as_str()
            .context("the agent-server's answer to POST /api/conversations has no id")?
            .to_string();
        let secrets = options.secrets.iter().chain(&spec.api_key).cloned();
        let (tx, feed) = mpsc::unbounded_channel();
        let mut conv = RemoteConversation {
            api,
            id,
            resumed,
            log: EventLog::new(Vec::new(), None, Redactor::new(secrets)),
            seen: HashSet::new(),
            last_ts: None,
            status: ExecutionStatus::Idle,
            stats: ConversationStats::default(),
            max_iterations: options.max_iterations,
            headless: options.headless,
            pause: Arc::new(AtomicBool::new(false)),
            feed,
            stop: None,
            task: None,
            fatal: None,
            full_states: 0,
            runnings: 0,
            sandbox: None,
        };
        conv.apply_info(&info);
        conv.sync_events().await?;
        conv.spawn_stream(tx);
        Ok(conv)
    }

    /// Watches the sandbox the server runs in: when the server stops answering and the
    /// sandbox has stopped (its container exited), the run ends at once with what happened to
    /// it, instead of after the retries an unreachable server gets.
    pub fn watch_sandbox(&mut self, sandbox: Arc<dyn Workspace>) {
        self.sandbox = Some(sandbox);
    }

    /// The server's base URL.
    pub fn host(&self) -> &str {
        self.api.base_url()
    }

    /// Closes the socket and deletes the conversation on the server.
    pub async fn delete(mut self) -> Result<()> {
        Conversation::close(&mut self).await?;
        let path = conversation_path(&self.id);
        let rb = self.api.request(Method::DELETE, &path);
        self.api.send(&format!("DELETE {path}"), rb).await?;
        Ok(())
    }
}

fn conversation_path(id: &str) -> String {
    format!("/api/conversations/{id}")
}

/// Attaches to `options.conversation_id` if the server has it, else starts a conversation.
/// Returns the `ConversationInfo` and whether it existed.
async fn open_or_start(
    api: &ServerApi,
    working_dir: &str,
    spec: &RemoteAgentSpec,
    options: &RemoteOptions,
) -> Result<(Value, bool)> {
    if let Some(id) = &options.conversation_id {
        match api.get_json::<Value>(&conversation_path(id), &[]).await {
            Ok(info) => return Ok((info, true)),
            Err(e) if e.status == Some(StatusCode::NOT_FOUND) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let body = spec::create_body(spec, options, working_dir);
    let info = api.post_json("/api/conversations", &body).await?;
    Ok((info, false))
}

#[async_trait::async_trait]
impl Conversation for RemoteConversation {
    fn id(&self) -> &str {
        &self.id
    }

    fn resumed(&self) -> bool {
        self.resumed
    }

    fn status(&self) -> ExecutionStatus {
        self.status
    }

    fn events(&self) -> &[Event] {
        self.log.events()
    }

    fn stats(&self) -> &ConversationStats {
        &self.stats
    }

    /// Distinct model responses: the `llm_response_id`s of actions and agent messages.
    fn iterations(&self) -> u32 {
        let mut ids = HashSet::new();
        let mut anonymous = 0;
        for event in self.log.events() {
            match &event.body {
                EventBody::ActionEvent(a) => {
                    ids.insert(a.llm_response_id.as_str());
                }
                EventBody::MessageEvent {
                    llm_response_id, ..
                } if event.source == Source::Agent => match llm_response_id {
                    Some(id) => {
                        ids.insert(id.as_str());
                    }
                    None => anonymous += 1,
                },
                _ => {}
            }
        }
        (ids.len() + anonymous) as u32
    }

    fn add_listener(&mut self, listener: Listener) {
        self.log.add_listener(listener);
    }

    async fn send_message(&mut self, text: &str) -> Result<()> {
        self.drain()?;
        let before = self.user_messages();
        let path = format!("{}/events", conversation_path(&self.id));
        let body =
            json!({"role": "user", "content": [{"type": "text", "text": text}], "run": false});
        let rb = self.api.request(Method::POST, &path).json(&body);
        self.api.send(&format!("POST {path}"), rb).await?;
        if self.status.is_terminal() {
            self.status = ExecutionStatus::Idle;
        }
        self.await_user_message(before).await
    }

    async fn run(&mut self) -> Result<RunEnd> {
        self.drain()?;
        if self.status == ExecutionStatus::Finished {
            return Ok(RunEnd::Finished);
        }
        self.pause.store(false, Ordering::SeqCst);
        let run_start = self.log.events().len();
        loop {
            let runnings = self.runnings;
            self.start_run().await?;
            self.drain()?;
            if self.runnings == runnings {
                // No sign of the new run yet: the status held is the previous run's.
                self.status = ExecutionStatus::Running;
            }
            let status = self.wait_for_end().await?;
            if status == ExecutionStatus::WaitingForConfirmation {
                if let Some(end) = self.answer_confirmation().await? {
                    return Ok(end);
                }
                continue;
            }
            self.settle(status, run_start).await?;
            return Ok(self.run_end(status, run_start));
        }
    }

    fn pause_handle(&self) -> Arc<AtomicBool> {
        self.pause.clone()
    }

    /// Closes the socket; the conversation stays on the server (see `delete`).
    async fn close(&mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(2), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
        Ok(())
    }
}

impl Drop for RemoteConversation {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
