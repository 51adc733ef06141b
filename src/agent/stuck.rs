//! Stuck detection, with OpenHands' patterns and default thresholds, over the events since the
//! last user message: the same action with the same result, the same action failing, an agent
//! talking to itself, and two actions alternating.

use serde_json::Value;

use crate::protocol::event::{text_of, Event, EventBody, Source};

/// How many repetitions make each pattern.
#[derive(Debug, Clone, Copy)]
pub struct StuckThresholds {
    pub action_observation: usize,
    pub action_error: usize,
    pub monologue: usize,
    pub alternating_pattern: usize,
}

impl Default for StuckThresholds {
    fn default() -> Self {
        StuckThresholds {
            action_observation: 4,
            action_error: 3,
            monologue: 3,
            alternating_pattern: 6,
        }
    }
}

/// One action and what came of it, reduced to comparable keys.
#[derive(Debug, PartialEq)]
struct Step {
    action: String,
    result: Option<Outcome>,
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Observed(String),
    Failed,
}

/// A sentence saying why the agent is stuck, or `None`.
pub fn detect(events: &[Event], t: &StuckThresholds) -> Option<String> {
    let start = events
        .iter()
        .rposition(|e| e.source == Source::User && matches!(e.body, EventBody::MessageEvent { .. }))
        .map_or(0, |i| i + 1);
    let recent = &events[start..];
    if monologue(recent) >= t.monologue {
        return Some(format!(
            "the agent sent {} messages in a row without acting",
            t.monologue
        ));
    }
    let steps = steps(recent);
    let tail = |n: usize| (steps.len() >= n).then(|| &steps[steps.len() - n..]);
    if let Some(last) = tail(t.action_observation) {
        if last.iter().all(|s| *s == last[0])
            && matches!(last[0].result, Some(Outcome::Observed(_)))
        {
            return Some(format!(
                "the agent repeated the same action {} times with the same result",
                t.action_observation
            ));
        }
    }
    if let Some(last) = tail(t.action_error) {
        if last
            .iter()
            .all(|s| s.action == last[0].action && s.result == Some(Outcome::Failed))
        {
            return Some(format!(
                "the same action failed {} times in a row",
                t.action_error
            ));
        }
    }
    if let Some(last) = tail(t.alternating_pattern) {
        let (a, b) = (&last[0], &last[1]);
        if a != b
            && last
                .iter()
                .enumerate()
                .all(|(i, s)| s == if i % 2 == 0 { a } else { b })
        {
            return Some(format!(
                "the agent alternated between two actions {} times",
                t.alternating_pattern
            ));
        }
    }
    None
}

/// Agent messages at the end of `events` with no action in between.
fn monologue(events: &[Event]) -> usize {
    events
        .iter()
        .rev()
        .take_while(|e| {
            e.source == Source::Agent && matches!(e.body, EventBody::MessageEvent { .. })
        })
        .count()
}

fn steps(events: &[Event]) -> Vec<Step> {
    let mut out: Vec<(String, Step)> = Vec::new();
    for event in events {
        match &event.body {
            EventBody::ActionEvent(a) => {
                let action = a
                    .action
                    .as_ref()
                    .map_or_else(|| a.tool_call.arguments.clone(), canonical);
                out.push((
                    a.tool_call_id.clone(),
                    Step {
                        action: format!("{}:{action}", a.tool_name),
                        result: None,
                    },
                ));
            }
            EventBody::ObservationEvent {
                tool_call_id,
                observation,
                ..
            } => {
                let text = text_of(observation["content"].as_array().map_or(&[][..], |v| v));
                set_result(&mut out, tool_call_id, Outcome::Observed(text));
            }
            EventBody::AgentErrorEvent { tool_call_id, .. }
            | EventBody::UserRejectObservation { tool_call_id, .. } => {
                set_result(&mut out, tool_call_id, Outcome::Failed)
            }
            _ => {}
        }
    }
    out.into_iter().map(|(_, s)| s).collect()
}

fn set_result(steps: &mut [(String, Step)], call_id: &str, outcome: Outcome) {
    if let Some((_, step)) = steps.iter_mut().rev().find(|(id, _)| id == call_id) {
        step.result = Some(outcome);
    }
}

fn canonical(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::event::test_terminal_action;
    use serde_json::json;

    fn act(id: &str, cmd: &str) -> Event {
        let action = json!({"kind": "TerminalAction", "command": cmd});
        test_terminal_action(id, id, action, "{}")
    }

    fn obs(id: &str, text: &str) -> Event {
        Event::new(
            Source::Environment,
            EventBody::ObservationEvent {
                tool_name: "terminal".into(),
                tool_call_id: id.into(),
                observation: json!({"content": [{"type": "text", "text": text}]}),
                action_id: String::new(),
                extended_content: vec![],
            },
        )
    }

    fn run(pairs: &[(&str, Option<&str>)]) -> Vec<Event> {
        let mut events = vec![Event::user_message("go")];
        for (i, (cmd, out)) in pairs.iter().enumerate() {
            let id = format!("c{i}");
            events.push(act(&id, cmd));
            events.push(match out {
                Some(text) => obs(&id, text),
                None => Event::agent_error("terminal", &id, "boom"),
            });
        }
        events
    }

    #[test]
    fn four_identical_steps_are_stuck_three_are_not() {
        let t = StuckThresholds::default();
        assert!(detect(&run(&[("ls", Some("a")); 3]), &t).is_none());
        assert!(detect(&run(&[("ls", Some("a")); 4]), &t)
            .unwrap()
            .contains("same action 4 times"));
    }

    #[test]
    fn same_output_for_different_commands_is_not_stuck() {
        let pairs: Vec<_> = ["a", "b", "c", "d"]
            .iter()
            .map(|c| (*c, Some("same")))
            .collect();
        assert!(detect(&run(&pairs), &StuckThresholds::default()).is_none());
    }

    #[test]
    fn repeated_errors_are_stuck() {
        let reason = detect(&run(&[("ls", None); 3]), &StuckThresholds::default()).unwrap();
        assert!(reason.contains("failed 3 times"));
    }

    #[test]
    fn alternating_actions_are_stuck() {
        let pairs = [("a", Some("x")), ("b", Some("y"))].repeat(3);
        assert!(detect(&run(&pairs), &StuckThresholds::default())
            .unwrap()
            .contains("alternated"));
    }

    #[test]
    fn a_new_user_message_resets_detection() {
        let mut events = run(&[("ls", Some("a")); 4]);
        events.push(Event::user_message("try again"));
        assert!(detect(&events, &StuckThresholds::default()).is_none());
    }

    #[test]
    fn monologue_is_stuck() {
        let mut events = vec![Event::user_message("go")];
        for _ in 0..3 {
            events.push(Event::message(Source::Agent, "assistant", "hmm"));
        }
        assert!(detect(&events, &StuckThresholds::default())
            .unwrap()
            .contains("messages in a row"));
    }
}
