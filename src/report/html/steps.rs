//! The conversation as the page shows it: events in order, each action with its thought, its
//! arguments, and the observation or error that answered it (matched by tool call id), messages,
//! condensations and errors between them. Works on the JSON of the events, so an OpenHands SDK
//! trajectory reads the same, and an event kind this version does not know still shows.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use super::chart::Call;
use super::text::{clean, fold, preview, Folded};
use crate::protocol::event::text_of;

/// One block of the conversation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Entry {
    /// `action`, `message`, `condensation`, `error`, `note` or `other`.
    pub kind: &'static str,
    /// The action's number (1, 2, ...) for actions.
    pub n: usize,
    /// `HH:MM:SS` of the event.
    pub time: String,
    /// Who spoke (messages), the tool (actions), the event kind (others).
    pub label: String,
    /// One line: what the action did, the error code, the note.
    pub title: String,
    pub thought: Option<Folded>,
    pub reasoning: Option<Folded>,
    /// The terminal command, or the action's arguments as JSON.
    pub command: Option<Folded>,
    pub args: Option<Folded>,
    /// Multi-line text arguments (file contents, edits), shown as code.
    pub code: Option<Folded>,
    pub body: Option<Folded>,
    pub observation: Option<Observation>,
    pub error: Option<Folded>,
    /// Tokens and cost of the model call that chose this action.
    pub usage: Option<String>,
    pub risk: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Observation {
    pub text: Folded,
    pub is_error: bool,
    pub exit_code: Option<i64>,
    /// Seconds from the action to its observation.
    pub took: Option<String>,
}

/// The entries of `events`; `calls` give each action the usage of its model call.
pub fn entries(events: &[Value], calls: &[Call]) -> Vec<Entry> {
    let answers = answers(events);
    let mut usage_shown: HashMap<&str, ()> = HashMap::new();
    let mut out = Vec::new();
    let mut actions = 0;
    for event in events {
        let kind = event["kind"].as_str().unwrap_or("?");
        let time = time_of(event);
        let entry = match kind {
            "ActionEvent" => {
                actions += 1;
                let mut e = action(event, actions, &answers);
                let response = event["llm_response_id"].as_str().unwrap_or_default();
                if !response.is_empty() && usage_shown.insert(response, ()).is_none() {
                    e.usage = calls
                        .iter()
                        .find(|c| c.response_id == response)
                        .map(usage_line);
                }
                e
            }
            "MessageEvent" => message(event),
            // Shown with their action.
            "ObservationEvent" | "AgentErrorEvent" | "UserRejectObservation"
                if answers.contains_key(call_id(event)) =>
            {
                continue;
            }
            "ObservationEvent" | "AgentErrorEvent" | "UserRejectObservation" => Entry {
                kind: "error",
                label: kind.into(),
                title: format!("answer to an unknown call: {}", event["tool_name"]),
                body: Some(fold(&answer_text(event))),
                ..Entry::default()
            },
            "Condensation" => condensation(event),
            "CondensationRequest" => note("the history is to be condensed before the next call"),
            "ConversationErrorEvent" => Entry {
                kind: "error",
                label: "conversation error".into(),
                title: clean(event["code"].as_str().unwrap_or("")),
                body: Some(fold(event["detail"].as_str().unwrap_or(""))),
                ..Entry::default()
            },
            "PauseEvent" => note("paused"),
            "SystemPromptEvent" | "ConversationStateUpdateEvent" => continue,
            other => Entry {
                kind: "other",
                label: clean(other),
                body: Some(fold(
                    &serde_json::to_string_pretty(event).unwrap_or_default(),
                )),
                ..Entry::default()
            },
        };
        out.push(Entry { time, ..entry });
    }
    out
}

/// The observations and errors of the trajectory, by tool call id.
fn answers(events: &[Value]) -> HashMap<&str, &Value> {
    events
        .iter()
        .filter(|e| {
            matches!(
                e["kind"].as_str(),
                Some("ObservationEvent" | "AgentErrorEvent" | "UserRejectObservation")
            )
        })
        .filter(|e| !call_id(e).is_empty())
        .map(|e| (call_id(e), e))
        .collect()
}

fn call_id(event: &Value) -> &str {
    event["tool_call_id"].as_str().unwrap_or_default()
}

