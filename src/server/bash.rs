//! `/api/bash`: shell commands run in the background, their output recorded as `BashOutput`
//! events that clients poll, as OpenHands' bash router answers (kept in memory here).
//!
//! A command runs as `/bin/sh -c` in its own process group, without the runner's secrets in its
//! environment. Its output comes out as events numbered 0, 1, 2... (`order`): pending output is
//! sent 100 ms after it arrives, or at once in 1 MiB pieces; the last event carries the exit
//! code (-1 on timeout, -N when killed by signal N). A fast command thus gives one event.
//! Each command keeps at most 10 MiB of output: the first 5 MiB and the last 5 MiB, the gap
//! shown by a marker; old finished commands are forgotten past 256 MiB or 10,000 commands.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{NaiveDate, NaiveDateTime};
use serde::{Serialize, Serializer};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, Instant};

use super::error::ApiError;
use super::AppState;

/// Output is sent in events of at most this many bytes.
const CHUNK: usize = 1 << 20;
/// Output waits this long for more before it is sent.
const FLUSH_DELAY: Duration = Duration::from_millis(100);
/// After the shell exits, how long its pipes may stay open (held by a background process).
const PIPE_GRACE: Duration = Duration::from_millis(100);
/// Between SIGTERM and SIGKILL when a command is stopped or times out.
const KILL_GRACE: Duration = Duration::from_secs(2);
/// Output kept per command: its first `HEAD` bytes and its last `TAIL` bytes.
const HEAD: usize = 5 << 20;
const TAIL: usize = 5 << 20;
/// Past these, the oldest finished commands are forgotten.
const MAX_TOTAL_BYTES: usize = 256 << 20;
const MAX_COMMANDS: usize = 10_000;
/// The default `timeout` of a request, in seconds.
const DEFAULT_TIMEOUT: i64 = 300;
/// The default and largest page of a search.
const MAX_PAGE: usize = 100;

// ---------------------------------------------------------------------------------------------
// Events

/// OpenHands' `BashCommand` event: a command was started.
#[derive(Debug, Clone, Serialize)]
struct BashCommand {
    command: String,
    cwd: Option<String>,
    timeout: i64,
    id: String,
    #[serde(serialize_with = "timestamp")]
    timestamp: NaiveDateTime,
    kind: &'static str,
}

/// OpenHands' `BashOutput` event: a piece of a command's output; the last one has `exit_code`.
#[derive(Debug, Clone, Serialize)]
struct BashOutput {
    id: String,
    #[serde(serialize_with = "timestamp")]
    timestamp: NaiveDateTime,
    command_id: String,
    order: i64,
    exit_code: Option<i32>,
    stdout: Option<String>,
    stderr: Option<String>,
    kind: &'static str,
}

#[derive(Debug, Clone)]
enum BashEvent {
    Command(Arc<BashCommand>),
    Output(Arc<BashOutput>),
}

impl Serialize for BashEvent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            BashEvent::Command(c) => c.serialize(s),
            BashEvent::Output(o) => o.serialize(s),
        }
    }
}

impl BashEvent {
    fn timestamp(&self) -> NaiveDateTime {
        match self {
            BashEvent::Command(c) => c.timestamp,
            BashEvent::Output(o) => o.timestamp,
        }
    }
}

/// UTC with microseconds and a `Z`, as OpenHands writes bash event times.
fn timestamp<S: Serializer>(ts: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&ts.format("%Y-%m-%dT%H:%M:%S%.6fZ"))
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl BashOutput {
    /// The bytes of output it holds.
    fn text_len(&self) -> usize {
        self.stdout.as_ref().map_or(0, String::len) + self.stderr.as_ref().map_or(0, String::len)
    }
}

/// Output text (stdout, stderr) of one event.
type Piece = (Option<String>, Option<String>);

// ---------------------------------------------------------------------------------------------
// The event store

/// What a search asks for.
#[derive(Debug, Default)]
struct Filter {
    kind: Option<&'static str>,
    command_id: Option<String>,
    since: Option<NaiveDateTime>,
    before: Option<NaiveDateTime>,
    order_after: Option<i64>,
    descending: bool,
    page: Option<u64>,
    limit: usize,
}

impl Filter {
    fn matches(&self, event: &BashEvent) -> bool {
        let ts = event.timestamp();
        if self.since.is_some_and(|t| ts < t) || self.before.is_some_and(|t| ts >= t) {
            return false;
        }
        match event {
            BashEvent::Command(_) => {
                self.command_id.is_none() && self.kind.is_none_or(|k| k == "BashCommand")
            }
            BashEvent::Output(o) => {
                self.kind.is_none_or(|k| k == "BashOutput")
                    && self.command_id.as_ref().is_none_or(|c| *c == o.command_id)
                    && self.order_after.is_none_or(|n| o.order > n)
            }
        }
    }
}

