//! Context condensation, OpenHands' `LLMSummarizingCondenser` with its defaults and wire shapes:
//! when the view the model would read is too big, a range of old events is forgotten and
//! summarized by a model call, and a `Condensation` event (forgotten ids, summary,
//! `summary_offset`, `llm_response_id`) records it; the view is rebuilt from the events (see
//! [`view`]), so a resumed conversation keeps its condensed history.
//!
//! When it fires, as in OpenHands: the view has more than `max_size` events (soft: skipped if
//! nothing can be forgotten), or an unhandled `CondensationRequest` (hard). Beyond OpenHands:
//! a pre-flight token estimate ([`estimate`], calibrated on the provider's last `prompt_tokens`)
//! condenses before the window is reached (`margin` of it, default 0.85), and a provider
//! context-window error teaches the real window and the real token count before the retry.
//!
//! How much is kept at the end: the strictest of `len/2 - keep_first - 1` (request),
//! `max_size/2 - keep_first - 1` (events) and the tail that fits [`TAIL_SHARE`] of the window
//! (tokens; OpenHands keeps half). The range never splits a tool call from its result nor one
//! response's calls ([`forget`]).

pub mod estimate;
pub mod forget;
pub mod summary;
pub mod view;

use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::llm::context_window::overflow_figures;
use crate::llm::{LlmClient, LlmError};
use crate::protocol::event::{Event, EventBody, Source};
use crate::protocol::metrics::{ConversationStats, Metrics, Prices};
use view::View;

/// The share of the window the kept tail may fill after a token-triggered condensation.
/// OpenHands keeps half; a smaller tail makes each cycle between two condensations longer and
/// its context smaller, and every condensation rewrites the prompt cache from the summary on:
/// on the long-task bench (30k window, 8 KB outputs) half meant a condensation every 5 steps,
/// each rewriting ~11k cached tokens, and a bill above OpenHands'.
pub const TAIL_SHARE: f64 = 0.3;

/// OpenHands' `default_condenser()` values.
pub const DEFAULT_MAX_SIZE: usize = 80;
pub const DEFAULT_KEEP_FIRST: usize = 4;
/// Condense once the estimate passes this share of the window.
pub const DEFAULT_MARGIN: f64 = 0.85;
/// The metrics usage id of summary calls (OpenHands copies the agent LLM as `condenser`).
pub const USAGE_ID: &str = "condenser";

/// How a condenser is set up.
#[derive(Debug, Clone, PartialEq)]
pub struct CondenserConfig {
    /// Events in the view before it is condensed.
    pub max_size: usize,
    /// Events at the start never forgotten (the system prompt and the task among them).
    pub keep_first: usize,
    /// OpenHands' `max_tokens`: a token limit below the window, if set.
    pub max_tokens: Option<u64>,
    /// The model's input window in tokens.
    pub context_window: u64,
    /// Share of the window the pre-flight estimate may reach before condensing.
    pub margin: f64,
    /// At least this share of the view must be forgotten for an event-count condensation.
    pub minimum_progress: f64,
}

impl CondenserConfig {
    pub fn new(context_window: u64) -> Self {
        CondenserConfig {
            max_size: DEFAULT_MAX_SIZE,
            keep_first: DEFAULT_KEEP_FIRST,
            max_tokens: None,
            context_window,
            margin: DEFAULT_MARGIN,
            minimum_progress: 0.1,
        }
    }

    /// Checks OpenHands' rule `max_size // 2 - keep_first - 1 > 0`.
    pub fn validate(&self) -> Result<(), String> {
        if (self.max_size / 2).saturating_sub(self.keep_first + 1) == 0 {
            return Err(format!(
                "condenser max events {} is too small for keep_first {}: it must be more than 2 * (keep_first + 1) = {}",
                self.max_size,
                self.keep_first,
                2 * (self.keep_first + 1)
            ));
        }
        if !(0.1..=1.0).contains(&self.margin) {
            return Err(format!(
                "condenser margin {} must be between 0.1 and 1.0",
                self.margin
            ));
        }
        Ok(())
    }

