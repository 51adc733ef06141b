//! Exit codes and the error kind that maps to "bad input or setup".

/// The process exit codes (documented in the README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// The agent finished.
    Finished = 0,
    /// The agent failed: stuck, out of iterations, or the model failed for good.
    AgentFailed = 1,
    /// Bad input or setup: a missing prompt, an unreadable directory, an unknown model...
    BadInput = 2,
    /// The LLM calls cost the whole `--max-budget-usd`; partial results were written.
    BudgetReached = 3,
    /// The agent's changes held a secret of the run: nothing was committed, pushed or uploaded.
    SecretInChanges = 4,
    /// Stopped by SIGINT/SIGTERM; partial results were written.
    Interrupted = 130,
}

/// The run was stopped (a signal, the time limit) before it started working: exit 130.
#[derive(Debug, thiserror::Error)]
#[error("stopped before the run started: {0}")]
pub struct Interrupted(pub String);

/// An error the user must fix in their input or setup (exit 2). The message is one line:
/// what failed, why, and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

impl BadInput {
    pub fn new(message: impl Into<String>) -> Self {
        BadInput(message.into())
    }
}