/// One command's bookkeeping.
#[derive(Default)]
struct CommandState {
    /// Its events (the `BashCommand` first), by sequence number; some may be gone.
    seqs: BTreeSet<u64>,
    next_order: i64,
    head_bytes: usize,
    /// Output events past the head: (sequence number, bytes), oldest first.
    tail: VecDeque<(u64, usize)>,
    tail_bytes: usize,
    dropped: usize,
    stop: Option<oneshot::Sender<()>>,
    done: bool,
}

#[derive(Default)]
struct Store {
    /// Every event by sequence number, which is also timestamp order.
    events: BTreeMap<u64, BashEvent>,
    ids: HashMap<String, u64>,
    commands: HashMap<String, CommandState>,
    /// Command ids, oldest first.
    history: VecDeque<String>,
    next_seq: u64,
    last_ts: Option<NaiveDateTime>,
    total_bytes: usize,
}

impl Store {
    /// The next sequence number and a timestamp no earlier than the previous one.
    fn stamp(&mut self) -> (u64, NaiveDateTime) {
        let now = chrono::Utc::now().naive_utc();
        let ts = self.last_ts.map_or(now, |last| last.max(now));
        self.last_ts = Some(ts);
        self.next_seq += 1;
        (self.next_seq, ts)
    }

    fn insert(&mut self, seq: u64, event: BashEvent) {
        let id = match &event {
            BashEvent::Command(c) => c.id.clone(),
            BashEvent::Output(o) => o.id.clone(),
        };
        self.ids.insert(id, seq);
        self.events.insert(seq, event);
    }

    fn remove(&mut self, seq: u64) -> Option<BashEvent> {
        let event = self.events.remove(&seq)?;
        match &event {
            BashEvent::Command(c) => self.ids.remove(&c.id),
            BashEvent::Output(o) => self.ids.remove(&o.id),
        };
        Some(event)
    }

    fn add_command(
        &mut self,
        request: ExecuteBashRequest,
        stop: oneshot::Sender<()>,
    ) -> Arc<BashCommand> {
        let (seq, ts) = self.stamp();
        let command = Arc::new(BashCommand {
            command: request.command,
            cwd: request.cwd,
            timeout: request.timeout,
            id: new_id(),
            timestamp: ts,
            kind: "BashCommand",
        });
        let state = CommandState {
            seqs: BTreeSet::from([seq]),
            stop: Some(stop),
            ..CommandState::default()
        };
        self.commands.insert(command.id.clone(), state);
        self.history.push_back(command.id.clone());
        self.insert(seq, BashEvent::Command(command.clone()));
        self.forget_old_commands();
        command
    }

    /// Records output events of `command_id`; the last one carries `exit_code` when given
    /// (then the command is finished).
    fn add_output(&mut self, command_id: &str, pieces: Vec<Piece>, exit_code: Option<i32>) {
        let count = pieces.len();
        for (i, piece) in pieces.into_iter().enumerate() {
            let exit = if i + 1 == count { exit_code } else { None };
            self.add_event(command_id, piece, exit);
        }
        if exit_code.is_some() {
            if let Some(state) = self.commands.get_mut(command_id) {
                state.done = true;
                state.stop = None;
            }
        }
        self.forget_old_commands();
    }

    fn add_event(&mut self, command_id: &str, (stdout, stderr): Piece, exit_code: Option<i32>) {
        let (seq, ts) = self.stamp();
        let Some(state) = self.commands.get_mut(command_id) else {
            return;
        };
        let event = BashOutput {
            id: new_id(),
            timestamp: ts,
            command_id: command_id.to_string(),
            order: state.next_order,
            exit_code,
            stdout,
            stderr,
            kind: "BashOutput",
        };
        let len = event.text_len();
        state.next_order += 1;
        state.seqs.insert(seq);
        self.total_bytes += len;
        self.insert(seq, BashEvent::Output(Arc::new(event)));
        self.account(command_id, seq, len);
    }

    /// Keeps the command's output within `HEAD + TAIL` bytes, dropping the oldest events past
    /// the head and marking the gap at the front of what remains.
    fn account(&mut self, command_id: &str, seq: u64, len: usize) {
        let Some(state) = self.commands.get_mut(command_id) else {
            return;
        };
        if state.head_bytes < HEAD {
            state.head_bytes += len;
            return;
        }
        state.tail.push_back((seq, len));
        state.tail_bytes += len;
        let mut evicted = Vec::new();
        while state.tail_bytes > TAIL && state.tail.len() > 1 {
            let (old, old_len) = state.tail.pop_front().expect("tail is not empty");
            state.tail_bytes -= old_len;
            state.dropped += old_len;
            state.seqs.remove(&old);
            evicted.push((old, old_len));
        }
        if evicted.is_empty() {
            return;
        }
        let (dropped, front) = (state.dropped, state.tail.front().map(|(s, _)| *s));
        for (old, old_len) in evicted {
            self.remove(old);
            self.total_bytes -= old_len;
        }
        if let Some(front) = front {
            self.mark_gap(front, dropped);
        }
    }