fn action(event: &Value, n: usize, answers: &HashMap<&str, &Value>) -> Entry {
    let tool = event["tool_name"].as_str().unwrap_or("?");
    let action = &event["action"];
    let args: Value = if action.is_object() {
        action.clone()
    } else {
        // No action: the call could not be parsed; show what the model sent.
        serde_json::from_str(event["tool_call"]["arguments"].as_str().unwrap_or("null"))
            .unwrap_or_else(|_| event["tool_call"]["arguments"].clone())
    };
    let thought = text_of(event["thought"].as_array().map_or(&[][..], |v| v));
    let summary = event["summary"].as_str().unwrap_or("");
    let summary = summary
        .strip_prefix(&format!("{tool}: "))
        .unwrap_or(summary);
    // OpenHands' summaries are the tool's name and its arguments as JSON: the command or path
    // reads better.
    let summary = if summary.starts_with('{') {
        ""
    } else {
        summary
    };
    let (command, args_shown, body) = match tool {
        "terminal" | "execute_bash" | "bash" => (args["command"].as_str().map(fold), None, None),
        "finish" => (None, None, args["message"].as_str().map(fold)),
        "think" => (None, None, args["thought"].as_str().map(fold)),
        _ => (None, Some(fold(&pretty_args(&args))), None),
    };
    let title = if summary.is_empty() {
        let what: Vec<&str> = [&args["command"], &args["path"]]
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        preview(&what.join(" "), 120)
    } else {
        preview(summary, 120)
    };
    let mut entry = Entry {
        kind: "action",
        n,
        label: clean(tool),
        title,
        thought: (!thought.trim().is_empty()).then(|| fold(&thought)),
        reasoning: event["reasoning_content"]
            .as_str()
            .filter(|r| !r.trim().is_empty())
            .map(fold),
        code: args_shown
            .is_some()
            .then(|| multiline_args(&args))
            .filter(|t| !t.is_empty())
            .map(|t| fold(&t)),
        command,
        args: args_shown,
        body,
        risk: event["security_risk"]
            .as_str()
            .filter(|r| !matches!(*r, "UNKNOWN" | "LOW" | ""))
            .map(clean),
        ..Entry::default()
    };
    if let Some(answer) = answers.get(call_id(event)) {
        if answer["kind"] == "ObservationEvent" {
            let obs = &answer["observation"];
            entry.observation = Some(Observation {
                text: fold(&answer_text(answer)),
                is_error: obs["is_error"] == true,
                exit_code: obs["exit_code"]
                    .as_i64()
                    .or_else(|| obs["metadata"]["exit_code"].as_i64()),
                took: seconds_between(event, answer),
            });
        } else {
            entry.error = Some(fold(&answer_text(answer)));
        }
    }
    entry
}

/// Arguments as JSON, without the `kind` tag, empty fields and multi-line texts (shown as
/// text by [`multiline_args`]).
fn pretty_args(args: &Value) -> String {
    let mut args = args.clone();
    if let Some(map) = args.as_object_mut() {
        map.remove("kind");
        map.retain(|_, v| !v.is_null() && !v.as_str().is_some_and(|s| s.contains('\n')));
    }
    serde_json::to_string_pretty(&args).unwrap_or_default()
}

