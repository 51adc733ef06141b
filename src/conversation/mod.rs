//! Conversations: the agent loop over a workspace, its events and their persistence.

pub mod event;
pub mod local;
pub mod log;
pub mod state;
pub mod store;

pub use local::{ConversationOptions, LocalConversation, RunEnd};