    /// Prefixes the event `seq` with a note of how much output was dropped before it.
    fn mark_gap(&mut self, seq: u64, dropped: usize) {
        let Some(BashEvent::Output(event)) = self.events.get(&seq) else {
            return;
        };
        let note = format!("[sandcrab: {dropped} bytes of output dropped here]\n");
        let mut marked = BashOutput::clone(event);
        match marked.stdout.as_mut().or(marked.stderr.as_mut()) {
            Some(text) => text.insert_str(0, &note),
            None => marked.stdout = Some(note),
        }
        self.events.insert(seq, BashEvent::Output(Arc::new(marked)));
    }

    /// Forgets the oldest finished commands while the store holds too much.
    fn forget_old_commands(&mut self) {
        while self.total_bytes > MAX_TOTAL_BYTES || self.commands.len() > MAX_COMMANDS {
            let commands = &self.commands;
            let Some(pos) = self
                .history
                .iter()
                .position(|id| commands.get(id).is_none_or(|s| s.done))
            else {
                return;
            };
            let id = self.history.remove(pos).expect("position is in range");
            self.forget_command(&id);
        }
    }

    fn forget_command(&mut self, id: &str) {
        let Some(state) = self.commands.remove(id) else {
            return;
        };
        for seq in state.seqs {
            if let Some(BashEvent::Output(o)) = self.remove(seq) {
                self.total_bytes -= o.text_len();
            }
        }
    }

    /// Deletes every event (running commands go on, numbering on); returns how many.
    fn clear(&mut self) -> usize {
        let count = self.events.len();
        self.events.clear();
        self.ids.clear();
        self.total_bytes = 0;
        self.commands.retain(|_, s| !s.done);
        for state in self.commands.values_mut() {
            state.seqs.clear();
            state.tail.clear();
            (state.head_bytes, state.tail_bytes, state.dropped) = (0, 0, 0);
        }
        let commands = &self.commands;
        self.history.retain(|id| commands.contains_key(id));
        count
    }

    fn get(&self, id: &str) -> Option<BashEvent> {
        self.ids
            .get(id)
            .and_then(|seq| self.events.get(seq))
            .cloned()
    }

    /// A page of matching events and the id of the next page.
    fn search(&self, filter: &Filter) -> (Vec<BashEvent>, Option<String>) {
        let seqs: Box<dyn DoubleEndedIterator<Item = u64> + '_> = match &filter.command_id {
            Some(id) => match self.commands.get(id) {
                Some(state) => Box::new(state.seqs.iter().copied()),
                None => Box::new(std::iter::empty()),
            },
            None => Box::new(self.events.keys().copied()),
        };
        let seqs: Box<dyn Iterator<Item = u64>> = match (filter.descending, filter.page) {
            (false, Some(p)) => Box::new(seqs.filter(move |s| *s >= p)),
            (false, None) => seqs,
            (true, Some(p)) => Box::new(seqs.rev().filter(move |s| *s <= p)),
            (true, None) => Box::new(seqs.rev()),
        };
        let mut items = Vec::new();
        for seq in seqs {
            let Some(event) = self.events.get(&seq).filter(|e| filter.matches(e)) else {
                continue;
            };
            if items.len() == filter.limit {
                return (items, Some(seq.to_string()));
            }
            items.push(event.clone());
        }
        (items, None)
    }

    /// Asks a running command to stop; `None` when the command is unknown.
    fn stop(&mut self, command_id: &str) -> Option<()> {
        let state = self.commands.get_mut(command_id)?;
        if let Some(stop) = state.stop.take() {
            let _ = stop.send(());
        }
        Some(())
    }

    /// The command's output in one event: the last event's id, order and exit code, with all
    /// the stdout and stderr kept.
    fn aggregate(&self, command_id: &str) -> Option<BashOutput> {
        let state = self.commands.get(command_id)?;
        let outputs = state
            .seqs
            .iter()
            .filter_map(|seq| match self.events.get(seq) {
                Some(BashEvent::Output(o)) => Some(o),
                _ => None,
            });
        let (mut stdout, mut stderr, mut last) = (String::new(), String::new(), None);
        for output in outputs {
            stdout.push_str(output.stdout.as_deref().unwrap_or_default());
            stderr.push_str(output.stderr.as_deref().unwrap_or_default());
            last = Some(output);
        }
        let mut result = BashOutput::clone(last?);
        result.stdout = (!stdout.is_empty()).then_some(stdout);
        result.stderr = (!stderr.is_empty()).then_some(stderr);
        Some(result)
    }
}

// ---------------------------------------------------------------------------------------------
// The service

/// Runs commands and keeps their events; shared by the handlers.
#[derive(Clone)]
pub struct BashService {
    store: Arc<Mutex<Store>>,
    working_dir: Arc<PathBuf>,
}

/// OpenHands' `ExecuteBashRequest`.
#[derive(Debug, Clone)]
struct ExecuteBashRequest {
    command: String,
    cwd: Option<String>,
    timeout: i64,
}