    /// The condenser in OpenHands' agent JSON (`agent.condenser`), around `llm`.
    pub fn to_openhands_json(&self, llm: Value) -> Value {
        json!({
            "kind": "LLMSummarizingCondenser",
            "llm": llm,
            "max_size": self.max_size,
            "max_tokens": self.max_tokens,
            "keep_first": self.keep_first,
            "minimum_progress": self.minimum_progress,
            "hard_context_reset_max_retries": 5,
            "hard_context_reset_context_scaling": 0.8,
        })
    }
}

/// Why the view is condensed now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reasons {
    pub request: bool,
    pub tokens: bool,
    pub events: bool,
}

impl Reasons {
    pub fn any(&self) -> bool {
        self.request || self.tokens || self.events
    }

    /// A hard requirement: a condensation must come out of it.
    pub fn hard(&self) -> bool {
        self.request || self.tokens
    }
}

/// What calibration has learnt about the model.
#[derive(Debug, Clone, Copy)]
struct Calibration {
    chars_per_token: f64,
    /// The window, lowered when a provider states a smaller one.
    window: u64,
}

/// An LLM-summarizing condenser.
pub struct Condenser {
    llm: Arc<dyn LlmClient>,
    prices: Prices,
    config: CondenserConfig,
    calibration: Mutex<Calibration>,
}

impl Condenser {
    pub fn new(llm: Arc<dyn LlmClient>, prices: Prices, config: CondenserConfig) -> Self {
        let window = match config.max_tokens {
            Some(max) if max > 0 => max.min(config.context_window),
            _ => config.context_window,
        };
        Condenser {
            llm,
            prices,
            config,
            calibration: Mutex::new(Calibration {
                chars_per_token: estimate::DEFAULT_CHARS_PER_TOKEN,
                window,
            }),
        }
    }

    pub fn config(&self) -> &CondenserConfig {
        &self.config
    }

