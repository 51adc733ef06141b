//! One run of a `RemoteConversation` on the server: `POST .../run` (409: already running;
//! 429: retried), `POST .../pause` when asked, waiting for a terminal or paused
//! `execution_status` (from the socket, with `GET /api/conversations/{id}` every 2 s as a
//! fallback, trusted after two agreeing answers), waiting briefly for trailing events (the
//! `ConversationErrorEvent` follows the `error` status), and mapping the end to a `RunEnd`.
//! An unreachable server gets 30 failed polls (about a minute) before the run fails, unless
//! its watched sandbox has stopped: then the run fails at the first failed poll.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use reqwest::{Method, StatusCode};

use super::conversation_path;
use super::RemoteConversation;
use crate::conversation::RunEnd;
use crate::http::retry::{self, RetryPolicy, Verdict};
use crate::protocol::event::EventBody;
use crate::protocol::state::ExecutionStatus;

/// How often `run` asks the server for the status, in case the socket misses it.
const STATUS_POLL: Duration = Duration::from_secs(2);
/// Consecutive failed status polls before `run` gives up on an unreachable server.
const MAX_POLL_FAILURES: u32 = 30;
const TICK: Duration = Duration::from_millis(200);
/// `POST /run` answered 429 (too many runs): ten more attempts, one second apart.
const RUN_BUSY: RetryPolicy = RetryPolicy::new(11, Duration::from_secs(1), 1.0);

