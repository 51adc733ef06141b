//! The view: what the model sees of a conversation, rebuilt from its events (OpenHands'
//! `View.from_events`). Only events the model reads are in it (system prompt, messages,
//! actions, observations, tool errors); every `Condensation` drops its forgotten ids, and the
//! latest summary goes in as a user message at its `summary_offset`. A `CondensationRequest`
//! after the last `Condensation` is an unhandled request.
//!
//! Because the view is a pure function of the events, a resumed conversation sees exactly the
//! history it saw before it stopped.

use std::borrow::Cow;
use std::collections::HashSet;

use crate::protocol::event::{Event, EventBody, Source};

/// The events the model sees, in order; the summary is the only owned one.
pub struct View<'a> {
    pub events: Vec<Cow<'a, Event>>,
    /// A `CondensationRequest` came after the last `Condensation`.
    pub unhandled_request: bool,
    /// Index of the summary message in `events`, if there is one.
    pub summary_index: Option<usize>,
}

/// Whether the model reads this kind of event.
pub fn is_llm_event(event: &Event) -> bool {
    matches!(
        event.body,
        EventBody::SystemPromptEvent { .. }
            | EventBody::MessageEvent { .. }
            | EventBody::ActionEvent(_)
            | EventBody::ObservationEvent { .. }
            | EventBody::AgentErrorEvent { .. }
            | EventBody::UserRejectObservation { .. }
    )
}

impl<'a> View<'a> {
    /// Builds the view of `events`.
    pub fn from_events(events: &'a [Event]) -> Self {
        let mut forgotten: HashSet<&str> = HashSet::new();
        let mut summary: Option<(&'a Event, &'a str, usize)> = None;
        let mut unhandled_request = false;
        for event in events {
            match &event.body {
                EventBody::Condensation {
                    forgotten_event_ids,
                    summary: text,
                    summary_offset,
                    ..
                } => {
                    forgotten.extend(forgotten_event_ids.iter().map(String::as_str));
                    summary = match (text, summary_offset) {
                        (Some(text), Some(offset)) => Some((event, text.as_str(), *offset)),
                        _ => None,
                    };
                    unhandled_request = false;
                }
                EventBody::CondensationRequest {} => unhandled_request = true,
                _ => {}
            }
        }
        let mut kept: Vec<Cow<'a, Event>> = events
            .iter()
            .filter(|e| is_llm_event(e) && !forgotten.contains(e.id.as_str()))
            .map(Cow::Borrowed)
            .collect();
        let mut summary_index = None;
        if let Some((condensation, text, offset)) = summary {
            let at = offset.min(kept.len());
            kept.insert(at, Cow::Owned(summary_message(condensation, text)));
            summary_index = Some(at);
        }
        View {
            events: kept,
            unhandled_request,
            summary_index,
        }
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Event> {
        self.events.iter().map(|e| e.as_ref())
    }
}

/// The summary as the model reads it: a user message (OpenHands' `CondensationSummaryEvent`,
/// id `<condensation id>-summary`).
pub fn summary_message(condensation: &Event, text: &str) -> Event {
    let mut event = Event::message(Source::Environment, "user", text);
    event.id = summary_id(&condensation.id);
    event.timestamp = condensation.timestamp.clone();
    event
}

pub fn summary_id(condensation_id: &str) -> String {
    format!("{condensation_id}-summary")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condensation(forgotten: &[&str], summary: Option<&str>, offset: Option<usize>) -> Event {
        Event::new(
            Source::Environment,
            EventBody::Condensation {
                forgotten_event_ids: forgotten.iter().map(|s| s.to_string()).collect(),
                summary: summary.map(String::from),
                summary_offset: offset,
                llm_response_id: "r".into(),
            },
        )
    }

    fn msg(id: &str) -> Event {
        let mut e = Event::user_message(id);
        e.id = id.into();
        e
    }

    #[test]
    fn condensations_forget_and_insert_the_latest_summary() {
        let events = vec![
            msg("a"),
            msg("b"),
            msg("c"),
            Event::new(Source::Environment, EventBody::CondensationRequest {}),
            condensation(&["b"], Some("first"), Some(1)),
            msg("d"),
            condensation(&["c"], Some("second"), Some(1)),
            Event::state_update("stats", serde_json::json!({})),
        ];
        let view = View::from_events(&events);
        let texts: Vec<String> = view
            .iter()
            .map(|e| match &e.body {
                EventBody::MessageEvent { llm_message, .. } => llm_message.text_content(),
                _ => e.kind().to_string(),
            })
            .collect();
        assert_eq!(texts, vec!["a", "second", "d"]);
        assert_eq!(view.summary_index, Some(1));
        assert!(!view.unhandled_request);
        assert_eq!(view.events[1].source, Source::Environment);
    }

    #[test]
    fn a_request_after_the_last_condensation_is_unhandled() {
        let events = vec![
            msg("a"),
            condensation(&[], None, None),
            Event::new(Source::Environment, EventBody::CondensationRequest {}),
        ];
        let view = View::from_events(&events);
        assert!(view.unhandled_request);
        assert_eq!(view.len(), 1);
        assert_eq!(view.summary_index, None);
    }
}