    fn calibration(&self) -> Calibration {
        *self.calibration.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut Calibration)) {
        f(&mut self.calibration.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// The window planned with now.
    pub fn window(&self) -> u64 {
        self.calibration().window
    }

    /// The estimate of a request of `chars` characters, in tokens.
    pub fn estimate_tokens(&self, chars: usize) -> u64 {
        estimate::tokens(chars, self.calibration().chars_per_token)
    }

    /// Learns the ratio from a request the provider counted.
    pub fn calibrate(&self, request_chars: usize, prompt_tokens: u64) {
        if prompt_tokens > 0 && request_chars > 0 {
            self.update(|c| c.chars_per_token = request_chars as f64 / prompt_tokens as f64);
        }
    }

    /// Learns from a context-window error on a request of `request_chars` characters: the
    /// window the provider states, and the ratio from the count it states (or, without one,
    /// a ratio that puts this request just over the window).
    pub fn learn_overflow(&self, error: &LlmError, request_chars: usize) {
        let (prompt, limit) = overflow_figures(error);
        self.update(|c| {
            if let Some(limit) = limit.filter(|l| *l > 0) {
                c.window = c.window.min(limit);
            }
            let ratio = |tokens: u64| request_chars as f64 / tokens.max(1) as f64;
            match prompt {
                Some(counted) => c.chars_per_token = ratio(counted),
                None => c.chars_per_token = c.chars_per_token.min(ratio(c.window + 1)),
            }
        });
    }

    /// Why `view` (sent as a request of `request_chars` characters) must be condensed now.
    pub fn reasons(&self, view: &View, request_chars: usize) -> Reasons {
        let c = self.calibration();
        let limit = (c.window as f64 * self.config.margin) as u64;
        Reasons {
            request: view.unhandled_request,
            tokens: estimate::tokens(request_chars, c.chars_per_token) > limit,
            events: view.len() > self.config.max_size,
        }
    }

    /// Builds the `Condensation` for `view`, its summary call recorded in `stats` under
    /// [`USAGE_ID`]. `None` when a soft requirement finds nothing worth forgetting.
    pub async fn condense(
        &self,
        view: &View<'_>,
        reasons: Reasons,
        request_chars: usize,
        stats: &mut ConversationStats,
    ) -> Result<Option<Event>, LlmError> {
        let events: Vec<&Event> = view.iter().collect();
        let Some(range) = self.range(&events, reasons, request_chars) else {
            return Ok(None);
        };
        let forgotten = &events[range.clone()];
        let c = self.calibration();
        let budget = (c.window as f64 * self.config.margin) as u64;
        let metrics = stats
            .usage_to_metrics
            .entry(USAGE_ID.into())
            .or_insert_with(|| Metrics::new(self.llm.model_name()));
        let summary = summary::summarize(
            self.llm.as_ref(),
            forgotten,
            budget,
            c.chars_per_token,
            metrics,
            self.prices,
        )
        .await?;
        if summary.fallback {
            tracing::warn!("the summary call did not fit the context window; condensed without it");
        }
        let forgotten_event_ids = forgotten
            .iter()
            .filter(|e| Some(e.id.as_str()) != summary_id(view).as_deref())
            .map(|e| e.id.clone())
            .collect();
        let offset = events[..range.start]
            .iter()
            .filter(|e| Some(e.id.as_str()) != summary_id(view).as_deref())
            .count();
        Ok(Some(Event::new(
            Source::Environment,
            EventBody::Condensation {
                forgotten_event_ids,
                summary: Some(summary.text),
                summary_offset: Some(offset),
                llm_response_id: summary.response_id,
            },
        )))
    }

    /// The range to forget: the strictest tail of the reasons given; for a hard requirement
    /// with no such range, everything after the system prompt.
    fn range(
        &self,
        events: &[&Event],
        reasons: Reasons,
        request_chars: usize,
    ) -> Option<std::ops::Range<usize>> {
        let keep_first = self.config.keep_first;
        let len = events.len();
        let mut keep_tail = len;
        if reasons.request {
            keep_tail = keep_tail.min((len / 2).saturating_sub(keep_first + 1));
        }
        if reasons.events {
            keep_tail = keep_tail.min((self.config.max_size / 2).saturating_sub(keep_first + 1));
        }
        if reasons.tokens {
            keep_tail = keep_tail.min(self.tail_within_share(events, request_chars));
        }
        let range = forget::forgotten_range(events, keep_first, keep_tail);
        let enough = |r: &std::ops::Range<usize>| {
            reasons.hard() || r.len() as f64 >= self.config.minimum_progress * len as f64
        };
        match range.filter(enough) {
            Some(range) => Some(range),
            None if reasons.hard() => forget::everything_after_system(events),
            None => None,
        }
    }

    /// How many events at the end fit, with the fixed part of the request (tools, the kept
    /// head), in [`TAIL_SHARE`] of the window.
    fn tail_within_share(&self, events: &[&Event], request_chars: usize) -> usize {
        let c = self.calibration();
        let event_chars: Vec<usize> = events.iter().map(|e| estimate::event_chars(e)).collect();
        let all_events: usize = event_chars.iter().sum();
        let head: usize = event_chars.iter().take(self.config.keep_first).sum();
        let fixed = request_chars.saturating_sub(all_events) + head;
        let share = (c.window as f64 * TAIL_SHARE) as u64;
        let mut budget = share.saturating_sub(estimate::tokens(fixed, c.chars_per_token));
        let mut kept = 0;
        for chars in event_chars.iter().rev() {
            let tokens = estimate::tokens(*chars, c.chars_per_token);
            if tokens > budget {
                break;
            }
            budget -= tokens;
            kept += 1;
        }
        kept
    }
}

fn summary_id(view: &View) -> Option<String> {
    view.summary_index.map(|i| view.events[i].id.clone())
}

/// Why condensing again would not help: two condensations with no action in between.
pub fn thrashing(events: &[Event]) -> bool {
    let mut since_last = events
        .iter()
        .rev()
        .take_while(|e| !matches!(e.body, EventBody::Condensation { .. }));
    let no_action = !since_last.any(|e| matches!(e.body, EventBody::ActionEvent(_)));
    let has_condensation = events
        .iter()
        .any(|e| matches!(e.body, EventBody::Condensation { .. }));
    has_condensation && no_action
}

#[cfg(test)]
mod tests;
