//! When the agent-server stops by itself: on SIGINT/SIGTERM, after `--idle-timeout-minutes`
//! with no API request, and with `--exit-when-parent-gone` when the process that started it
//! exits. A sandbox whose runner was killed (SIGKILL, a cancelled job's container) thus stops
//! on its own instead of running, and billing, until someone sweeps it.
//!
//! Idle time is measured between checks a second apart: a server that was frozen (a paused
//! container or runtime, SIGSTOP) sees a long gap between two checks and counts the time from
//! its resumption, not from before it was paused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::info::Activity;

/// How often the idle and parent checks run.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// A gap between two checks longer than this means the process was frozen.
const FROZEN_GAP: Duration = Duration::from_secs(5);

/// Why the server stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Signal,
    Idle(Duration),
    ParentGone,
}

/// Waits until the server should stop, and says why.
pub async fn stop_reason(
    activity: Arc<Activity>,
    idle_timeout: Option<Duration>,
    watch_parent: bool,
) -> StopReason {
    let watchdog = async {
        let parent = std::os::unix::process::parent_id();
        let mut last_check = Instant::now();
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            if last_check.elapsed() > FROZEN_GAP {
                activity.touch();
            }
            last_check = Instant::now();
            if watch_parent && std::os::unix::process::parent_id() != parent {
                return StopReason::ParentGone;
            }
            if let Some(limit) = idle_timeout.filter(|limit| activity.idle() >= *limit) {
                return StopReason::Idle(limit);
            }
        }
    };
    if idle_timeout.is_none() && !watch_parent {
        return signal().await;
    }
    tokio::select! {
        reason = signal() => reason,
        reason = watchdog => reason,
    }
}

async fn signal() -> StopReason {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! { _ = int.recv() => {}, _ = term.recv() => {} }
    StopReason::Signal
}

/// The line the server prints when it stops by itself.
pub fn describe(reason: StopReason) -> Option<String> {
    match reason {
        StopReason::Signal => None,
        StopReason::Idle(limit) => Some(format!(
            "sandcrab serve: no API request for {:.0} s; exiting (--idle-timeout-minutes)",
            limit.as_secs_f64()
        )),
        StopReason::ParentGone => Some(
            "sandcrab serve: the process that started this server is gone; exiting (--exit-when-parent-gone)"
                .to_string(),
        ),
    }
}
