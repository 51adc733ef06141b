//! Which events a condensation forgets: a range after the first `keep_first` events and before
//! a kept tail, with both ends snapped to places where the history may be cut. A cut never
//! separates a tool call from its result, nor splits the calls of one model response (the
//! atomic units of OpenHands' `ToolCallMatchingProperty` and `BatchAtomicityProperty`).

use std::collections::HashSet;
use std::ops::Range;

use crate::protocol::event::{Event, EventBody};

/// `cuts[i]`: the history may be cut just before event `i` (`cuts[len]`: after the last one).
/// Index 0 is never a cut: the system prompt always stays.
pub fn cut_points(events: &[&Event]) -> Vec<bool> {
    let mut cuts = vec![false; events.len() + 1];
    let mut open: HashSet<&str> = HashSet::new();
    let mut last_response: Option<&str> = None;
    for (i, event) in events.iter().enumerate() {
        let continues_response = match &event.body {
            EventBody::ActionEvent(a) => last_response == Some(a.llm_response_id.as_str()),
            _ => false,
        };
        cuts[i] = i > 0 && open.is_empty() && !continues_response;
        match &event.body {
            EventBody::ActionEvent(a) => {
                open.insert(a.tool_call_id.as_str());
                last_response = Some(a.llm_response_id.as_str());
            }
            EventBody::ObservationEvent { tool_call_id, .. }
            | EventBody::AgentErrorEvent { tool_call_id, .. }
            | EventBody::UserRejectObservation { tool_call_id, .. } => {
                open.remove(tool_call_id.as_str());
            }
            _ => last_response = None,
        }
    }
    cuts[events.len()] = !events.is_empty() && open.is_empty();
    cuts
}

/// The range to forget so that at most about `keep_tail` events stay at the end: it starts at
/// the first cut at or after `keep_first` (at least 1) and ends at the first cut at or after
/// `len - keep_tail`. `None` when that leaves nothing to forget.
pub fn forgotten_range(
    events: &[&Event],
    keep_first: usize,
    keep_tail: usize,
) -> Option<Range<usize>> {
    let cuts = cut_points(events);
    let len = events.len();
    let first_cut_from = |from: usize| (from..=len).find(|&i| cuts[i]);
    let start = first_cut_from(keep_first.max(1))?;
    let end = first_cut_from(len.saturating_sub(keep_tail).max(start))?;
    (end > start).then_some(start..end)
}

/// Everything after the system prompt, up to the last cut (OpenHands' hard context reset).
pub fn everything_after_system(events: &[&Event]) -> Option<Range<usize>> {
    let cuts = cut_points(events);
    let end = (1..=events.len()).rev().find(|&i| cuts[i])?;
    (end > 1).then_some(1..end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::event::{test_terminal_action, Source};
    use serde_json::json;

    fn action(call: &str, response: &str) -> Event {
        test_terminal_action(call, response, json!({}), "{}")
    }

    fn observation(call: &str) -> Event {
        Event::new(
            Source::Environment,
            EventBody::ObservationEvent {
                tool_name: "terminal".into(),
                tool_call_id: call.into(),
                observation: json!({"content": []}),
                action_id: "a".into(),
                extended_content: vec![],
            },
        )
    }

    #[test]
    fn cuts_never_split_a_call_from_its_result_or_one_response() {
        let events = [
            Event::message(Source::Agent, "system", "sys"),
            Event::user_message("task"),
            action("c1", "r1"),
            action("c2", "r1"),
            observation("c1"),
            observation("c2"),
            action("c3", "r2"),
            Event::agent_error("terminal", "c3", "bad"),
            action("c4", "r3"),
            observation("c4"),
        ];
        let refs: Vec<&Event> = events.iter().collect();
        let cuts = cut_points(&refs);
        assert_eq!(
            cuts,
            vec![false, true, true, false, false, false, true, false, true, false, true]
        );
        // keep_first 3 falls inside the first response: the range starts after it.
        assert_eq!(forgotten_range(&refs, 3, 3), Some(6..8));
        // A tail target inside a unit moves to the unit's end (fewer kept, never split).
        assert_eq!(forgotten_range(&refs, 2, 3), Some(2..8));
        assert_eq!(forgotten_range(&refs, 2, 9), None);
        assert_eq!(everything_after_system(&refs), Some(1..10));
    }
}
