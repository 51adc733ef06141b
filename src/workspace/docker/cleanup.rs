//! Removing containers when nobody closed them: a process-wide registry of this process's live
//! containers (for a signal handler or panic hook: [`remove_all_blocking`]) and synchronous
//! removal from `Drop`, on a short-lived thread with its own current-thread runtime (so it
//! works inside or outside a tokio runtime).

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};

use bollard::query_parameters::RemoveContainerOptionsBuilder;
use bollard::Docker;

static LIVE: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn live() -> MutexGuard<'static, BTreeSet<String>> {
    LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Records a container of this process, to be removed by [`remove_all_blocking`].
pub fn register(container_id: &str) {
    live().insert(container_id.to_string());
}

/// Forgets a container (it was removed, or is kept on purpose).
pub fn unregister(container_id: &str) {
    live().remove(container_id);
}

/// The containers currently registered.
pub fn registered() -> Vec<String> {
    live().iter().cloned().collect()
}

/// Removes (force) every registered container and forgets them; blocks until done. Safe to
/// call from a panic hook or a signal-handling task.
pub fn remove_all_blocking() {
    let ids: Vec<String> = std::mem::take(&mut *live()).into_iter().collect();
    remove_blocking(ids);
}

/// Removes (force) the given containers on a fresh thread and runtime; blocks until done.
/// Failures are logged, not returned: this runs where nobody can act on them.
pub fn remove_blocking(ids: Vec<String>) {
    if ids.is_empty() {
        return;
    }
    let worker = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        match runtime {
            Ok(rt) => rt.block_on(remove_now(&ids)),
            Err(e) => tracing::warn!("cannot remove containers {ids:?}: {e}"),
        }
    });
    let _ = worker.join();
}

async fn remove_now(ids: &[String]) {
    let docker = match super::engine::connect().await {
        Ok(docker) => docker,
        Err(e) => return tracing::warn!("cannot remove containers {ids:?}: {e}"),
    };
    for id in ids {
        if let Err(e) = force_remove(&docker, id).await {
            tracing::warn!("cannot remove container {id}: {e}");
        }
    }
}

/// `docker rm -f -v ID`; a container that is already gone counts as removed.
pub async fn force_remove(docker: &Docker, id: &str) -> Result<(), bollard::errors::Error> {
    let options = RemoveContainerOptionsBuilder::new()
        .force(true)
        .v(true)
        .build();
    match docker.remove_container(id, Some(options)).await {
        Err(e) if super::engine::is_not_found(&e) => Ok(()),
        other => other,
    }
}
