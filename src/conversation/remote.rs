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
//! Events of kinds our `Event` lacks (`TokenEvent`, `Condensation`, ...) and `full_state`
//! snapshots are kept out of `events()`; every stored event is redacted first.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

use super::event::{Event, EventBody, Source};
use super::log::{EventLog, Listener};
use super::state::ExecutionStatus;
use super::{Conversation, RunEnd};
use crate::llm::metrics::ConversationStats;
use crate::redact::Redactor;
use crate::workspace::remote::{ApiError, ServerApi};
use crate::workspace::{RemoteWorkspace, Workspace};

/// The tools an agent gets unless told otherwise.
pub const DEFAULT_TOOLS: [&str; 3] = ["TerminalTool", "FileEditorTool", "TaskTrackerTool"];

const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long to wait for the server's first frame (its state snapshot) after connecting.
const FIRST_FRAME_WAIT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often `run` asks the server for the status, in case the socket misses it.
const STATUS_POLL: Duration = Duration::from_secs(2);
/// Consecutive failed status polls before `run` gives up on an unreachable server.
const MAX_POLL_FAILURES: u32 = 30;
const TICK: Duration = Duration::from_millis(200);

/// The agent the server should run.
#[derive(Debug, Clone)]
pub struct RemoteAgentSpec {
    /// As the server's LLM layer (LiteLLM for OpenHands) names it, e.g. `openai/gpt-4o`.
    pub model: String,
    pub base_url: Option<String>,
    /// Also hidden from every event.
    pub api_key: Option<String>,
    /// OpenHands tool spec names (`terminal`, or the class name `TerminalTool`).
    pub tools: Vec<String>,
}

impl RemoteAgentSpec {
    pub fn new(model: impl Into<String>) -> Self {
        RemoteAgentSpec {
            model: model.into(),
            base_url: None,
            api_key: None,
            tools: DEFAULT_TOOLS.iter().map(|t| t.to_string()).collect(),
        }
    }

    /// The `agent` object of the create request.
    fn to_json(&self) -> Value {
        let mut llm = json!({"model": self.model, "usage_id": "agent"});
        if let Some(url) = &self.base_url {
            llm["base_url"] = json!(url);
        }
        if let Some(key) = &self.api_key {
            llm["api_key"] = json!(key);
        }
        let tools: Vec<Value> = self
            .tools
            .iter()
            .map(|t| json!({"name": tool_spec_name(t)}))
            .collect();
        json!({"kind": "Agent", "llm": llm, "tools": tools})
    }
}

/// The registry name OpenHands derives from a tool class name: `TerminalTool` → `terminal`,
/// `FileEditorTool` → `file_editor`. Names without capitals are kept.
pub fn tool_spec_name(name: &str) -> String {
    if !name.chars().any(|c| c.is_ascii_uppercase()) {
        return name.to_string();
    }
    let chars: Vec<char> = name.chars().collect();
    let mut snake = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let prev = i.checked_sub(1).map(|p| chars[p]);
        let next = chars.get(i + 1);
        let boundary = c.is_ascii_uppercase()
            && prev.is_some_and(|p| {
                p.is_ascii_lowercase()
                    || p.is_ascii_digit()
                    || (p.is_ascii_uppercase() && next.is_some_and(|n| n.is_ascii_lowercase()))
            });
        if boundary {
            snake.push('_');
        }
        snake.push(c.to_ascii_lowercase());
    }
    match snake.strip_suffix("_tool") {
        Some(short) if !short.is_empty() => short.to_string(),
        _ => snake,
    }
}

/// How the conversation is set up.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// Attach to this conversation when the server has it, else create it with this id
    /// (OpenHands wants a UUID).
    pub conversation_id: Option<String>,
    pub max_iterations: u32,
    pub stuck_detection: bool,
    /// Values hidden from every event.
    pub secrets: Vec<String>,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            conversation_id: None,
            max_iterations: 100,
            stuck_detection: true,
            secrets: Vec::new(),
        }
    }
}

