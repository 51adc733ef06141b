//! MCP tool servers: the configuration (`config`: OpenHands' `mcp_config` and the Claude-style
//! form of the CLI/action), the client (`client`, on the official Rust SDK `rmcp`; stdio
//! servers and streamable-HTTP ones, the latter over `http`, rmcp's HTTP client trait on the
//! crate's reqwest) and the adapter that makes a server's tools agent tools (`tool`).
//!
//! Servers start where the agent runs (inside the sandbox, under `sandcrab serve`), each within
//! its start-up deadline. A server marked `required` that cannot start fails the conversation
//! with one line; any other is skipped with a warning. Tool names follow OpenHands: with one
//! server the model sees the server's own names, with several `server_tool`.

pub mod client;
pub mod config;
pub mod http;
pub mod tool;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

pub use config::{parse_mcp_config, McpConfig, McpServer};

use crate::agent::tools::Tool;
use client::Connection;
use tool::McpTool;

/// The tools of the started servers, and what was skipped (for the run's warnings).
#[derive(Default)]
pub struct McpTools {
    pub tools: Vec<Arc<dyn Tool>>,
    pub warnings: Vec<String>,
}

/// Starts every enabled server of `config` in `working_dir` (all at once) and gathers their
/// tools. `secrets` (name → value) is where `${NAME}` references of `env` come from.
/// `taken`: names the agent already has; a server tool with one of them is skipped.
pub async fn start(
    config: &McpConfig,
    working_dir: &Path,
    secrets: &BTreeMap<String, String>,
    taken: &[&str],
) -> Result<McpTools, String> {
    let enabled: Vec<(&String, &McpServer)> = config.iter().filter(|(_, s)| s.enabled).collect();
    let prefixed = enabled.len() > 1;
    let started = futures_util::future::join_all(
        enabled
            .iter()
            .map(|(name, server)| Connection::start(name, server, working_dir, secrets)),
    )
    .await;
    let mut out = McpTools::default();
    let mut names: Vec<String> = taken.iter().map(|s| s.to_string()).collect();
    let mut failure = None;
    for ((name, server), result) in enabled.iter().zip(started) {
        let connection = match result {
            Ok(c) => Arc::new(c),
            Err(e) if server.required => {
                failure.get_or_insert(format!("{e} (the server is required)"));
                continue;
            }
            Err(e) => {
                out.warnings
                    .push(format!("{e}; continuing without its tools"));
                continue;
            }
        };
        let mut kept = 0;
        for remote in &connection.tools {
            let exposed = match prefixed {
                true => format!("{name}_{}", remote.name),
                false => remote.name.to_string(),
            };
            if names.contains(&exposed) {
                out.warnings.push(format!(
                    "MCP server '{name}' has a tool '{exposed}' whose name is taken; skipping that tool"
                ));
                continue;
            }
            names.push(exposed.clone());
            out.tools
                .push(Arc::new(McpTool::new(exposed, remote, connection.clone())));
            kept += 1;
        }
        if kept == 0 {
            connection.close().await;
        }
    }
    if let Some(failure) = failure {
        for tool in &out.tools {
            tool.close().await;
        }
        return Err(failure);
    }
    Ok(out)
}
