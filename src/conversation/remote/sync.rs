//! Keeping a `RemoteConversation` in step with the server: taking what the event stream feeds
//! (deduplicated by id, redacted, logged; state updates and `full_state` snapshots applied
//! to status and stats but kept out of the log), and fetching events over REST
//! (`GET .../events/search`, paged by `next_page_id`, since the newest timestamp seen).

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use serde_json::Value;

use super::conversation_path;
use super::socket::Feed;
use super::RemoteConversation;
use crate::protocol::event::{Event, EventBody, Source};
use crate::protocol::metrics::ConversationStats;
use crate::protocol::state::ExecutionStatus;
use crate::workspace::server_api::{ServerApi, ServerApiError};

impl RemoteConversation {
    /// Takes status, stats and limits from a `ConversationInfo`.
    pub(super) fn apply_info(&mut self, info: &Value) {
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

    pub(super) fn set_stats_from(&mut self, value: &Value) {
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
    pub(super) fn drain(&mut self) -> Result<()> {
        while let Ok(feed) = self.feed.try_recv() {
            self.handle(feed)?;
        }
        match &self.fatal {
            Some(msg) => Err(anyhow!("conversation {}: {msg}", self.id)),
            None => Ok(()),
        }
    }

    /// Waits up to `wait` for something from the stream; returns whether anything came.
    pub(super) async fn wait_feed(&mut self, wait: Duration) -> Result<bool> {
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
    pub(super) async fn sync_events(&mut self) -> Result<()> {
        let items = search_events(&self.api, &self.id, self.last_ts.as_deref()).await?;
        for item in items {
            self.accept(item)?;
        }
        Ok(())
    }

    pub(super) async fn fetch_info(&mut self) -> Result<Value, ServerApiError> {
        self.api.get_json(&conversation_path(&self.id), &[]).await
    }

    pub(super) fn user_messages(&self) -> usize {
        self.log
            .events()
            .iter()
            .filter(|e| {
                e.source == Source::User && matches!(e.body, EventBody::MessageEvent { .. })
            })
            .count()
    }

    /// Waits (up to 2 s) for a sent message to come back as an event, else fetches it.
    pub(super) async fn await_user_message(&mut self, before: usize) -> Result<()> {
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

/// Every event (since `since`, inclusive), following `next_page_id`.
pub(super) async fn search_events(
    api: &ServerApi,
    id: &str,
    since: Option<&str>,
) -> Result<Vec<Value>, ServerApiError> {
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