impl BashService {
    /// A service running commands in `working_dir` unless told another `cwd`.
    pub fn new(working_dir: PathBuf) -> Self {
        BashService {
            store: Arc::new(Mutex::new(Store::default())),
            working_dir: Arc::new(working_dir),
        }
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a command in the background; the handle ends when its last event is recorded.
    fn start(&self, request: ExecuteBashRequest) -> (Arc<BashCommand>, JoinHandle<()>) {
        let (stop_tx, stop_rx) = oneshot::channel();
        let command = self.store().add_command(request, stop_tx);
        let task = tokio::spawn(run(self.clone(), command.clone(), stop_rx));
        (command, task)
    }

    fn record(&self, command_id: &str, pieces: Vec<Piece>, exit_code: Option<i32>) {
        self.store().add_output(command_id, pieces, exit_code);
    }

    fn cwd(&self, cwd: Option<&str>) -> PathBuf {
        cwd.map_or_else(
            || self.working_dir.to_path_buf(),
            |c| self.working_dir.join(c),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Running a command

async fn run(service: BashService, command: Arc<BashCommand>, stop: oneshot::Receiver<()>) {
    let cwd = service.cwd(command.cwd.as_deref());
    match spawn(&command.command, &cwd) {
        Ok(child) => Runner::new(service, &command, child, stop).run().await,
        Err(e) => {
            let message = format!("Error executing command: {}", spawn_error(&e, &cwd));
            service.record(&command.id, vec![(None, Some(message))], Some(-1));
        }
    }
}

fn spawn(command: &str, cwd: &Path) -> std::io::Result<Child> {
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(command).current_dir(cwd);
    for (key, _) in std::env::vars_os() {
        let key_text = key.to_string_lossy();
        if crate::config::SECRET_ENV_NAMES.contains(&key_text.as_ref())
            || key_text.starts_with("OH_SESSION_API_KEYS")
        {
            cmd.env_remove(&key);
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    cmd.spawn()
}

/// Python's wording, which OpenHands clients see: `[Errno 2] No such file or directory: '/x'`.
fn spawn_error(e: &std::io::Error, cwd: &Path) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let text = std::io::Error::from_raw_os_error(code).to_string();
            let text = text
                .split(" (os error")
                .next()
                .unwrap_or_default()
                .to_string();
            format!("[Errno {code}] {text}: '{}'", cwd.display())
        }
        None => e.to_string(),
    }
}

/// Why a command was ended by the server.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ending {
    Timeout,
    Stopped,
}

/// One running command: reads its pipes, sends its output, ends it on timeout or stop.
struct Runner {
    service: BashService,
    id: String,
    child: Child,
    pgid: i32,
    stdout: Option<tokio::process::ChildStdout>,
    stderr: Option<tokio::process::ChildStderr>,
    out: Vec<u8>,
    err: Vec<u8>,
    stop: Option<oneshot::Receiver<()>>,
    deadline: Option<Instant>,
    flush_at: Option<Instant>,
    kill_at: Option<Instant>,
    drain_until: Option<Instant>,
    status: Option<std::io::Result<ExitStatus>>,
    ending: Option<Ending>,
}

impl Runner {
    fn new(
        service: BashService,
        command: &BashCommand,
        mut child: Child,
        stop: oneshot::Receiver<()>,
    ) -> Self {
        let seconds = command.timeout.max(0) as u64;
        Runner {
            service,
            id: command.id.clone(),
            pgid: child.id().map_or(0, |p| p as i32),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
            child,
            out: Vec::new(),
            err: Vec::new(),
            stop: Some(stop),
            deadline: Instant::now().checked_add(Duration::from_secs(seconds)),
            flush_at: None,
            kill_at: None,
            drain_until: None,
            status: None,
            ending: None,
        }
    }

    async fn run(mut self) {
        while !self.finished() {
            self.step().await;
        }
        let exit_code = self.exit_code();
        let pieces = take_pieces(&mut self.out, &mut self.err, Flush::All);
        self.service.record(&self.id, pieces, Some(exit_code));
    }

    fn finished(&self) -> bool {
        let drained = self.stdout.is_none() && self.stderr.is_none();
        let grace_over = self.drain_until.is_some_and(|t| t <= Instant::now());
        self.status.is_some() && (drained || grace_over)
    }

    /// Waits for the next thing to happen and handles it.
    async fn step(&mut self) {
        self.out.reserve(64 * 1024);
        self.err.reserve(64 * 1024);
        let exited = self.status.is_some();
        tokio::select! {
            biased;
            asked = stopped(&mut self.stop) => {
                self.stop = None;
                if asked {
                    self.end(Ending::Stopped);
                }
            }
            _ = at(self.deadline) => {
                self.deadline = None;
                self.end(Ending::Timeout);
            }
            status = self.child.wait(), if !exited => self.exited(status),
            n = read(self.stdout.as_mut(), &mut self.out) => {
                if !matches!(n, Ok(n) if n > 0) {
                    self.stdout = None;
                }
                self.received();
            }
            n = read(self.stderr.as_mut(), &mut self.err) => {
                if !matches!(n, Ok(n) if n > 0) {
                    self.stderr = None;
                }
                self.received();
            }
            _ = at(self.flush_at) => {
                self.flush_at = None;
                self.send(Flush::Ready);
            }
            _ = at(self.kill_at) => {
                self.kill_at = None;
                self.signal(libc::SIGKILL);
            }
            _ = at(self.drain_until) => {}
        }
    }

    /// Sends whole chunks at once; schedules the rest.
    fn received(&mut self) {
        if self.out.len() >= CHUNK || self.err.len() >= CHUNK {
            self.send(Flush::Whole);
        }
        let pending = !self.out.is_empty() || !self.err.is_empty();
        if pending && self.flush_at.is_none() {
            self.flush_at = Some(Instant::now() + FLUSH_DELAY);
        }
    }

    fn send(&mut self, how: Flush) {
        let pieces = take_pieces(&mut self.out, &mut self.err, how);
        if !pieces.is_empty() {
            self.service.record(&self.id, pieces, None);
        }
    }

    /// Ends the command: SIGTERM to its group now, SIGKILL if it lingers.
    fn end(&mut self, why: Ending) {
        if self.status.is_some() || self.ending.is_some() {
            return;
        }
        self.ending = Some(why);
        self.signal(libc::SIGTERM);
        self.kill_at = Some(Instant::now() + KILL_GRACE);
    }

    fn exited(&mut self, status: std::io::Result<ExitStatus>) {
        self.status = Some(status);
        self.kill_at = None;
        if self.ending.is_some() {
            // What is left of a command we ended goes too, so its pipes close.
            self.signal(libc::SIGKILL);
        }
        self.drain_until = Some(Instant::now() + PIPE_GRACE);
    }

    fn signal(&self, signal: i32) {
        if self.pgid > 0 {
            // SAFETY: kill has no memory-safety preconditions; the group is the command's own.
            unsafe {
                libc::kill(-self.pgid, signal);
            }
        }
    }

    /// -1 on timeout or a failed wait, -N when killed by signal N, else the exit status.
    fn exit_code(&self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        if self.ending == Some(Ending::Timeout) {
            return -1;
        }
        match &self.status {
            Some(Ok(status)) => status.code().or(status.signal().map(|s| -s)).unwrap_or(-1),
            _ => -1,
        }
    }
}

/// Whether a stop was asked (false: it no longer can be).
async fn stopped(stop: &mut Option<oneshot::Receiver<()>>) -> bool {
    match stop {
        Some(rx) => rx.await.is_ok(),
        None => std::future::pending().await,
    }
}

async fn at(when: Option<Instant>) {
    match when {
        Some(t) => sleep_until(t).await,
        None => std::future::pending().await,
    }
}

async fn read<R: AsyncRead + Unpin>(
    pipe: Option<&mut R>,
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    match pipe {
        Some(pipe) => pipe.read_buf(buf).await,
        None => std::future::pending().await,
    }
}

// ---------------------------------------------------------------------------------------------
// Cutting output into events

/// How much of the pending output to send.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Flush {
    /// Only whole `CHUNK`s.
    Whole,
    /// All but an unfinished UTF-8 character at the end.
    Ready,
    /// Everything (the command is over).
    All,
}

/// The pending output as events' text; with `Flush::All`, at least one (maybe empty) piece.
fn take_pieces(out: &mut Vec<u8>, err: &mut Vec<u8>, how: Flush) -> Vec<Piece> {
    let mut pieces = Vec::new();
    loop {
        let piece = (take_text(out, how), take_text(err, how));
        if piece == (None, None) {
            break;
        }
        pieces.push(piece);
    }
    if pieces.is_empty() && how == Flush::All {
        pieces.push((None, None));
    }
    pieces
}

/// Takes up to `CHUNK` bytes from the front of `buf` as text, never splitting a character
/// (unless the output is over).
fn take_text(buf: &mut Vec<u8>, how: Flush) -> Option<String> {
    if how == Flush::Whole && buf.len() < CHUNK {
        return None;
    }
    let mut cut = buf.len().min(CHUNK);
    if how != Flush::All || cut < buf.len() {
        cut = char_boundary(buf, cut);
    }
    if cut == 0 {
        return None;
    }
    let text = String::from_utf8_lossy(&buf[..cut]).into_owned();
    buf.drain(..cut);
    Some(text)
}

/// `cut`, moved back to the start of a UTF-8 character it would split.
fn char_boundary(buf: &[u8], cut: usize) -> usize {
    for start in (cut.saturating_sub(3)..cut).rev() {
        let byte = buf[start];
        if byte & 0xC0 == 0x80 {
            continue; // a continuation byte: the character starts earlier
        }
        let width = match byte {
            0xF0.. => 4,
            0xE0.. => 3,
            0xC0.. => 2,
            _ => 1,
        };
        return if start + width > cut { start } else { cut };
    }
    cut
}

// ---------------------------------------------------------------------------------------------
// Request validation, answered as FastAPI does

/// An error answer: `{"detail": "..."}`, or FastAPI's 422 `{"detail": [...]}`.
pub(super) enum Failure {
    Api(ApiError),
    Invalid(Box<ValidationError>),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Api(e) => e.into_response(),
            Failure::Invalid(error) => {
                let body = Json(Invalid { detail: [*error] });
                (StatusCode::UNPROCESSABLE_ENTITY, body).into_response()
            }
        }
    }
}

