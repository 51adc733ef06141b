//! The summary of forgotten events: one model call without tools (a system prompt asking for
//! OpenHands' summary sections, and the events rendered as `<EVENT>` blocks), with a
//! deterministic fallback when that call itself does not fit the window: every event is
//! shortened (by 0.8 per attempt, as OpenHands' hard reset does), then the oldest events are
//! left out, and as a last resort the summary is built from the events without a model.

use std::time::Instant;

use super::estimate;
use crate::agent::truncate::truncate_middle;
use crate::llm::context_window::is_context_window_error;
use crate::llm::{ChatMessage, ChatRequest, LlmClient, LlmError};
use crate::protocol::event::{text_of, Event, EventBody};
use crate::protocol::metrics::{Metrics, Prices};

/// How much of one event the summary call sees at first: its head and tail (where a command's
/// error usually is). OpenHands shows the first 500 characters of each observation; the whole
/// of a 4 KB test log made every summary call cost as much as five agent steps (the summary's
/// input is written to the prompt cache and never read back), for little gain in the summary.
pub const MAX_EVENT_CHARS: usize = 1_200;
/// Shrink factor per overflowing attempt (OpenHands' `hard_context_reset_context_scaling`).
const SCALING: f64 = 0.8;
/// Overflowing attempts that shrink events before the oldest are left out.
const SHRINK_ATTEMPTS: u32 = 5;
/// Attempts in all before the summary is built without the model.
const MAX_ATTEMPTS: u32 = 10;
const MIN_EVENT_CHARS: usize = 200;

const SYSTEM: &str = "You maintain the working memory of a software agent. Older events of its \
conversation are being removed to free up its context window; the agent will only see your \
summary of them. Write that summary so the agent can continue the task without repeating work. \
Use these sections, in this order, and keep every task ID, file path, command and error message \
that still matters:\n\
USER_CONTEXT: what the user asked for, requirements and constraints\n\
TASK_TRACKING: active tasks with their IDs and statuses (keep the IDs exactly)\n\
COMPLETED: what is done, with results\n\
PENDING: what is left to do\n\
CURRENT_STATE: where the work stands now\n\
CODE_STATE: files and functions touched, data structures\n\
TESTS: failing cases, error messages, outputs\n\
CHANGES: code edits and variable updates\n\
DEPS: dependencies, imports, external calls\n\
VERSION_CONTROL_STATUS: repository state, branch, commits\n\
If a previous summary is given, merge it with the new events. Be concise: no preamble.";

/// A summary and the response it came from.
pub struct Summary {
    pub text: String,
    pub response_id: String,
    /// The model never produced it: the summary was built from the events.
    pub fallback: bool,
}

/// Summarizes `events` with `llm`, each call recorded in `metrics`. `max_input_tokens` is
/// what the summary request may take; overflow errors shrink the input and retry.
pub async fn summarize(
    llm: &dyn LlmClient,
    events: &[&Event],
    max_input_tokens: u64,
    chars_per_token: f64,
    metrics: &mut Metrics,
    prices: Prices,
) -> Result<Summary, LlmError> {
    let mut max_chars = MAX_EVENT_CHARS;
    let mut skip = 0;
    for attempt in 1..=MAX_ATTEMPTS {
        let request = request_for(&events[skip..], max_chars);
        let fits = estimate::tokens(estimate::request_chars(&request), chars_per_token)
            <= max_input_tokens;
        let result = if fits {
            let started = Instant::now();
            let result = llm.complete(&request).await;
            if let Ok(response) = &result {
                metrics.record(response, started.elapsed(), prices);
            }
            Some(result)
        } else {
            None
        };
        match result {
            Some(Ok(response)) => {
                let text = response.content.unwrap_or_default();
                if !text.trim().is_empty() {
                    return Ok(Summary {
                        text,
                        response_id: response.id,
                        fallback: false,
                    });
                }
                break;
            }
            Some(Err(e)) if !is_context_window_error(&e) => return Err(e),
            _ => {}
        }
        // Too big, by the estimate or by the provider's word: shorten, then leave out.
        if attempt <= SHRINK_ATTEMPTS && max_chars > MIN_EVENT_CHARS {
            max_chars = ((max_chars as f64 * SCALING) as usize).max(MIN_EVENT_CHARS);
        } else if events.len() - skip > 1 {
            skip += (events.len() - skip).div_ceil(4);
        }
    }
    Ok(Summary {
        text: mechanical_summary(events),
        response_id: format!("condenser-fallback-{}", uuid::Uuid::new_v4().simple()),
        fallback: true,
    })
}