/// The multi-line text arguments (a file's new content, an edit's old and new text) as
/// `name:` followed by the text, so code reads as code rather than as a JSON string.
fn multiline_args(args: &Value) -> String {
    let Some(map) = args.as_object() else {
        return String::new();
    };
    map.iter()
        .filter_map(|(k, v)| v.as_str().filter(|s| s.contains('\n')).map(|s| (k, s)))
        .map(|(k, s)| format!("{k}:\n{}", s.trim_end()))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// What an observation, error or rejection says.
fn answer_text(event: &Value) -> String {
    match event["kind"].as_str() {
        Some("AgentErrorEvent") => event["error"].as_str().unwrap_or("").to_string(),
        Some("UserRejectObservation") => format!(
            "rejected: {}",
            event["rejection_reason"].as_str().unwrap_or("")
        ),
        _ => {
            let obs = &event["observation"];
            let text = text_of(obs["content"].as_array().map_or(&[][..], |v| v));
            if text.is_empty() {
                obs["output"].as_str().unwrap_or("").to_string()
            } else {
                text
            }
        }
    }
}

fn message(event: &Value) -> Entry {
    let m = &event["llm_message"];
    let text = text_of(m["content"].as_array().map_or(&[][..], |v| v));
    let role = m["role"].as_str().unwrap_or("?");
    Entry {
        kind: "message",
        label: clean(if event["source"] == "agent" {
            "agent"
        } else {
            role
        }),
        body: Some(fold(&text)),
        reasoning: m["reasoning_content"]
            .as_str()
            .filter(|r| !r.trim().is_empty())
            .map(fold),
        ..Entry::default()
    }
}

fn condensation(event: &Value) -> Entry {
    let forgotten = event["forgotten_event_ids"].as_array().map_or(0, Vec::len);
    Entry {
        kind: "condensation",
        label: "condensation".into(),
        title: format!("{forgotten} earlier events condensed"),
        body: event["summary"].as_str().map(fold),
        ..Entry::default()
    }
}

fn note(text: &str) -> Entry {
    Entry {
        kind: "note",
        label: "note".into(),
        title: text.into(),
        ..Entry::default()
    }
}

fn usage_line(c: &Call) -> String {
    let cached = if c.cache_read > 0 {
        format!(" ({} cached)", c.cache_read)
    } else {
        String::new()
    };
    let cost = c.cost.map_or(String::new(), |v| format!(" · ${v:.4}"));
    let latency = c.latency.map_or(String::new(), |s| format!(" · {s:.2} s"));
    format!(
        "{} in{cached} · {} out{cost}{latency}",
        c.prompt, c.completion
    )
}

/// `HH:MM:SS` of an event's ISO timestamp.
fn time_of(event: &Value) -> String {
    let ts = event["timestamp"].as_str().unwrap_or("");
    ts.split_once('T')
        .map(|(_, t)| t.chars().take(8).collect())
        .unwrap_or_default()
}

fn seconds_between(from: &Value, to: &Value) -> Option<String> {
    let parse = |e: &Value| {
        let ts = e["timestamp"].as_str()?;
        chrono::NaiveDateTime::parse_from_str(ts.trim_end_matches('Z'), "%Y-%m-%dT%H:%M:%S%.f").ok()
    };
    let d = parse(to)? - parse(from)?;
    let ms = d.num_milliseconds();
    (ms >= 0).then(|| format!("{:.2} s", ms as f64 / 1000.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn action_event(id: &str, tool: &str, args: Value) -> Value {
        json!({"kind": "ActionEvent", "id": id, "timestamp": "2026-11-30T10:00:00.000000",
            "source": "agent", "thought": [{"type": "text", "text": "let me look"}],
            "action": args, "tool_name": tool, "tool_call_id": format!("call-{id}"),
            "tool_call": {"id": format!("call-{id}"), "name": tool, "arguments": "{}"},
            "llm_response_id": format!("resp-{id}"), "summary": format!("{tool}: doing {id}")})
    }

    #[test]
    fn actions_carry_their_observation_error_and_usage() {
        let events = vec![
            json!({"kind": "MessageEvent", "source": "user", "timestamp": "2026-11-30T09:59:59.0",
                "llm_message": {"role": "user", "content": [{"type": "text", "text": "fix it"}]}}),
            action_event(
                "a",
                "terminal",
                json!({"kind": "TerminalAction", "command": "ls"}),
            ),
            json!({"kind": "ObservationEvent", "tool_name": "terminal", "tool_call_id": "call-a",
                "timestamp": "2026-11-30T10:00:01.500000", "action_id": "a",
                "observation": {"content": [{"type": "text", "text": "a.txt"}],
                    "is_error": false, "metadata": {"exit_code": 0}}}),
            action_event(
                "b",
                "file_editor",
                json!({"command": "view", "path": "/w/a.txt", "kind": "X"}),
            ),
            json!({"kind": "AgentErrorEvent", "tool_name": "file_editor", "tool_call_id": "call-b",
                "error": "no such file"}),
            json!({"kind": "Condensation", "forgotten_event_ids": ["1", "2"], "summary": "did things",
                "llm_response_id": "r"}),
            json!({"kind": "SomeFutureEvent", "x": 1}),
        ];
        let calls = vec![Call {
            usage: "agent".into(),
            response_id: "resp-a".into(),
            prompt: 100,
            completion: 7,
            cache_read: 60,
            cache_write: 0,
            cost: Some(0.01),
            latency: None,
        }];
        let entries = entries(&events, &calls);
        let kinds: Vec<&str> = entries.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            ["message", "action", "action", "condensation", "other"]
        );
        let ls = &entries[1];
        assert_eq!(
            (ls.n, ls.title.as_str(), ls.time.as_str()),
            (1, "doing a", "10:00:00")
        );
        assert_eq!(ls.command.as_ref().unwrap().head, "ls");
        let obs = ls.observation.as_ref().unwrap();
        assert_eq!((obs.text.head.as_str(), obs.exit_code), ("a.txt", Some(0)));
        assert_eq!(obs.took.as_deref(), Some("1.50 s"));
        assert_eq!(
            ls.usage.as_deref(),
            Some("100 in (60 cached) · 7 out · $0.0100")
        );
        let view = &entries[2];
        assert_eq!(view.error.as_ref().unwrap().head, "no such file");
        assert!(!view.args.as_ref().unwrap().head.contains("\"kind\""));
        assert_eq!(entries[3].title, "2 earlier events condensed");
        assert_eq!(entries[4].label, "SomeFutureEvent");
    }
}