/// FastAPI's 422 body.
#[derive(Serialize)]
struct Invalid {
    detail: [ValidationError; 1],
}

pub(super) type Answer<T> = Result<T, Failure>;

/// One of FastAPI's validation errors, its fields in FastAPI's order.
#[derive(Serialize)]
pub(super) struct ValidationError {
    #[serde(rename = "type")]
    kind: &'static str,
    loc: Value,
    msg: String,
    input: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    ctx: Option<Value>,
}

impl Failure {
    /// Adds the error's context (`{"gt": 0}`...), as pydantic gives it.
    fn with_ctx(mut self, ctx: Value) -> Self {
        if let Failure::Invalid(error) = &mut self {
            error.ctx = Some(ctx);
        }
        self
    }
}

/// A 422 with one validation error at `loc` (e.g. `["query", "path"]`).
pub(super) fn invalid(
    loc: Value,
    kind: &'static str,
    msg: impl Into<String>,
    input: Value,
) -> Failure {
    let error = ValidationError {
        kind,
        loc,
        msg: msg.into(),
        input,
        ctx: None,
    };
    Failure::Invalid(Box::new(error))
}

/// A 422 for a required parameter that is absent.
pub(super) fn missing(place: &str, name: &str) -> Failure {
    invalid(
        json!([place, name]),
        "missing",
        "Field required",
        Value::Null,
    )
}

