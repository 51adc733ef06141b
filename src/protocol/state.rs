//! The conversation's execution status and the state snapshot persisted beside its events
//! (`base_state.json`), in OpenHands' field names.

use serde::{Deserialize, Serialize};

use super::metrics::ConversationStats;

/// OpenHands' `ConversationExecutionStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionStatus {
    #[default]
    Idle,
    Running,
    Paused,
    WaitingForConfirmation,
    Finished,
    Error,
    Stuck,
}

impl ExecutionStatus {
    /// finished, error and stuck end a run; idle and paused can run again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Finished | Self::Error | Self::Stuck)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::WaitingForConfirmation => "waiting_for_confirmation",
            Self::Finished => "finished",
            Self::Error => "error",
            Self::Stuck => "stuck",
        }
    }
}

/// What a resumed run needs besides the events.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConversationState {
    pub id: String,
    pub execution_status: ExecutionStatus,
    /// The model and tools of the agent (informational; a resumed run may change the model).
    pub agent: AgentInfo,
    pub workspace: WorkspaceInfo,
    pub max_iterations: u32,
    pub stuck_detection: bool,
    #[serde(default)]
    pub stats: ConversationStats,
    /// Iterations taken over every run of this conversation.
    #[serde(default)]
    pub iterations: u32,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentInfo {
    pub kind: String,
    pub model: String,
    pub tools: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkspaceInfo {
    pub kind: String,
    pub working_dir: String,
}
