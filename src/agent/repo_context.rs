//! What the agent of a run gets from its repository: the skills and instructions
//! (`agent_context`), the hooks (with the workflow's `verify-command` first), the MCP
//! configuration files of the same trusted source, and the summary the log and the report name.
//! `run::instructions` loads it; a sandbox receives it as data in the create request.

use serde::Serialize;
use serde_json::Value;

use super::hooks::HookConfig;
use super::skills::AgentContext;

/// What the agent of a run gets from its repository (and the workflow's `verify-command`).
#[derive(Debug, Clone, Default)]
pub struct RepoContext {
    pub agent_context: AgentContext,
    /// `verify-command` first, then the repository's hooks.
    pub hooks: HookConfig,
    /// MCP configuration files of the same trusted source: (path, raw text).
    pub mcp_files: Vec<(String, String)>,
    pub summary: Option<InstructionsSummary>,
}

/// `result.json`'s `instructions`: where they came from and which files were used.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct InstructionsSummary {
    pub from: String,
    pub files: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hooks: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub over_cap: Vec<String>,
}

impl RepoContext {
    /// `agent.agent_context` for a create request, when there are skills.
    pub fn agent_context_json(&self) -> Option<Value> {
        (!self.agent_context.is_empty())
            .then(|| serde_json::to_value(&self.agent_context).ok())
            .flatten()
    }

    /// `hook_config` for a create request, when there are hooks.
    pub fn hook_config_json(&self) -> Option<Value> {
        (!self.hooks.is_empty())
            .then(|| serde_json::to_value(&self.hooks).ok())
            .flatten()
    }
}
