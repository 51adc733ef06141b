//! Conversations: the agent loop over a workspace, its events and their persistence.
//!
//! The factory rule (OpenHands'): a Local workspace gives a `LocalConversation` (the loop runs
//! in this process); every remote workspace gives a `RemoteConversation` (the loop runs in the
//! sandbox's agent-server and this process streams its events).

pub mod local;
pub mod remote;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Result;
use async_trait::async_trait;

pub use local::{ConversationOptions, LocalConversation, RunEnd};

use crate::event_log::Listener;
use crate::protocol::event::{Event, EventBody, Source};
use crate::protocol::state::ExecutionStatus;
use llm_stats::ConversationStats;

use crate::protocol::metrics as llm_stats;

/// What the runner needs of a conversation, local or remote.
#[async_trait]
pub trait Conversation: Send {
    fn id(&self) -> &str;

    /// Whether it existed before this process opened it.
    fn resumed(&self) -> bool;

    fn status(&self) -> ExecutionStatus;

    /// Every event so far, in order (redacted).
    fn events(&self) -> &[Event];

    fn stats(&self) -> &ConversationStats;

    /// Model calls over every run of the conversation.
    fn iterations(&self) -> u32;

    /// Called with every new event.
    fn add_listener(&mut self, listener: Listener);

    async fn send_message(&mut self, text: &str) -> Result<()>;

    /// Runs until finished, stuck, error, paused or out of iterations.
    async fn run(&mut self) -> Result<RunEnd>;

    /// Setting the flag pauses the run after the current step.
    fn pause_handle(&self) -> Arc<AtomicBool>;

    /// Saves and releases what the conversation holds.
    async fn close(&mut self) -> Result<()>;

    /// The agent's final answer: the `finish` message, or its last plain reply after the last
    /// user message.
    fn final_response(&self) -> Option<String> {
        final_response(self.events())
    }

    /// The text of the last message the user sent.
    fn last_user_message(&self) -> Option<String> {
        self.events().iter().rev().find_map(|e| match &e.body {
            EventBody::MessageEvent { llm_message, .. } if e.source == Source::User => {
                Some(llm_message.text_content())
            }
            _ => None,
        })
    }
}

/// The `finish` message, or the agent's last plain reply, after the last user message.
pub fn final_response(events: &[Event]) -> Option<String> {
    events
        .iter()
        .rev()
        .find_map(|e| match &e.body {
            EventBody::ActionEvent(a) if a.tool_name == "finish" => a
                .action
                .as_ref()
                .and_then(|v| v["message"].as_str())
                .map(String::from),
            EventBody::MessageEvent { llm_message, .. } if e.source == Source::Agent => {
                Some(llm_message.text_content())
            }
            EventBody::MessageEvent { .. } if e.source == Source::User => Some(String::new()),
            _ => None,
        })
        .filter(|s| !s.is_empty())
}