/// What the event-stream task hands the conversation.
enum Feed {
    Frame(Value),
    /// The server's initial push on a new socket: state to take, not an event to log.
    Snapshot(Value),
    /// The stream cannot go on (the server refused the key, or forgot the conversation).
    Fatal(String),
}

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
            pause: Arc::new(AtomicBool::new(false)),
            feed,
            stop: None,
            task: None,
            fatal: None,
            full_states: 0,
            runnings: 0,
        };
        conv.apply_info(&info);
        conv.sync_events().await?;
        conv.spawn_stream(tx);
        Ok(conv)
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

    fn spawn_stream(&mut self, tx: mpsc::UnboundedSender<Feed>) {
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

    /// Takes status, stats and limits from a `ConversationInfo`.
    fn apply_info(&mut self, info: &Value) {
        self.set_status_from(&info["execution_status"]);
        self.set_stats_from(&info["stats"]);
        if let Some(n) = info["max_iterations"].as_u64() {
            self.max_iterations = n as u32;
        }
    }

    fn set_status_from(&mut self, value: &Value) {
        if let Ok(status) = serde_json::from_value::<ExecutionStatus>(value.clone()) {
            self.status = status;
            self.runnings += u64::from(status == ExecutionStatus::Running);
        }
    }

    fn set_stats_from(&mut self, value: &Value) {
        if value.is_null() {
            return;
        }
        match serde_json::from_value::<ConversationStats>(value.clone()) {
            Ok(stats) => self.stats = stats,
            Err(e) => tracing::debug!("ignoring stats in an unexpected shape: {e}"),
        }
    }

    /// Takes one event from the server: dedup, state, redaction, log, listeners.
    fn accept(&mut self, value: Value) -> Result<()> {
        if let Some(id) = value["id"].as_str() {
            if !self.seen.insert(id.to_string()) {
                return Ok(());
            }
        }
        let kind = value["kind"].as_str().unwrap_or_default().to_string();
        if kind == "ConversationStateUpdateEvent" {
            self.apply_update(&value["key"], &value["value"]);
            if value["key"] == "full_state" {
                self.full_states += 1;
                return Ok(());
            }
        }
        if let Some(ts) = value["timestamp"].as_str() {
            if self.last_ts.as_deref().is_none_or(|last| ts > last) {
                self.last_ts = Some(ts.to_string());
            }
        }
        if kind == "ServerErrorEvent" {
            tracing::warn!("the agent-server reported an error: {}", value["detail"]);
        }
        match serde_json::from_value::<Event>(value) {
            Ok(event) => self.log.push(event),
            Err(e) => {
                tracing::debug!("keeping a {kind} event out of the log: {e}");
                Ok(())
            }
        }
    }

    fn apply_update(&mut self, key: &Value, value: &Value) {
        match key.as_str() {
            Some("execution_status") => self.set_status_from(value),
            Some("stats") => self.set_stats_from(value),
            Some("full_state") => {
                self.set_status_from(&value["execution_status"]);
                self.set_stats_from(&value["stats"]);
            }
            _ => {}
        }
    }

    fn handle(&mut self, feed: Feed) -> Result<()> {
        match feed {
            Feed::Frame(value) => self.accept(value),
            Feed::Snapshot(value) => {
                self.apply_update(&value["key"], &value["value"]);
                Ok(())
            }
            Feed::Fatal(msg) => {
                self.fatal = Some(msg);
                Ok(())
            }
        }
    }

    /// Takes every event already received; fails once the stream has failed for good.
    fn drain(&mut self) -> Result<()> {
        while let Ok(feed) = self.feed.try_recv() {
            self.handle(feed)?;
        }
        match &self.fatal {
            Some(msg) => Err(anyhow!("conversation {}: {msg}", self.id)),
            None => Ok(()),
        }
    }

    /// Waits up to `wait` for something from the stream; returns whether anything came.
    async fn wait_feed(&mut self, wait: Duration) -> Result<bool> {
        match tokio::time::timeout(wait, self.feed.recv()).await {
            Ok(Some(feed)) => {
                self.handle(feed)?;
                self.drain()?;
                Ok(true)
            }
            Ok(None) => {
                // The stream task has ended (closed, or failed): nothing more will come.
                tokio::time::sleep(wait).await;
                Ok(false)
            }
            Err(_) => Ok(false),
        }
    }

    /// Fetches the events since the last one seen over REST.
    async fn sync_events(&mut self) -> Result<()> {
        let items = search_events(&self.api, &self.id, self.last_ts.as_deref()).await?;
        for item in items {
            self.accept(item)?;
        }
        Ok(())
    }

    async fn fetch_info(&mut self) -> Result<Value, ApiError> {
        self.api.get_json(&conversation_path(&self.id), &[]).await
    }

    /// `POST /run`; "already running" (409) is fine, "too many runs" (429) is retried.
    async fn start_run(&mut self) -> Result<()> {
        let path = format!("{}/run", conversation_path(&self.id));
        let what = format!("POST {path}");
        for attempt in 0.. {
            let rb = self.api.request(Method::POST, &path);
            match self.api.send(&what, rb).await {
                Ok(_) => break,
                Err(e) if e.status == Some(StatusCode::CONFLICT) => break,
                Err(e) if e.status == Some(StatusCode::TOO_MANY_REQUESTS) && attempt < 10 => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn request_pause(&mut self) -> Result<()> {
        let path = format!("{}/pause", conversation_path(&self.id));
        let rb = self.api.request(Method::POST, &path);
        self.api.send(&format!("POST {path}"), rb).await?;
        Ok(())
    }

    /// Waits until the status is terminal or paused (from the socket, or REST polls).
    async fn wait_for_end(&mut self) -> Result<ExecutionStatus> {
        let mut poll = StatusPoll::new();
        let mut pause_sent = false;
        loop {
            self.drain()?;
            if ends_run(self.status) {
                return Ok(self.status);
            }
            if !pause_sent && self.pause.load(Ordering::SeqCst) {
                self.request_pause().await?;
                pause_sent = true;
            }
            if Instant::now() >= poll.next {
                if let Some(status) = self.poll_status(&mut poll).await? {
                    self.sync_events().await?;
                    self.status = status;
                    return Ok(status);
                }
            }
            self.wait_feed(TICK).await?;
        }
    }

    /// One REST status poll; returns the end status once two polls in a row agree on it.
    async fn poll_status(&mut self, poll: &mut StatusPoll) -> Result<Option<ExecutionStatus>> {
        poll.next = Instant::now() + STATUS_POLL;
        let info = match self.fetch_info().await {
            Ok(info) => info,
            Err(e) if e.status == Some(StatusCode::NOT_FOUND) => {
                bail!(
                    "conversation {} no longer exists on the agent-server",
                    self.id
                )
            }
            Err(e) if e.status.is_none() && poll.failures < MAX_POLL_FAILURES => {
                poll.failures += 1;
                tracing::warn!("{e}; retrying");
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        poll.failures = 0;
        self.set_stats_from(&info["stats"]);
        let status = serde_json::from_value::<ExecutionStatus>(info["execution_status"].clone())
            .ok()
            .filter(|s| ends_run(*s));
        let agreed = status.is_some() && status == poll.last_end;
        poll.last_end = status;
        Ok(if agreed { status } else { None })
    }

    /// After the end status: waits briefly for trailing events (the error event follows the
    /// `error` status; a `full_state` snapshot closes the run), then refreshes the stats.
    async fn settle(&mut self, status: ExecutionStatus, run_start: usize) -> Result<()> {
        let snapshots = self.full_states;
        let cap = Instant::now() + Duration::from_secs(2);
        while self.full_states == snapshots && Instant::now() < cap {
            if !self.wait_feed(Duration::from_millis(300)).await? {
                break;
            }
        }
        let wants_error = matches!(status, ExecutionStatus::Error | ExecutionStatus::Stuck);
        if wants_error && self.last_error(run_start).is_none() {
            self.sync_events().await?;
        }
        match self.fetch_info().await {
            Ok(info) => self.set_stats_from(&info["stats"]),
            Err(e) => tracing::debug!("cannot refresh the stats: {e}"),
        }
        Ok(())
    }

    /// The last `ConversationErrorEvent` (code, detail) since event `from`.
    fn last_error(&self, from: usize) -> Option<(String, String)> {
        let events = self.log.events().get(from..).unwrap_or_default();
        events.iter().rev().find_map(|e| match &e.body {
            EventBody::ConversationErrorEvent { code, detail, .. } => {
                Some((code.clone(), detail.clone()))
            }
            _ => None,
        })
    }

    fn run_end(&self, status: ExecutionStatus, run_start: usize) -> RunEnd {
        let error = self.last_error(run_start);
        match status {
            ExecutionStatus::Finished => RunEnd::Finished,
            ExecutionStatus::Paused => RunEnd::Paused,
            ExecutionStatus::Stuck => RunEnd::Stuck(error.map(|(_, d)| d).unwrap_or_else(|| {
                "the agent-server's stuck detector stopped the agent repeating itself".into()
            })),
            ExecutionStatus::Error => match error {
                Some((code, _)) if code == "MaxIterationsReached" => {
                    RunEnd::MaxIterations(self.max_iterations)
                }
                Some((_, detail)) => RunEnd::Error(detail),
                None => RunEnd::Error("the run failed on the agent-server (no error event)".into()),
            },
            other => RunEnd::Error(format!("the run stopped with status {}", other.as_str())),
        }
    }

    fn user_messages(&self) -> usize {
        self.log
            .events()
            .iter()
            .filter(|e| {
                e.source == Source::User && matches!(e.body, EventBody::MessageEvent { .. })
            })
            .count()
    }

    /// Waits (up to 2 s) for a sent message to come back as an event, else fetches it.
    async fn await_user_message(&mut self, before: usize) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.user_messages() <= before && Instant::now() < deadline {
            self.wait_feed(Duration::from_millis(50)).await?;
        }
        if self.user_messages() <= before {
            self.sync_events().await?;
        }
        Ok(())
    }
}

/// When `run` returns.
fn ends_run(status: ExecutionStatus) -> bool {
    status.is_terminal() || status == ExecutionStatus::Paused
}

struct StatusPoll {
    next: Instant,
    last_end: Option<ExecutionStatus>,
    failures: u32,
}

impl StatusPoll {
    fn new() -> Self {
        StatusPoll {
            next: Instant::now() + STATUS_POLL,
            last_end: None,
            failures: 0,
        }
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
    let mut body = json!({
        "agent": spec.to_json(),
        "workspace": {"kind": "LocalWorkspace", "working_dir": working_dir},
        "max_iterations": options.max_iterations,
        "stuck_detection": options.stuck_detection,
    });
    if let Some(id) = &options.conversation_id {
        body["conversation_id"] = json!(id);
    }
    let info = api.post_json("/api/conversations", &body).await?;
    Ok((info, false))
}

/// Every event (since `since`, inclusive), following `next_page_id`.
async fn search_events(
    api: &ServerApi,
    id: &str,
    since: Option<&str>,
) -> Result<Vec<Value>, ApiError> {
    let path = format!("{}/events/search", conversation_path(id));
    let mut out = Vec::new();
    let mut page: Option<String> = None;
    loop {
        let mut query = vec![
            ("limit", "100".to_string()),
            ("sort_order", "TIMESTAMP".to_string()),
        ];
        if let Some(ts) = since {
            query.push(("timestamp__gte", ts.to_string()));
        }
        if let Some(page) = &page {
            query.push(("page_id", page.clone()));
        }
        let answer: Value = api.get_json(&path, &query).await?;
        out.extend(answer["items"].as_array().cloned().unwrap_or_default());
        match answer["next_page_id"].as_str() {
            Some(next) if !next.is_empty() && page.as_deref() != Some(next) => {
                page = Some(next.to_string())
            }
            _ => return Ok(out),
        }
    }
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
        let runnings = self.runnings;
        self.start_run().await?;
        self.drain()?;
        if self.runnings == runnings {
            // No sign of the new run yet: the status held is the previous run's.
            self.status = ExecutionStatus::Running;
        }
        let status = self.wait_for_end().await?;
        self.settle(status, run_start).await?;
        Ok(self.run_end(status, run_start))
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
        let mut backoff = MIN_BACKOFF;
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
                backoff = MIN_BACKOFF;
            }
            if let Err(SessionEnd::Fatal(msg)) = self.catch_up().await {
                let _ = self.tx.send(Feed::Fatal(msg));
                return;
            }
            if self.sleep_or_stop(backoff).await {
                return;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
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
    fn class_names_become_registry_names() {
        assert_eq!(tool_spec_name("TerminalTool"), "terminal");
        assert_eq!(tool_spec_name("FileEditorTool"), "file_editor");
        assert_eq!(tool_spec_name("TaskTrackerTool"), "task_tracker");
        assert_eq!(tool_spec_name("XMLHttpRequest"), "xml_http_request");
        assert_eq!(tool_spec_name("terminal"), "terminal");
    }

    #[test]
    fn socket_url_follows_the_scheme() {
        assert_eq!(
            socket_url("http://h:1", "c"),
            "ws://h:1/sockets/events/c".to_string()
        );
        assert_eq!(socket_url("https://h", "c"), "wss://h/sockets/events/c");
    }

    #[test]
    fn create_body_names_tools_and_usage() {
        let mut spec = RemoteAgentSpec::new("openai/m");
        spec.base_url = Some("http://llm/v1".into());
        let agent = spec.to_json();
        assert_eq!(agent["llm"]["usage_id"], "agent");
        assert_eq!(agent["llm"]["base_url"], "http://llm/v1");
        assert!(agent["llm"].get("api_key").is_none());
        assert_eq!(agent["tools"][0]["name"], "terminal");
    }
}
