//! `report.md`: the run as a person reads it (and as the PR comment shows it): outcome,
//! the agent's summary, changed files, the diff, the task list and the figures.

use std::fmt::Write;

use serde_json::Value;

use super::inert::inert;
use super::{RunResult, RunStatus};
use crate::agent::truncate::truncate_middle;

/// Diff text kept in the report; GitHub comments stop at 65 536 characters.
const MAX_DIFF_CHARS: usize = 40_000;

pub fn report(result: &RunResult, patch: &str, task_list: Option<&Value>) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "## sandcrab: {}\n", headline(result.status));
    if let Some(summary) = result.summary.as_deref().filter(|s| !s.trim().is_empty()) {
        let _ = writeln!(md, "{}\n", summary_markdown(summary));
    }
    if let Some(error) = &result.error {
        let _ = writeln!(
            md,
            "> **Error:** {}\n",
            inert(&error.replace('\n', " "), None)
        );
    }
    changes_section(&mut md, result, patch);
    if let Some(tasks) = task_list.and_then(render_tasks) {
        let _ = writeln!(md, "**Tasks**\n\n{tasks}");
    }
    if let Some(line) = instructions_line(result) {
        let _ = writeln!(md, "<sub>{line}</sub>\n");
    }
    let _ = writeln!(md, "<sub>{}</sub>", figures(result));
    md
}

/// Which repository instruction files and hooks the agent got, and from where.
fn instructions_line(result: &RunResult) -> Option<String> {
    let i = result.instructions.as_ref()?;
    let mut used: Vec<String> = i.files.clone();
    used.extend(i.hooks.clone());
    if used.is_empty() {
        return None;
    }
    let names: Vec<String> = used
        .iter()
        .map(|f| format!("`{}`", f.replace('`', "'")))
        .collect();
    Some(inert(
        &format!(
            "Repository instructions from {}: {}",
            i.from,
            names.join(", ")
        ),
        None,
    ))
}

/// The agent's summary as the report shows it: trimmed, made inert (see [`super::inert`]).
pub fn summary_markdown(summary: &str) -> String {
    inert(summary.trim(), None)
}

fn headline(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Finished => "✅ finished",
        RunStatus::Error => "❌ failed",
        RunStatus::Stuck => "❌ stuck",
        RunStatus::MaxIterations => "❌ out of iterations",
        RunStatus::Interrupted => "⏹️ interrupted",
        RunStatus::MaxBudget => "💸 budget spent",
        RunStatus::SecretInChanges => "⛔ changes withheld: they hold a secret of this run",
        RunStatus::ConfirmationRequired => "✋ stopped: an action needed a confirmation",
    }
}

fn changes_section(md: &mut String, result: &RunResult, patch: &str) {
    if result.changed_files.is_empty() {
        let _ = writeln!(md, "No files changed.\n");
        return;
    }
    let (added, removed) = result
        .changed_files
        .iter()
        .fold((0, 0), |(a, r), f| (a + f.added, r + f.removed));
    let n = result.changed_files.len();
    let plural = if n == 1 { "" } else { "s" };
    let _ = writeln!(md, "**Changes:** {n} file{plural}, +{added} −{removed}\n");
    let _ = writeln!(md, "| File | + | − |\n|---|---:|---:|");
    for f in &result.changed_files {
        let (plus, minus) = if f.binary {
            ("bin".to_string(), "bin".to_string())
        } else {
            (f.added.to_string(), f.removed.to_string())
        };
        let _ = writeln!(
            md,
            "| `{}` | {plus} | {minus} |",
            inert(&f.path.replace('|', "\\|").replace('`', "'"), None)
        );
    }
    let diff = truncate_middle(patch, MAX_DIFF_CHARS);
    // A fence longer than any backtick run in the diff: the diff cannot close it.
    let longest = diff.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    let _ = writeln!(
        md,
        "\n<details><summary>Diff</summary>\n\n{fence}diff\n{}\n{fence}\n",
        diff.trim_end()
    );
    if diff.len() < patch.len() {
        let _ = writeln!(
            md,
            "The diff was shortened; the whole patch is in `changes.patch`.\n"
        );
    }
    let _ = writeln!(md, "</details>\n");
}

/// `- [x] title` lines from a task tracker's `task_list`.
pub fn render_tasks(task_list: &Value) -> Option<String> {
    let tasks = task_list.as_array().filter(|t| !t.is_empty())?;
    let mut out = String::new();
    for task in tasks {
        let mark = match task["status"].as_str() {
            Some("done") => "[x]",
            _ => "[ ]",
        };
        let doing = if task["status"] == "in_progress" {
            " (in progress)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "- {mark} {}{doing}",
            inert(
                &task["title"].as_str().unwrap_or("?").replace('\n', " "),
                None
            )
        );
    }
    Some(out)
}

fn figures(result: &RunResult) -> String {
    let cost = result
        .cost
        .map_or("cost unknown".to_string(), |c| format!("${c:.4}"));
    let cache = result.tokens.cache_hit_ratio.map_or(String::new(), |r| {
        format!(" ({:.0}% cache hits)", r * 100.0)
    });
    format!(
        "model <code>{}</code> · {} iterations · {} tokens{cache} · {cost} · {:.1} s · conversation <code>{}</code>",
        result.model,
        result.iterations,
        result.tokens.total,
        result.timings.total_ms / 1000.0,
        result.conversation_id
    )
}
