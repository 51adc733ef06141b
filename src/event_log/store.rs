//! The event store: a conversation's events as JSON lines in
//! `<persistence_dir>/<conversation id>/events.jsonl`, plus `base_state.json`.
//!
//! Each event is appended and flushed as it happens, so a run killed mid-way leaves every
//! finished event on disk; a torn last line (killed mid-write) is skipped on load.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::protocol::event::Event;
use crate::protocol::state::ConversationState;

const EVENTS_FILE: &str = "events.jsonl";
const STATE_FILE: &str = "base_state.json";

/// Appends events and saves state for one conversation.
pub struct EventStore {
    dir: PathBuf,
    events: File,
}

impl EventStore {
    /// Opens (creating if needed) the store of conversation `id` under `persistence_dir`.
    pub fn open(persistence_dir: &Path, id: &str) -> Result<Self> {
        let dir = persistence_dir.join(id);
        fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the conversation folder {}", dir.display()))?;
        let path = dir.join(EVENTS_FILE);
        let events = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(EventStore { dir, events })
    }

    /// The folder holding this conversation's files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one event as a line and flushes it to the OS.
    pub fn append(&mut self, event: &Event) -> Result<()> {
        let mut line = serde_json::to_vec(event)?;
        line.push(b'\n');
        self.events
            .write_all(&line)
            .with_context(|| format!("cannot write to {}", self.dir.join(EVENTS_FILE).display()))
    }

    /// Writes the state snapshot (atomically: temp file, then rename).
    pub fn save_state(&self, state: &ConversationState) -> Result<()> {
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp"));
        fs::write(&tmp, serde_json::to_vec_pretty(state)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        fs::rename(&tmp, self.dir.join(STATE_FILE))?;
        Ok(())
    }

    /// Flushes events to disk (end of a run).
    pub fn sync(&self) -> Result<()> {
        self.events.sync_data()?;
        Ok(())
    }
}

/// Whether conversation `id` has been persisted under `persistence_dir`.
pub fn exists(persistence_dir: &Path, id: &str) -> bool {
    persistence_dir.join(id).join(STATE_FILE).is_file()
}

/// Loads a persisted conversation: its state and its events in order.
pub fn load(persistence_dir: &Path, id: &str) -> Result<(ConversationState, Vec<Event>)> {
    let dir = persistence_dir.join(id);
    let state_path = dir.join(STATE_FILE);
    let state: ConversationState = serde_json::from_slice(
        &fs::read(&state_path).with_context(|| format!("cannot read {}", state_path.display()))?,
    )
    .with_context(|| format!("{} is not a conversation state", state_path.display()))?;
    let events = load_events(&dir.join(EVENTS_FILE))?;
    Ok((state, events))
}

/// Reads events from a JSONL file, skipping a torn last line.
pub fn load_events(path: &Path) -> Result<Vec<Event>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let lines: Vec<String> = BufReader::new(file).lines().collect::<Result<_, _>>()?;
    let mut events = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str::<Event>(line) {
            Ok(event) => events.push(event),
            Err(_) if i + 1 == lines.len() => {
                tracing::warn!("skipping a torn last event line in {}", path.display());
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("{}: line {} is not an event", path.display(), i + 1)
                });
            }
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::event::Event;

    #[test]
    fn appended_events_load_back_and_torn_tail_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = EventStore::open(dir.path(), "c1").unwrap();
        let a = Event::user_message("one");
        let b = Event::user_message("two");
        store.append(&a).unwrap();
        store.append(&b).unwrap();
        let path = dir.path().join("c1").join(EVENTS_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"kind\": \"MessageEv").unwrap();
        let events = load_events(&path).unwrap();
        assert_eq!(events, vec![a, b]);
    }

    #[test]
    fn a_corrupt_middle_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let good = serde_json::to_string(&Event::user_message("x")).unwrap();
        fs::write(&path, format!("garbage\n{good}\n")).unwrap();
        let err = load_events(&path).unwrap_err();
        assert!(format!("{err:#}").contains("line 1"));
    }
}
