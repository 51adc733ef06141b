//! sandcrab: runs a coding agent in CI and reports back. See README.md and DESIGN.md.
//!
//! Layers, each using only the ones after it (`tests/module_layers.rs` fails on any cycle
//! among these modules, and on `protocol` importing anything of the crate):
//!
//! - `ci`: the GitHub and GitLab flows (trigger, checkout, publish);
//! - `run`: one run, end to end;
//! - `config`: the only reader of the environment and flags; builds the settings below;
//! - `server`: the agent-server (`sandcrab serve`);
//! - `conversation`: the loop, local or streamed from a remote agent-server;
//! - `mcp` (MCP servers as tools) and `report` (outputs);
//! - `agent`: prompt, tools, skills, hooks, security, condenser, stuck detection;
//! - `workspace`: where commands run (local, Docker, Cloud, Runtime API, Apptainer, remote);
//! - `llm` (model clients), `event_log` (events and their store), `cancel` (stopping);
//! - leaves: `protocol` (the wire types: events, state, request bodies, LLM messages),
//!   `redact`, `secret_env`, `error`, `duration`, `runner_git`.

pub mod agent;
pub mod cancel;
pub mod ci;
pub mod config;
pub mod conversation;
pub mod demo;
pub mod doctor;
pub mod duration;
pub mod error;
pub mod event_log;
pub mod http;
pub mod llm;
pub mod mcp;
pub mod protocol;
pub mod redact;
pub mod report;
pub mod run;
pub mod runner_git;
pub mod secret_env;
pub mod server;
pub mod workspace;