/// A required query parameter.
pub(super) fn required<'a>(query: &'a HashMap<String, String>, name: &str) -> Answer<&'a str> {
    query
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| missing("query", name))
}

fn parse_request(body: &[u8]) -> Answer<ExecuteBashRequest> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(invalid(
            json!(["body"]),
            "missing",
            "Field required",
            Value::Null,
        ));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        let loc = json!(["body", e.column()]);
        let error = invalid(loc, "json_invalid", "JSON decode error", json!({}));
        error.with_ctx(json!({"error": e.to_string()}))
    })?;
    let Some(fields) = value.as_object() else {
        let msg = "Input should be a valid dictionary or object to extract fields from";
        return Err(invalid(
            json!(["body"]),
            "model_attributes_type",
            msg,
            value,
        ));
    };
    let command = match fields.get("command") {
        Some(Value::String(c)) => c.clone(),
        Some(other) => return Err(not_a_string("command", other)),
        None => {
            return Err(invalid(
                json!(["body", "command"]),
                "missing",
                "Field required",
                value,
            ))
        }
    };
    let cwd = match fields.get("cwd") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) => Some(c.clone()),
        Some(other) => return Err(not_a_string("cwd", other)),
    };
    let timeout = match fields.get("timeout") {
        None => DEFAULT_TIMEOUT,
        Some(t) => integer(t)?,
    };
    Ok(ExecuteBashRequest {
        command,
        cwd,
        timeout,
    })
}

fn not_a_string(field: &str, value: &Value) -> Failure {
    let msg = "Input should be a valid string";
    invalid(json!(["body", field]), "string_type", msg, value.clone())
}

/// The `timeout`: an integer, or a float without a fraction, as pydantic accepts.
fn integer(value: &Value) -> Answer<i64> {
    let loc = json!(["body", "timeout"]);
    if let Some(n) = value.as_i64() {
        return Ok(n);
    }
    if let Value::String(text) = value {
        return int_text(text, loc);
    }
    match value.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        Some(_) => {
            let msg = "Input should be a valid integer, got a number with a fractional part";
            Err(invalid(loc, "int_from_float", msg, value.clone()))
        }
        None => {
            let msg = "Input should be a valid integer";
            Err(invalid(loc, "int_type", msg, value.clone()))
        }
    }
}

/// A command id as stored (32 hex digits), from any UUID spelling.
fn command_id(text: &str, loc: Value) -> Answer<String> {
    uuid::Uuid::parse_str(text)
        .map(|u| u.simple().to_string())
        .map_err(|e| {
            let msg = format!("Input should be a valid UUID, {e}");
            invalid(loc, "uuid_parsing", msg, json!(text)).with_ctx(json!({"error": e.to_string()}))
        })
}

fn parse_filter(query: &HashMap<String, String>) -> Answer<Filter> {
    let param = |name: &str| query.get(name).map(String::as_str);
    let kind = match param("kind__eq") {
        None => None,
        Some("BashCommand") => Some("BashCommand"),
        Some("BashOutput") => Some("BashOutput"),
        Some(other) => {
            let expected = "'BashCommand' or 'BashOutput'";
            let msg = format!("Input should be {expected}");
            let loc = json!(["query", "kind__eq"]);
            let error = invalid(loc, "literal_error", msg, json!(other));
            return Err(error.with_ctx(json!({"expected": expected})));
        }
    };
    let descending = match param("sort_order") {
        None | Some("TIMESTAMP") => false,
        Some("TIMESTAMP_DESC") => true,
        Some(other) => {
            let expected = "'TIMESTAMP' or 'TIMESTAMP_DESC'";
            let msg = format!("Input should be {expected}");
            let error = invalid(json!(["query", "sort_order"]), "enum", msg, json!(other));
            return Err(error.with_ctx(json!({"expected": expected})));
        }
    };
    Ok(Filter {
        kind,
        command_id: param("command_id__eq")
            .map(|c| command_id(c, json!(["query", "command_id__eq"])))
            .transpose()?,
        since: param("timestamp__gte")
            .map(|t| datetime("timestamp__gte", t))
            .transpose()?,
        before: param("timestamp__lt")
            .map(|t| datetime("timestamp__lt", t))
            .transpose()?,
        order_after: param("order__gt")
            .map(|n| int_param("order__gt", n))
            .transpose()?,
        descending,
        page: param("page_id").and_then(|p| p.parse().ok()),
        limit: limit(param("limit"))?,
    })
}

