//! The event log of a running conversation: events in memory, appended to the store, passed
//! to listeners (progress printing, remote clients), with secrets redacted before any of that.

use anyhow::Result;

use super::event::Event;
use super::store::EventStore;
use crate::redact::Redactor;

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

    fn redacted(&self, event: Event) -> Event {
        let redactor = self.redactor.read().unwrap_or_else(|p| p.into_inner());
        if redactor.is_empty() {
            return event;
        }
        let Ok(mut value) = serde_json::to_value(&event) else {
            return event;
        };
        if !redactor.redact_json(&mut value) {
            return event;
        }
        serde_json::from_value(value).unwrap_or(event)
    }
}