impl RemoteConversation {
    /// `POST /run`; "already running" (409) is fine, "too many runs" (429) is retried.
    pub(super) async fn start_run(&mut self) -> Result<()> {
        let path = format!("{}/run", conversation_path(&self.id));
        let what = format!("POST {path}");
        let api = &self.api;
        let outcome = retry::retry(
            &RUN_BUSY,
            |_| api.send(&what, api.request(Method::POST, &path)),
            |outcome| match outcome {
                Err(e) if e.status == Some(StatusCode::TOO_MANY_REQUESTS) => Verdict::Retry(None),
                _ => Verdict::Done,
            },
            |_, wait, next| tracing::debug!("{what}: too many runs; attempt {next} in {wait:?}"),
        )
        .await;
        match outcome {
            Err(e) if e.status != Some(StatusCode::CONFLICT) => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn request_pause(&mut self) -> Result<()> {
        let path = format!("{}/pause", conversation_path(&self.id));
        let rb = self.api.request(Method::POST, &path);
        self.api.send(&format!("POST {path}"), rb).await?;
        Ok(())
    }

    /// Waits until the status is terminal or paused (from the socket, or REST polls).
    pub(super) async fn wait_for_end(&mut self) -> Result<ExecutionStatus> {
        let mut poll = StatusPoll::new();
        let mut pause_sent = false;
        loop {
            self.drain()?;
            if ends_run(self.status) {
                return Ok(self.status);
            }
            if !pause_sent && self.pause.load(Ordering::SeqCst) {
                self.request_pause().await?;
                pause_sent = true;
            }
            if Instant::now() >= poll.next {
                if let Some(status) = self.poll_status(&mut poll).await? {
                    self.sync_events().await?;
                    self.status = status;
                    return Ok(status);
                }
            }
            self.wait_feed(TICK).await?;
        }
    }

    /// One REST status poll; returns the end status once two polls in a row agree on it.
    async fn poll_status(&mut self, poll: &mut StatusPoll) -> Result<Option<ExecutionStatus>> {
        poll.next = Instant::now() + STATUS_POLL;
        let info = match self.fetch_info().await {
            Ok(info) => info,
            Err(e) if e.status == Some(StatusCode::NOT_FOUND) => {
                bail!(
                    "conversation {} no longer exists on the agent-server",
                    self.id
                )
            }
            Err(e) if e.status.is_none() => {
                if let Some(sandbox) = &self.sandbox {
                    if let Some(gone) = sandbox.stopped().await {
                        bail!("the agent-server stopped with its sandbox: {gone}");
                    }
                }
                if poll.failures >= MAX_POLL_FAILURES {
                    return Err(e.into());
                }
                poll.failures += 1;
                tracing::warn!("{e}; retrying");
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        poll.failures = 0;
        self.set_stats_from(&info["stats"]);
        let status = serde_json::from_value::<ExecutionStatus>(info["execution_status"].clone())
            .ok()
            .filter(|s| ends_run(*s));
        let agreed = status.is_some() && status == poll.last_end;
        poll.last_end = status;
        Ok(if agreed { status } else { None })
    }

    /// After the end status: waits briefly for trailing events (the error event follows the
    /// `error` status; a `full_state` snapshot closes the run), then refreshes the stats.
    pub(super) async fn settle(&mut self, status: ExecutionStatus, run_start: usize) -> Result<()> {
        let snapshots = self.full_states;
        let cap = Instant::now() + Duration::from_secs(2);
        while self.full_states == snapshots && Instant::now() < cap {
            if !self.wait_feed(Duration::from_millis(300)).await? {
                break;
            }
        }
        let wants_error = matches!(status, ExecutionStatus::Error | ExecutionStatus::Stuck);
        if wants_error && self.last_error(run_start).is_none() {
            self.sync_events().await?;
        }
        match self.fetch_info().await {
            Ok(info) => self.set_stats_from(&info["stats"]),
            Err(e) => tracing::debug!("cannot refresh the stats: {e}"),
        }
        Ok(())
    }

    /// The last `ConversationErrorEvent` (code, detail) since event `from`.
    fn last_error(&self, from: usize) -> Option<(String, String)> {
        let events = self.log.events().get(from..).unwrap_or_default();
        events.iter().rev().find_map(|e| match &e.body {
            EventBody::ConversationErrorEvent { code, detail, .. } => {
                Some((code.clone(), detail.clone()))
            }
            _ => None,
        })
    }

    /// Actions wait for confirmation on the server: a CI run rejects them (the agent reads why
    /// and the run goes on: `None`) or stops; without a headless answer `run` returns.
    pub(super) async fn answer_confirmation(&mut self) -> Result<Option<RunEnd>> {
        use crate::agent::security::{Headless, HEADLESS_REJECTION};
        match self.headless {
            None => Ok(Some(RunEnd::WaitingForConfirmation)),
            Some(Headless::Fail) => Ok(Some(RunEnd::ConfirmationRequired(
                "the agent's next action needs a person's confirmation and nobody can confirm in this run; it was not executed. Loosen --confirmation-policy, or use --on-confirmation reject to let the agent try another way".into(),
            ))),
            Some(Headless::Reject) => {
                let path = format!("{}/events/respond_to_confirmation", conversation_path(&self.id));
                let body = serde_json::json!({"accept": false, "reason": HEADLESS_REJECTION});
                let rb = self.api.request(Method::POST, &path).json(&body);
                self.api.send(&format!("POST {path}"), rb).await?;
                self.status = ExecutionStatus::Idle;
                Ok(None)
            }
        }
    }

    pub(super) fn run_end(&self, status: ExecutionStatus, run_start: usize) -> RunEnd {
        let error = self.last_error(run_start);
        match status {
            ExecutionStatus::Finished => RunEnd::Finished,
            ExecutionStatus::Paused => RunEnd::Paused,
            ExecutionStatus::Stuck => RunEnd::Stuck(error.map(|(_, d)| d).unwrap_or_else(|| {
                "the agent-server's stuck detector stopped the agent repeating itself".into()
            })),
            ExecutionStatus::Error => match error {
                Some((code, _)) if code == "MaxIterationsReached" => {
                    RunEnd::MaxIterations(self.max_iterations)
                }
                Some((code, detail)) if code == "MaxBudgetReached" => RunEnd::MaxBudget(detail),
                Some((_, detail)) => RunEnd::Error(detail),
                None => RunEnd::Error("the run failed on the agent-server (no error event)".into()),
            },
            other => RunEnd::Error(format!("the run stopped with status {}", other.as_str())),
        }
    }
}

/// When `run` returns (or answers a confirmation).
fn ends_run(status: ExecutionStatus) -> bool {
    status.is_terminal()
        || status == ExecutionStatus::Paused
        || status == ExecutionStatus::WaitingForConfirmation
}

struct StatusPoll {
    next: Instant,
    last_end: Option<ExecutionStatus>,
    failures: u32,
}

impl StatusPoll {
    fn new() -> Self {
        StatusPoll {
            next: Instant::now() + STATUS_POLL,
            last_end: None,
            failures: 0,
        }
    }
}
