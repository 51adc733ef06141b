//! The event log of a running conversation: events in memory, appended to the store, passed
//! to listeners (progress printing, remote clients), with secrets redacted before any of that.
//! The agent writes to it, a conversation owns it; [`store`] keeps it on disk.

pub mod store;

use anyhow::Result;

use crate::protocol::event::{Event, EventBody};
use crate::redact::Redactor;
use store::EventStore;

/// Called with every new event.
pub type Listener = Box<dyn FnMut(&Event) + Send>;

/// The secrets of a conversation; shared so they can be added while it runs.
pub type SharedRedactor = std::sync::Arc<std::sync::RwLock<Redactor>>;

pub struct EventLog {
    events: Vec<Event>,
    store: Option<EventStore>,
    listeners: Vec<Listener>,
    redactor: SharedRedactor,
}

impl EventLog {
    pub fn new(events: Vec<Event>, store: Option<EventStore>, redactor: Redactor) -> Self {
        EventLog {
            events,
            store,
            listeners: Vec::new(),
            redactor: std::sync::Arc::new(std::sync::RwLock::new(redactor)),
        }
    }

    pub fn add_listener(&mut self, listener: Listener) {
        self.listeners.push(listener);
    }

    /// The redactor, to add secrets while the conversation runs.
    pub fn redactor(&self) -> SharedRedactor {
        self.redactor.clone()
    }

    pub fn events(&self) -> &[Event] {
        &self.events
    }

    pub fn store(&self) -> Option<&EventStore> {
        self.store.as_ref()
    }

    /// Records an event: redacted, persisted, announced.
    pub fn push(&mut self, event: Event) -> Result<()> {
        let event = self.redacted(event);
        if let Some(store) = &mut self.store {
            store.append(&event)?;
        }
        for listener in &mut self.listeners {
            listener(&event);
        }
        self.events.push(event);
        Ok(())
    }

    /// The event with its secrets hidden. Fails closed: an event that cannot be redacted (it
    /// does not serialise, or hiding a secret broke its shape) becomes a placeholder saying it
    /// was withheld, never the raw event.
    fn redacted(&self, event: Event) -> Event {
        let redactor = self.redactor.read().unwrap_or_else(|p| p.into_inner());
        if redactor.is_empty() {
            return event;
        }
        let Ok(mut value) = serde_json::to_value(&event) else {
            return withheld(&event);
        };
        if !redactor.redact_json(&mut value) {
            return event;
        }
        serde_json::from_value(value).unwrap_or_else(|_| withheld(&event))
    }
}

/// What is stored instead of an event that could not be redacted: its id, time and source,
/// and a `ConversationErrorEvent` saying it was withheld.
fn withheld(event: &Event) -> Event {
    Event {
        id: event.id.clone(),
        timestamp: event.timestamp.clone(),
        source: event.source,
        parent_id: event.parent_id.clone(),
        body: EventBody::ConversationErrorEvent {
            code: "EventWithheld".into(),
            detail: format!(
                "a {} was withheld: it held a secret and could not be stored with the secret hidden",
                event.kind()
            ),
            classification: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::event::Source;

    #[test]
    fn an_event_that_cannot_be_redacted_is_withheld_not_stored_raw() {
        // The secret is also the name of the event's source, so hiding it breaks the shape.
        let secret = "environment";
        let mut log = EventLog::new(Vec::new(), None, Redactor::new([secret.to_string()]));
        let raw = Event::message(Source::Environment, "user", "the environment key is here");
        log.push(raw.clone()).unwrap();
        let stored = &log.events()[0];
        let text = serde_json::to_string(&stored.body).unwrap();
        assert!(!text.contains("key is here"), "{text}");
        assert!(
            text.contains("EventWithheld") && text.contains("withheld"),
            "{text}"
        );
        assert_eq!(stored.id, raw.id);
        // An event that re-parses is stored redacted, as before.
        log.push(Event::user_message("an environment variable"))
            .unwrap();
        let text = serde_json::to_string(&log.events()[1]).unwrap();
        assert!(text.contains("an <secret-hidden> variable"), "{text}");
    }
}
