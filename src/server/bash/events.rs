//! The events of `/api/bash` and their store: OpenHands' `BashCommand` (a command was started)
//! and `BashOutput` (a piece of its output, the last with its exit code), kept in memory,
//! numbered in timestamp order, capped per command and in all, and searched, filtered and paged
//! for the handlers.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use chrono::NaiveDateTime;
use serde::{Serialize, Serializer};
use tokio::sync::oneshot;

/// Output kept per command: its first `HEAD` bytes and its last `TAIL` bytes.
const HEAD: usize = 5 << 20;
const TAIL: usize = 5 << 20;
/// Past these, the oldest finished commands are forgotten.
const MAX_TOTAL_BYTES: usize = 256 << 20;
const MAX_COMMANDS: usize = 10_000;

// ---------------------------------------------------------------------------------------------
// Events

/// OpenHands' `ExecuteBashRequest`.
#[derive(Debug, Clone)]
pub(super) struct ExecuteBashRequest {
    pub(super) command: String,
    pub(super) cwd: Option<String>,
    pub(super) timeout: i64,
}

/// OpenHands' `BashCommand` event: a command was started.
#[derive(Debug, Clone, Serialize)]
pub(super) struct BashCommand {
    pub(super) command: String,
    pub(super) cwd: Option<String>,
    pub(super) timeout: i64,
    pub(super) id: String,
    #[serde(serialize_with = "timestamp")]
    timestamp: NaiveDateTime,
    kind: &'static str,
}

/// OpenHands' `BashOutput` event: a piece of a command's output; the last one has `exit_code`.
#[derive(Debug, Clone, Serialize)]
pub(super) struct BashOutput {
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
pub(super) enum BashEvent {
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
pub(super) type Piece = (Option<String>, Option<String>);

// ---------------------------------------------------------------------------------------------
// The event store

/// What a search asks for.
#[derive(Debug, Default)]
pub(super) struct Filter {
    pub(super) kind: Option<&'static str>,
    pub(super) command_id: Option<String>,
    pub(super) since: Option<NaiveDateTime>,
    pub(super) before: Option<NaiveDateTime>,
    pub(super) order_after: Option<i64>,
    pub(super) descending: bool,
    pub(super) page: Option<u64>,
    pub(super) limit: usize,
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
pub(super) struct Store {
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

    pub(super) fn add_command(
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
    pub(super) fn add_output(
        &mut self,
        command_id: &str,
        pieces: Vec<Piece>,
        exit_code: Option<i32>,
    ) {
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
    pub(super) fn clear(&mut self) -> usize {
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

    pub(super) fn get(&self, id: &str) -> Option<BashEvent> {
        self.ids
            .get(id)
            .and_then(|seq| self.events.get(seq))
            .cloned()
    }

    /// A page of matching events and the id of the next page.
    pub(super) fn search(&self, filter: &Filter) -> (Vec<BashEvent>, Option<String>) {
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
    pub(super) fn stop(&mut self, command_id: &str) -> Option<()> {
        let state = self.commands.get_mut(command_id)?;
        if let Some(stop) = state.stop.take() {
            let _ = stop.send(());
        }
        Some(())
    }

    /// The command's output in one event: the last event's id, order and exit code, with all
    /// the stdout and stderr kept.
    pub(super) fn aggregate(&self, command_id: &str) -> Option<BashOutput> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::bash::service::CHUNK;

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
}
