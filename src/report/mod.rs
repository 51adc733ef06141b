//! What a run reports: `result.json`, `trajectory.jsonl`, `changes.patch`, `report.md` and
//! `report.html` in the output folder, and readable progress on the console as the agent works.

pub mod diffstat;
pub mod html;
pub mod inert;
pub mod markdown;
pub mod progress;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::error::ExitCode;
use crate::protocol::event::Event;
use diffstat::FileStat;

/// How a run ended, as `result.json` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Finished,
    Error,
    Stuck,
    MaxIterations,
    Interrupted,
    /// `--max-budget-usd` was spent (OpenHands' `MaxBudgetReached`).
    MaxBudget,
    /// The agent's changes held a secret of the run; they were withheld.
    SecretInChanges,
    /// An action needed a person's confirmation, which a CI run cannot give
    /// (`--on-confirmation fail`).
    ConfirmationRequired,
}

impl RunStatus {
    pub fn exit_code(self) -> ExitCode {
        match self {
            RunStatus::Finished => ExitCode::Finished,
            RunStatus::Interrupted => ExitCode::Interrupted,
            RunStatus::MaxBudget => ExitCode::BudgetReached,
            RunStatus::SecretInChanges => ExitCode::SecretInChanges,
            _ => ExitCode::AgentFailed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Finished => "finished",
            RunStatus::Error => "error",
            RunStatus::Stuck => "stuck",
            RunStatus::MaxIterations => "max_iterations",
            RunStatus::Interrupted => "interrupted",
            RunStatus::MaxBudget => "max_budget",
            RunStatus::SecretInChanges => "secret_in_changes",
            RunStatus::ConfirmationRequired => "confirmation_required",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Tokens {
    pub prompt: u64,
    pub completion: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub total: u64,
    /// Cache-read tokens over all input tokens, every LLM of the run (`None`: no input yet).
    pub cache_hit_ratio: Option<f64>,
}

/// Milliseconds (fractional) spent in each phase of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub setup_ms: f64,
    pub run_ms: f64,
    /// Of `run_ms`, the time spent waiting for the model's answers.
    pub llm_ms: f64,
    pub report_ms: f64,
    pub total_ms: f64,
}

/// Milliseconds since `start`, rounded to the microsecond.
pub fn ms_since(start: std::time::Instant) -> f64 {
    (start.elapsed().as_secs_f64() * 1e6).round() / 1e3
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceSummary {
    pub kind: String,
    pub working_dir: String,
}

/// Everything `result.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub status: RunStatus,
    pub conversation_id: String,
    pub summary: Option<String>,
    pub error: Option<String>,
    pub model: String,
    pub iterations: u32,
    pub actions: usize,
    pub tokens: Tokens,
    /// USD; null when the price is unknown.
    pub cost: Option<f64>,
    pub changed_files: Vec<FileStat>,
    pub workspace: WorkspaceSummary,
    pub timings: Timings,
    /// Where the repository instructions, skills and hooks came from, and which were used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<crate::agent::repo_context::InstructionsSummary>,
    pub sandcrab_version: &'static str,
}

/// Paths of the files written.
#[derive(Debug, Clone)]
pub struct Outputs {
    pub result: PathBuf,
    pub trajectory: PathBuf,
    pub patch: PathBuf,
    pub report: PathBuf,
    /// `report.html`, the page a person reads.
    pub html: PathBuf,
}

impl Outputs {
    pub fn in_dir(dir: &Path) -> Self {
        Outputs {
            result: dir.join("result.json"),
            trajectory: dir.join("trajectory.jsonl"),
            patch: dir.join("changes.patch"),
            report: dir.join("report.md"),
            html: dir.join("report.html"),
        }
    }
}

/// Writes every output file into `dir`. Events are already redacted; the patch and texts are
/// redacted here with `redact`.
pub fn write_outputs(
    dir: &Path,
    result: &RunResult,
    events: &[Event],
    patch: &str,
    task_list: Option<&serde_json::Value>,
    redact: &dyn Fn(&str) -> String,
) -> Result<Outputs> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the output folder {}", dir.display()))?;
    let out = Outputs::in_dir(dir);
    let mut trajectory = Vec::new();
    for event in events {
        serde_json::to_writer(&mut trajectory, event)?;
        trajectory.push(b'\n');
    }
    write(&out.trajectory, &trajectory)?;
    write(&out.patch, redact(patch).as_bytes())?;
    let report = markdown::report(result, patch, task_list);
    write(&out.report, redact(&report).as_bytes())?;
    let json = serde_json::to_string_pretty(result)?;
    write(&out.result, redact(&json).as_bytes())?;
    // The page is a reader's view: if it cannot be made, the other outputs still stand.
    if let Err(e) = write_html(&out.html, result, events, patch, redact) {
        eprintln!("sandcrab: warning: report.html not written: {e:#}");
    }
    Ok(out)
}

/// Renders `report.html` from inputs redacted one string at a time (HTML escaping could
/// otherwise hide a secret from the redactor); the page is redacted once more as a whole.
fn write_html(
    path: &Path,
    result: &RunResult,
    events: &[Event],
    patch: &str,
    redact: &dyn Fn(&str) -> String,
) -> Result<()> {
    let mut values = Vec::with_capacity(events.len());
    for event in events {
        let mut v = serde_json::to_value(event)?;
        redact_strings(&mut v, redact);
        values.push(v);
    }
    let mut result = serde_json::to_value(result)?;
    redact_strings(&mut result, redact);
    let page = html::render(&values, Some(&result), &redact(patch), redact)?;
    write(path, page.as_bytes())
}

/// Applies `redact` to every string (and key) of `value`.
fn redact_strings(value: &mut serde_json::Value, redact: &dyn Fn(&str) -> String) {
    use serde_json::Value;
    match value {
        Value::String(s) => *s = redact(s),
        Value::Array(items) => items.iter_mut().for_each(|v| redact_strings(v, redact)),
        Value::Object(map) => {
            let old = std::mem::take(map);
            for (k, mut v) in old {
                redact_strings(&mut v, redact);
                map.insert(redact(&k), v);
            }
        }
        _ => {}
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}