fn request_for(events: &[&Event], max_chars: usize) -> ChatRequest {
    ChatRequest {
        messages: vec![
            ChatMessage::system(SYSTEM),
            ChatMessage::user(render(events, max_chars)),
        ],
        tools: Vec::new(),
        conversation_id: None,
    }
}

/// The events as the summary call reads them; a previous summary is marked as such.
pub fn render(events: &[&Event], max_chars: usize) -> String {
    let mut out = String::new();
    for event in events {
        let (label, text) = describe(event);
        if event.id.ends_with("-summary") {
            out.push_str("<PREVIOUS SUMMARY>\n");
            out.push_str(&truncate_middle(&text, max_chars.saturating_mul(4)));
            out.push_str("\n</PREVIOUS SUMMARY>\n");
            continue;
        }
        out.push_str(&format!("<EVENT id={} kind={label}>\n", event.id));
        out.push_str(&truncate_middle(&text, max_chars));
        out.push_str("\n</EVENT>\n");
    }
    out
}

/// A kind label and the text of an event.
fn describe(event: &Event) -> (&'static str, String) {
    match &event.body {
        EventBody::MessageEvent { llm_message, .. } => (
            "MessageEvent",
            format!("{}: {}", llm_message.role, llm_message.text_content()),
        ),
        EventBody::ActionEvent(a) => {
            let thought: Vec<&str> = a.thought.iter().map(|t| t.text.as_str()).collect();
            let mut text = format!("{} {}", a.tool_name, a.tool_call.arguments);
            if !thought.is_empty() {
                text = format!("{}\n{text}", thought.join("\n"));
            }
            ("ActionEvent", text)
        }
        EventBody::ObservationEvent {
            tool_name,
            observation,
            ..
        } => {
            let content = text_of(observation["content"].as_array().map_or(&[][..], |v| v));
            (
                "ObservationEvent",
                format!("{tool_name} result:\n{content}"),
            )
        }
        EventBody::AgentErrorEvent {
            tool_name, error, ..
        } => ("AgentErrorEvent", format!("{tool_name} error: {error}")),
        EventBody::SystemPromptEvent { system_prompt, .. } => {
            ("SystemPromptEvent", system_prompt.text.clone())
        }
        _ => ("Event", String::new()),
    }
}

/// A summary made without the model: the previous summary and one line per event.
fn mechanical_summary(events: &[&Event]) -> String {
    let mut out = String::from(
        "Summary of earlier events (made without the model: the summary request did not fit \
         its context window). Check the current state before relying on it.\n",
    );
    for event in events {
        let (label, text) = describe(event);
        if event.id.ends_with("-summary") {
            out.push_str(&truncate_middle(&text, 2_000));
            out.push('\n');
            continue;
        }
        let line = crate::agent::truncate::one_line(&text, 160);
        out.push_str(&format!("- {label}: {line}\n"));
    }
    truncate_middle(&out, 8_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::event::Source;

    #[test]
    fn render_truncates_events_and_marks_the_previous_summary() {
        let mut previous = Event::message(Source::Environment, "user", "earlier work");
        previous.id = "c1-summary".into();
        let long = Event::user_message("x".repeat(1000));
        let text = render(&[&previous, &long], 100);
        assert!(text.starts_with("<PREVIOUS SUMMARY>\nuser: earlier work"));
        assert!(text.contains("characters truncated"));
        assert!(text.len() < 400, "{}", text.len());
    }
}
