//! Feedback on the forge while the agent works: one comment created at the start, edited in
//! place as the agent moves, and turned into the final report. `Feedback` is what a platform
//! implements (GitHub issue comments here; GitLab notes plug in beside it);
//! `ProgressPump` turns the run's events into throttled edits.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::event_log::Listener;
use crate::protocol::event::{Event, EventBody};

use super::render::{self, Progress};

/// One comment on the forge, created once and edited in place.
#[async_trait]
pub trait Feedback: Send {
    /// Posts the first body; returns the comment's URL.
    async fn create(&mut self, body: &str) -> anyhow::Result<String>;
    /// Replaces the body (a progress edit).
    async fn update(&mut self, body: &str) -> anyhow::Result<()>;
    /// Replaces the body with the final report (creates the comment if `create` failed);
    /// returns the comment's URL.
    async fn finish(&mut self, body: &str) -> anyhow::Result<String>;
}

/// What the agent is doing, as the progress comment shows it.
enum Update {
    Step(String),
    Tasks(Value),
}

/// Sends progress edits to a `Feedback`: at most one per `interval`, plus one at once on each
/// change of the task list. Edits that fail are logged once and never stop the run.
pub struct ProgressPump {
    tx: mpsc::UnboundedSender<Update>,
    task: tokio::task::JoinHandle<Box<dyn Feedback>>,
}

impl ProgressPump {
    pub fn start(feedback: Box<dyn Feedback>, progress: Progress, interval: Duration) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(pump(feedback, progress, rx, interval));
        ProgressPump { tx, task }
    }

    /// The listener to plug into the run.
    pub fn listener(&self) -> Listener {
        let tx = self.tx.clone();
        Box::new(move |event: &Event| {
            if let Some(update) = update_of(event) {
                let _ = tx.send(update);
            }
        })
    }

    /// Stops editing and gives the feedback back, for the final report.
    pub async fn stop(self) -> anyhow::Result<Box<dyn Feedback>> {
        drop(self.tx);
        Ok(self.task.await?)
    }
}

fn update_of(event: &Event) -> Option<Update> {
    let EventBody::ActionEvent(a) = &event.body else {
        if let EventBody::ObservationEvent {
            tool_name,
            observation,
            ..
        } = &event.body
        {
            if tool_name == "task_tracker" && observation["task_list"].is_array() {
                return Some(Update::Tasks(observation["task_list"].clone()));
            }
        }
        return None;
    };
    let summary = a.summary.as_deref().unwrap_or("");
    let step = summary
        .strip_prefix(&format!("{}: ", a.tool_name))
        .unwrap_or(summary);
    Some(Update::Step(format!("{}: {}", a.tool_name, step)))
}

async fn pump(
    mut feedback: Box<dyn Feedback>,
    mut progress: Progress,
    mut rx: mpsc::UnboundedReceiver<Update>,
    interval: Duration,
) -> Box<dyn Feedback> {
    let mut last_edit = Instant::now();
    let mut dirty = false;
    let mut warned = false;
    loop {
        let due = last_edit + interval;
        let now = tokio::select! {
            update = rx.recv() => match update {
                None => break,
                Some(Update::Tasks(tasks)) => {
                    let changed = progress.tasks.as_ref() != Some(&tasks);
                    progress.tasks = Some(tasks);
                    dirty = true;
                    changed || Instant::now() >= due
                }
                Some(Update::Step(step)) => {
                    progress.step = Some(step);
                    progress.actions += 1;
                    dirty = true;
                    Instant::now() >= due
                }
            },
            _ = tokio::time::sleep_until(due), if dirty => true,
        };
        if now && dirty {
            if let Err(e) = feedback.update(&render::progress(&progress)).await {
                if !warned {
                    eprintln!("sandcrab: warning: cannot update the progress comment: {e:#}");
                    warned = true;
                }
            }
            last_edit = Instant::now();
            dirty = false;
        }
    }
    feedback
}
