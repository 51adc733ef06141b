//! Removing containers (and their per-run networks) when nobody closed them: a process-wide
//! registry of this process's live containers and networks (for a signal handler or panic
//! hook: [`remove_all_blocking`]) and synchronous removal from `Drop`, on a short-lived thread
//! with its own current-thread runtime (so it works inside or outside a tokio runtime).
//! Containers go first: a network cannot be removed while a container is attached.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};

use bollard::query_parameters::RemoveContainerOptionsBuilder;
use bollard::Docker;

static LIVE: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
static LIVE_NETWORKS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn lock(set: &'static Mutex<BTreeSet<String>>) -> MutexGuard<'static, BTreeSet<String>> {
    set.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Records a container of this process, to be removed by [`remove_all_blocking`].
pub fn register(container_id: &str) {
    lock(&LIVE).insert(container_id.to_string());
}

/// Forgets a container (it was removed, or is kept on purpose).
pub fn unregister(container_id: &str) {
    lock(&LIVE).remove(container_id);
}

/// The containers currently registered.
pub fn registered() -> Vec<String> {
    lock(&LIVE).iter().cloned().collect()
}

/// Records a network of this process, removed by [`remove_all_blocking`] after the containers.
pub fn register_network(network_id: &str) {
    lock(&LIVE_NETWORKS).insert(network_id.to_string());
}

/// Forgets a network (it was removed, or is kept on purpose).
pub fn unregister_network(network_id: &str) {
    lock(&LIVE_NETWORKS).remove(network_id);
}

/// The networks currently registered.
pub fn registered_networks() -> Vec<String> {
    lock(&LIVE_NETWORKS).iter().cloned().collect()
}

/// Removes (force) every registered container, then every registered network, and forgets
/// them; blocks until done. Safe to call from a panic hook or a signal-handling task.
pub fn remove_all_blocking() {
    let ids: Vec<String> = std::mem::take(&mut *lock(&LIVE)).into_iter().collect();
    let networks: Vec<String> = std::mem::take(&mut *lock(&LIVE_NETWORKS))
        .into_iter()
        .collect();
    remove_blocking(ids, networks);
}

/// Removes (force) the given containers, then the given networks, on a fresh thread and
/// runtime; blocks until done. Failures are logged, not returned: this runs where nobody can
/// act on them.
pub fn remove_blocking(ids: Vec<String>, networks: Vec<String>) {
    if ids.is_empty() && networks.is_empty() {
        return;
    }
    let worker = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build();
        match runtime {
            Ok(rt) => rt.block_on(remove_now(&ids, &networks)),
            Err(e) => {
                tracing::warn!("cannot remove containers {ids:?} / networks {networks:?}: {e}")
            }
        }
    });
    let _ = worker.join();
}

async fn remove_now(ids: &[String], networks: &[String]) {
    let docker = match super::engine::connect().await {
        Ok(docker) => docker,
        Err(e) => return tracing::warn!("cannot remove containers {ids:?}: {e}"),
    };
    for id in ids {
        if let Err(e) = force_remove(&docker, id).await {
            tracing::warn!("cannot remove container {id}: {e}");
        }
    }
    for id in networks {
        if let Err(e) = remove_network(&docker, id).await {
            tracing::warn!("cannot remove network {id}: {e}");
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

/// `docker network rm ID` after disconnecting what is still attached (this runner's own
/// container, see [`super::runner`]); a network that is already gone counts as removed.
pub async fn remove_network(docker: &Docker, id: &str) -> Result<(), bollard::errors::Error> {
    super::runner::evict_all(docker, id).await;
    match docker.remove_network(id).await {
        Err(e) if super::engine::is_not_found(&e) => Ok(()),
        other => other,
    }
}