fn int_param(name: &str, text: &str) -> Answer<i64> {
    int_text(text, json!(["query", name]))
}

/// An integer written as text, as pydantic reads it.
fn int_text(text: &str, loc: Value) -> Answer<i64> {
    text.trim().parse().map_err(|_| {
        let msg = "Input should be a valid integer, unable to parse string as an integer";
        invalid(loc, "int_parsing", msg, json!(text))
    })
}

fn limit(text: Option<&str>) -> Answer<usize> {
    let Some(text) = text else {
        return Ok(MAX_PAGE);
    };
    let n = int_param("limit", text)?;
    let loc = json!(["query", "limit"]);
    if n <= 0 {
        let msg = "Input should be greater than 0";
        let error = invalid(loc, "greater_than", msg, json!(text));
        return Err(error.with_ctx(json!({"gt": 0})));
    }
    if n > MAX_PAGE as i64 {
        let msg = "Input should be less than or equal to 100";
        let error = invalid(loc, "less_than_equal", msg, json!(text));
        return Err(error.with_ctx(json!({"le": MAX_PAGE})));
    }
    Ok(n as usize)
}

/// An ISO 8601 date or date-time; one with an offset is taken to UTC, one without is UTC.
fn datetime(name: &str, text: &str) -> Answer<NaiveDateTime> {
    let text = text.trim();
    let parsed = chrono::DateTime::parse_from_rfc3339(&text.replacen(' ', "T", 1))
        .map(|t| t.naive_utc())
        .ok()
        .or_else(|| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok())
        .or_else(|| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").ok())
        .or_else(|| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M").ok())
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        });
    parsed.ok_or_else(|| {
        let msg = "Input should be a valid datetime or date, invalid format";
        let loc = json!(["query", name]);
        let error = invalid(loc, "datetime_from_date_parsing", msg, json!(text));
        error.with_ctx(json!({"error": "invalid format"}))
    })
}

// ---------------------------------------------------------------------------------------------
// Routes

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/bash/start_bash_command", post(start_command))
        .route("/bash/execute_bash_command", post(execute_command))
        .route("/bash/bash_events/search", get(search_events))
        .route("/bash/bash_events/", get(batch_get_events))
        .route("/bash/bash_events/{event_id}", get(get_event))
        .route("/bash/bash_events", delete(clear_events))
        .route("/bash/bash_commands/{command_id}/stop", post(stop_command))
}

/// `POST /bash/start_bash_command`: the `BashCommand`, at once.
async fn start_command(State(state): State<AppState>, body: Bytes) -> Answer<Response> {
    let request = parse_request(&body)?;
    let (command, _task) = state.bash.start(request);
    Ok(Json(command.as_ref()).into_response())
}

/// `POST /bash/execute_bash_command`: waits for the command; all its output in one event.
async fn execute_command(State(state): State<AppState>, body: Bytes) -> Answer<Response> {
    let request = parse_request(&body)?;
    let (command, task) = state.bash.start(request);
    task.await
        .map_err(|e| ApiError::internal(format!("the command's runner failed: {e}")))?;
    let output = state.bash.store().aggregate(&command.id);
    let output = output.ok_or_else(|| ApiError::internal("the command's output is gone"))?;
    Ok(Json(output).into_response())
}

/// OpenHands' `BashEventPage`.
#[derive(Serialize)]
struct EventPage {
    items: Vec<BashEvent>,
    next_page_id: Option<String>,
}

