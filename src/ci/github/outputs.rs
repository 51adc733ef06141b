//! The step outputs `sandcrab run` writes to `GITHUB_OUTPUT` in a GitHub Action: their names
//! ([`Output`]) and the values of `conclusion` ([`Conclusion`]). action.yml's `outputs` and the
//! README declare exactly these; tests/action_manifest.rs fails when they drift apart.

use std::path::Path;

use super::commands;

/// One step output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// How the job ended: a [`Conclusion`].
    Conclusion,
    /// Why a run was skipped or refused.
    Reason,
    /// The branch pushed with the agent's changes.
    Branch,
    /// The pull request opened.
    PrUrl,
    /// The comment that reports the run.
    CommentUrl,
    /// The model cost in USD.
    Cost,
    /// The path of result.json.
    ResultFile,
}

impl Output {
    pub const ALL: &'static [Output] = &[
        Output::Conclusion,
        Output::Reason,
        Output::Branch,
        Output::PrUrl,
        Output::CommentUrl,
        Output::Cost,
        Output::ResultFile,
    ];

    /// The name in action.yml.
    pub fn name(self) -> &'static str {
        match self {
            Output::Conclusion => "conclusion",
            Output::Reason => "reason",
            Output::Branch => "branch",
            Output::PrUrl => "pr-url",
            Output::CommentUrl => "comment-url",
            Output::Cost => "cost",
            Output::ResultFile => "result-file",
        }
    }
}

/// The value of the `conclusion` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conclusion {
    /// The agent finished and everything was published.
    Success,
    /// The agent did not finish, or publishing failed (the step fails too).
    Failure,
    /// Nothing in the event asked for a run.
    Skipped,
    /// The sender may not run sandcrab.
    Refused,
}

impl Conclusion {
    pub const ALL: &'static [Conclusion] = &[
        Conclusion::Success,
        Conclusion::Failure,
        Conclusion::Skipped,
        Conclusion::Refused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Conclusion::Success => "success",
            Conclusion::Failure => "failure",
            Conclusion::Skipped => "skipped",
            Conclusion::Refused => "refused",
        }
    }
}

/// Appends `outputs` to the `GITHUB_OUTPUT` file, when the job has one; a failure is a warning.
pub fn write(file: Option<&Path>, outputs: &[(Output, String)]) {
    let Some(path) = file else { return };
    let named: Vec<(&str, String)> = outputs.iter().map(|(o, v)| (o.name(), v.clone())).collect();
    if let Err(e) = commands::write_outputs(path, &named) {
        eprintln!(
            "sandcrab: warning: cannot write the outputs {}: {e}",
            path.display()
        );
    }
}
