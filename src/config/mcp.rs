//! `McpArgs`: the `--mcp-config` flag of `sandcrab run` (action input `mcp-config`), the
//! CLI/action boundary where Claude's `{"mcpServers": {...}}` form is accepted and normalised.

use std::path::Path;

use clap::Args;

use crate::error::BadInput;
use crate::mcp::McpConfig;

#[derive(Debug, Clone, Args)]
pub struct McpArgs {
    /// MCP servers for the agent: JSON text or the path of a JSON file, as OpenHands'
    /// mcp_config ({"name": {"command": ..., "args": [...]}}) or Claude's {"mcpServers": {...}}.
    /// They run where the agent runs; `env` values like "${NAME}" take the variable NAME given
    /// with --forward-env, and nothing else of this environment reaches them.
    #[arg(long, env = "SANDCRAB_MCP_CONFIG")]
    pub mcp_config: Option<String>,
}

impl McpArgs {
    /// The servers asked for (none when the flag is absent or blank).
    pub fn resolve(&self) -> Result<McpConfig, BadInput> {
        let Some(given) = self.mcp_config.as_deref().map(str::trim) else {
            return Ok(McpConfig::new());
        };
        if given.is_empty() {
            return Ok(McpConfig::new());
        }
        let text = if given.starts_with('{') {
            given.to_string()
        } else {
            std::fs::read_to_string(Path::new(given)).map_err(|e| {
                BadInput::new(format!(
                    "cannot read --mcp-config {given}: {e}; give JSON text or the path of a JSON file"
                ))
            })?
        };
        crate::mcp::parse_mcp_config(&text).map_err(|e| BadInput::new(format!("--mcp-config: {e}")))
    }
}

impl super::RunConfig {
    /// The secrets the MCP servers name (`${NAME}` in `env`/`headers`), with their values from
    /// `--forward-env`: the only way a value of this environment reaches a server.
    pub fn mcp_secrets(&self) -> Vec<(String, String)> {
        let names = crate::mcp::config::secret_names(&self.mcp);
        self.forward_env
            .iter()
            .filter(|(name, _)| names.contains(name))
            .cloned()
            .collect()
    }
}
