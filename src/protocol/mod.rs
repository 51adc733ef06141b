//! The wire: the types sandcrab and OpenHands exchange, and nothing else. Events and the
//! conversation state (what `/api/conversations` serves and the event log stores), the
//! agent-server's request bodies, the LLM message shapes and their usage metrics, and the
//! security risk label.
//!
//! This module imports nothing of the crate (`tests/module_layers.rs` checks it), as codex-rs
//! keeps its protocol crate: every behaviour module may depend on it, it depends on none of
//! them, so no two behaviour modules need each other for a type.

pub mod event;
pub mod llm;
pub mod metrics;
pub mod security;
pub mod server;
pub mod state;
