//! Console progress: one line per action and a short line per observation, as the agent
//! works, so a person can follow a run in a CI log. Events arrive already redacted.

use std::io::Write;

use serde_json::Value;

use crate::agent::truncate::one_line;
use crate::protocol::event::{text_of, Event, EventBody, Source};

const LINE: usize = 120;

/// Prints events to stderr as they come.
pub struct Progress {
    actions: usize,
}

impl Progress {
    pub fn new() -> Self {
        Progress { actions: 0 }
    }

    /// The lines for one event (none for bookkeeping events).
    pub fn lines(&mut self, event: &Event) -> Vec<String> {
        match &event.body {
            EventBody::ActionEvent(a) => {
                self.actions += 1;
                let mut lines = Vec::new();
                if let Some(t) = a.thought.first().filter(|t| !t.text.trim().is_empty()) {
                    lines.push(format!("      {}", one_line(&t.text, LINE)));
                }
                let what = a
                    .summary
                    .as_deref()
                    // OpenHands' own summaries start with the tool's name; ours do not.
                    .map_or("(invalid call)".to_string(), |s| {
                        one_line(
                            s.strip_prefix(&format!("{}: ", a.tool_name)).unwrap_or(s),
                            LINE,
                        )
                    });
                lines.push(format!("[{:>3}] {}: {what}", self.actions, a.tool_name));
                lines
            }
            EventBody::ObservationEvent {
                tool_name,
                observation,
                ..
            } => observation_line(tool_name, observation)
                .into_iter()
                .collect(),
            EventBody::AgentErrorEvent { error, .. } => {
                vec![format!("      ✗ {}", one_line(error, LINE))]
            }
            EventBody::UserRejectObservation {
                rejection_reason, ..
            } => vec![format!(
                "      ✗ rejected: {}",
                one_line(rejection_reason, LINE)
            )],
            EventBody::HookExecutionEvent(h) => {
                let verdict = match (h.blocked, h.success) {
                    (true, _) => "blocked",
                    (false, true) => "ok",
                    (false, false) => "failed (not blocking)",
                };
                vec![format!(
                    "[hook] {} {}: {verdict} (exit {})",
                    h.hook_event_type,
                    one_line(&h.hook_command, 80),
                    h.exit_code
                )]
            }
            EventBody::MessageEvent { llm_message, .. } if event.source == Source::Agent => {
                vec![format!(
                    "[msg] {}",
                    one_line(&llm_message.text_content(), LINE)
                )]
            }
            EventBody::ConversationErrorEvent { code, detail, .. } => {
                vec![format!("sandcrab: {code}: {}", one_line(detail, 400))]
            }
            _ => Vec::new(),
        }
    }

    /// Prints the lines of `event` to stderr.
    pub fn print(&mut self, event: &Event) {
        let lines = self.lines(event);
        if lines.is_empty() {
            return;
        }
        let mut err = std::io::stderr().lock();
        for line in lines {
            let _ = writeln!(err, "{line}");
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

fn observation_line(tool: &str, obs: &Value) -> Option<String> {
    let text = text_of(obs["content"].as_array().map_or(&[][..], |v| v));
    let mark = if obs["is_error"] == true {
        "✗"
    } else {
        "→"
    };
    let line = match tool {
        "finish" | "think" => return None,
        "terminal" => terminal_line(obs, &text),
        _ => one_line(&text, LINE),
    };
    Some(format!("      {mark} {line}"))
}

fn terminal_line(obs: &Value, text: &str) -> String {
    let output: Vec<&str> = text
        .lines()
        .filter(|l| {
            !l.starts_with("[Current working directory") && !l.starts_with("[Command finished")
        })
        .filter(|l| !l.trim().is_empty())
        .collect();
    let status = match obs["exit_code"].as_i64() {
        Some(-1) if obs["timeout"] == true => "still running (timed out)".to_string(),
        Some(code) => format!("exit {code}"),
        None => "no exit code".to_string(),
    };
    match output.last() {
        None => format!("{status}, no output"),
        Some(last) if output.len() == 1 => format!("{status}: {}", one_line(last, LINE)),
        Some(last) => format!(
            "{status}, {} lines: … {}",
            output.len(),
            one_line(last, LINE)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn terminal_results_show_exit_code_and_last_line() {
        let obs = json!({"exit_code": 1, "timeout": false});
        let text = "ok a\nFAIL b\n3 of 4 cases ok\n[Current working directory: /w]\n[Command finished with exit code 1]";
        assert_eq!(
            terminal_line(&obs, text),
            "exit 1, 3 lines: … 3 of 4 cases ok"
        );
        assert_eq!(terminal_line(&json!({"exit_code": 0}), "hi"), "exit 0: hi");
        let timed_out = json!({"exit_code": -1, "timeout": true});
        assert_eq!(
            terminal_line(&timed_out, ""),
            "still running (timed out), no output"
        );
    }
}
