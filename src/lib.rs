//! sandcrab: runs a coding agent in CI and reports back. See README.md and DESIGN.md.
//!
//! Layout: `config` (the only reader of the environment) → `run` (one run, end to end) over
//! `workspace` (where commands run), `conversation` (events, persistence, the loop),
//! `agent` (prompt, tools, stuck detection), `llm` (model clients) and `report` (outputs).

pub mod agent;
pub mod cancel;
pub mod ci;
pub mod config;
pub mod conversation;
pub mod demo;
pub mod doctor;
pub mod duration;
pub mod error;
pub mod http;
pub mod llm;
pub mod mcp;
pub mod redact;
pub mod report;
pub mod run;
pub mod runner_git;
pub mod server;
pub mod workspace;