/// `GET /bash/bash_events/search`: `BashEventPage`.
async fn search_events(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer<Response> {
    let filter = parse_filter(&query)?;
    let (items, next_page_id) = state.bash.store().search(&filter);
    Ok(Json(EventPage {
        items,
        next_page_id,
    })
    .into_response())
}

/// `GET /bash/bash_events/` with a JSON list of ids: each event or `null`.
async fn batch_get_events(State(state): State<AppState>, body: Bytes) -> Answer<Response> {
    let ids: Vec<String> = serde_json::from_slice(&body).map_err(|_| {
        let input = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
        invalid(
            json!(["body"]),
            "list_type",
            "Input should be a valid list",
            input,
        )
    })?;
    let events: Vec<Option<BashEvent>> = {
        let store = state.bash.store();
        ids.iter().map(|id| store.get(id)).collect()
    };
    Ok(Json(events).into_response())
}

/// `GET /bash/bash_events/{event_id}`.
async fn get_event(
    State(state): State<AppState>,
    UrlPath(event_id): UrlPath<String>,
) -> Answer<Response> {
    let event = state.bash.store().get(&event_id);
    let event = event.ok_or_else(|| ApiError::not_found("Not Found"))?;
    Ok(Json(event).into_response())
}

/// `DELETE /bash/bash_events`: `{"cleared_count": n}`.
async fn clear_events(State(state): State<AppState>) -> Json<Value> {
    let count = state.bash.store().clear();
    Json(json!({"cleared_count": count}))
}

/// `POST /bash/bash_commands/{command_id}/stop`: `{"success": true}`, or 404.
async fn stop_command(
    State(state): State<AppState>,
    UrlPath(command_id): UrlPath<String>,
) -> Answer<Json<Value>> {
    let id = self::command_id(&command_id, json!(["path", "command_id"]))?;
    let found = state.bash.store().stop(&id);
    found.ok_or_else(|| ApiError::not_found("Not Found"))?;
    Ok(Json(json!({"success": true})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_never_split_a_character() {
        let mut out = "aé".as_bytes().to_vec();
        out.pop(); // half of é
        let mut err = Vec::new();
        let pieces = take_pieces(&mut out, &mut err, Flush::Ready);
        assert_eq!(pieces, vec![(Some("a".to_string()), None)]);
        assert_eq!(out, vec![0xC3]);
        out.push(0xA9);
        let pieces = take_pieces(&mut out, &mut err, Flush::All);
        assert_eq!(pieces, vec![(Some("é".to_string()), None)]);
    }

    #[test]
    fn big_output_comes_in_whole_chunks() {
        let mut out = vec![b'x'; CHUNK * 2 + 10];
        let mut err = b"e".to_vec();
        let pieces = take_pieces(&mut out, &mut err, Flush::Whole);
        assert_eq!(pieces.len(), 2);
        assert!(pieces
            .iter()
            .all(|(o, e)| o.as_ref().unwrap().len() == CHUNK && e.is_none()));
        assert_eq!((out.len(), err.len()), (10, 1));
        let last = take_pieces(&mut Vec::new(), &mut Vec::new(), Flush::All);
        assert_eq!(last, vec![(None, None)]);
    }

    fn output_store(chunks: usize) -> (Store, String) {
        let mut store = Store::default();
        let (tx, _rx) = oneshot::channel();
        let request = ExecuteBashRequest {
            command: "x".into(),
            cwd: None,
            timeout: 1,
        };
        let id = store.add_command(request, tx).id.clone();
        for i in 0..chunks {
            let text = format!("<{i:03}>{}</{i:03}>", "x".repeat(CHUNK - 11));
            store.add_output(&id, vec![(Some(text), None)], None);
        }
        store.add_output(&id, vec![(Some("end".into()), None)], Some(0));
        (store, id)
    }

    #[test]
    fn output_is_capped_keeping_head_and_tail() {
        let (store, id) = output_store(14);
        let all = store.aggregate(&id).unwrap();
        let stdout = all.stdout.unwrap();
        assert!(stdout.len() <= HEAD + TAIL + 100, "{}", stdout.len());
        assert!(stdout.starts_with("<000>x"));
        assert!(stdout.ends_with("x</013>end"));
        // The first 5 MiB (chunks 0-4), a note, then the last 5 MiB (chunks 10-13 and "end").
        let dropped = 5 * CHUNK;
        let note = format!("</004>[sandcrab: {dropped} bytes of output dropped here]\n<010>");
        assert!(stdout.contains(&note));
        assert!(!stdout.contains("<005>") && !stdout.contains("<009>"));
        assert_eq!(all.exit_code, Some(0));
        assert_eq!(all.order, 14);
    }

    #[test]
    fn search_pages_and_filters() {
        let (store, id) = output_store(3);
        let mut filter = Filter {
            command_id: Some(id.clone()),
            limit: 2,
            ..Filter::default()
        };
        let (page, next) = store.search(&filter);
        let orders: Vec<i64> = page
            .iter()
            .map(|e| match e {
                BashEvent::Output(o) => o.order,
                BashEvent::Command(_) => -1,
            })
            .collect();
        assert_eq!(orders, vec![0, 1]);
        filter.page = next.and_then(|p| p.parse().ok());
        let (page, next) = store.search(&filter);
        assert_eq!(page.len(), 2);
        assert!(next.is_none());
        filter.page = None;
        filter.order_after = Some(2);
        let (page, _) = store.search(&filter);
        assert_eq!(page.len(), 1);
    }

    #[test]
    fn datetimes_parse_with_and_without_zone() {
        let a = datetime("t", "2026-01-02T03:04:05.123456Z").ok().unwrap();
        let b = datetime("t", "2026-01-02T03:04:05.123456").ok().unwrap();
        let c = datetime("t", "2026-01-02T05:04:05.123456+02:00")
            .ok()
            .unwrap();
        assert_eq!((a, a), (b, c));
        assert!(datetime("t", "bad").is_err());
    }
}
