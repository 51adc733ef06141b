//! Stopping at any moment: one process-wide cancellation token that SIGINT/SIGTERM cancel from
//! the start of `main`, the call to the one cleanup of everything this process created
//! (`workspace::release::cleanup_all`), the stop of a run ([`RunStop`]: a signal, the
//! time limit, or any caller's reason, such as a budget), and named setup stages a test can
//! hold a run at ([`stage`]).
//!
//! First signal: the token is cancelled; a run in setup abandons it and removes what it
//! created; a running agent stops after its current step, or is cut off after
//! [`STOP_GRACE`]; the partial outputs are written. Second signal: everything registered is
//! removed at once and the process exits 130.

use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::ExitCode;

/// How long a stopped run's current step may take to end before it is cut off.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

static TOKEN: OnceLock<CancellationToken> = OnceLock::new();
static HOLD_AT: OnceLock<String> = OnceLock::new();

/// The process's cancellation token (cancelled by the first SIGINT/SIGTERM).
pub fn token() -> CancellationToken {
    TOKEN.get_or_init(CancellationToken::new).clone()
}

/// Watches SIGINT and SIGTERM from now on (call it first thing in the runtime): the first
/// cancels [`token`], the second runs `cleanup` (the removal of every registered resource:
/// `workspace::release::cleanup_all`) and exits 130.
pub fn watch_signals(cleanup: fn()) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
        eprintln!("sandcrab: interrupted; stopping after the current step (again to exit now)");
        token().cancel();
        tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
        eprintln!("sandcrab: interrupted again; removing sandboxes and exiting now");
        let _ = tokio::task::spawn_blocking(cleanup).await;
        std::process::exit(ExitCode::Interrupted as i32);
    });
    Ok(())
}

/// Runs `setup` unless `stop` comes first; then `cleanup` removes every resource created so
/// far and the error says why the run stopped.
pub async fn unless_stopped<T>(
    stop: &RunStop,
    cleanup: fn(),
    setup: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::select! {
        biased;
        _ = stop.requested() => {
            let _ = tokio::task::spawn_blocking(cleanup).await;
            Err(crate::error::Interrupted(stop.reason().unwrap_or_default()).into())
        }
        done = setup => done,
    }
}

/// The stop of one run: requested once, with the first reason kept.
#[derive(Clone, Default)]
pub struct RunStop {
    token: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
}

impl RunStop {
    /// Also requested by the process's signals (its [`token`]).
    pub fn follow_signals(&self) {
        let (signals, stop) = (token(), self.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = signals.cancelled() => stop.request("the run was interrupted"),
                _ = stop.token.cancelled() => {}
            }
        });
    }

    /// Also stops after `limit` from now.
    pub fn after(&self, limit: Duration) {
        let stop = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(limit) => {
                    eprintln!(
                        "sandcrab: the time limit ({:.0} s) is up; stopping the run",
                        limit.as_secs_f64()
                    );
                    stop.request(format!(
                        "the time limit ({:.0} s) was reached",
                        limit.as_secs_f64()
                    ));
                }
                _ = stop.token.cancelled() => {}
            }
        });
    }

    /// Requests the stop (the first reason wins).
    pub fn request(&self, reason: impl Into<String>) {
        let mut slot = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(reason.into());
        }
        drop(slot);
        self.token.cancel();
    }

    /// Why the run was stopped, once it was.
    pub fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Completes when the stop is requested.
    pub async fn requested(&self) {
        self.token.cancelled().await
    }
}

/// Sets the setup stage a run holds at (the hidden `SANDCRAB_TEST_HOLD_AT`, for tests that
/// interrupt a run at a known stage).
pub fn hold_at(stage: Option<String>) {
    if let Some(stage) = stage.filter(|s| !s.is_empty()) {
        let _ = HOLD_AT.set(stage);
    }
}

/// Marks a setup stage: with a hold set, says so on stderr, and never returns at the held
/// stage (the run waits there to be interrupted).
pub async fn stage(name: &str) {
    let Some(held) = HOLD_AT.get() else {
        return;
    };
    eprintln!("sandcrab: stage {name}");
    if held == name {
        eprintln!("sandcrab: holding at {name}");
        std::future::pending::<()>().await;
    }
}
