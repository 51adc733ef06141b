//! Removing containers (and their per-run networks) when nobody closed them: this process's
//! live containers and networks, kept in the one release registry (`workspace::release`, for
//! a signal handler or panic hook), and synchronous removal from `Drop` on a short-lived
//! thread with its own current-thread runtime (so it works inside or outside a tokio runtime).
//! Containers go first: a network cannot be removed while a container is attached.

use bollard::query_parameters::RemoveContainerOptionsBuilder;
use bollard::Docker;

use crate::workspace::release;

/// Release keys: containers sort before networks, so [`release::release_all_blocking`]
/// removes a network after the containers attached to it.
const CONTAINER_KEY: &str = "docker/1-container/";
const NETWORK_KEY: &str = "docker/2-network/";
const DOCKER_KEYS: &str = "docker/";

/// Records a container of this process, to be removed by [`remove_all_blocking`].
pub fn register(container_id: &str) {
    let id = container_id.to_string();
    release::register(&format!("{CONTAINER_KEY}{id}"), move || {
        remove_blocking(vec![id], Vec::new())
    });
}

/// Forgets a container (it was removed, or is kept on purpose).
pub fn unregister(container_id: &str) {
    release::unregister(&format!("{CONTAINER_KEY}{container_id}"));
}

/// The containers currently registered.
pub fn registered() -> Vec<String> {
    keys_under(CONTAINER_KEY)
}

/// Records a network of this process, removed by [`remove_all_blocking`] after the containers.
pub fn register_network(network_id: &str) {
    let id = network_id.to_string();
    release::register(&format!("{NETWORK_KEY}{id}"), move || {
        remove_blocking(Vec::new(), vec![id])
    });
}

/// Forgets a network (it was removed, or is kept on purpose).
pub fn unregister_network(network_id: &str) {
    release::unregister(&format!("{NETWORK_KEY}{network_id}"));
}

/// The networks currently registered.
pub fn registered_networks() -> Vec<String> {
    keys_under(NETWORK_KEY)
}

fn keys_under(prefix: &str) -> Vec<String> {
    release::registered()
        .iter()
        .filter_map(|k| k.strip_prefix(prefix).map(str::to_string))
        .collect()
}

/// Removes (force) every registered container, then every registered network, and forgets
/// them; blocks until done. Safe to call from a panic hook or a signal-handling task.
pub fn remove_all_blocking() {
    release::release_matching_blocking(DOCKER_KEYS);
}

/// Removes (force) the given containers, then the given networks, on a fresh thread and
/// runtime; blocks until done. Failures are logged, not returned: this runs where nobody can
/// act on them.
pub fn remove_blocking(ids: Vec<String>, networks: Vec<String>) {
    if ids.is_empty() && networks.is_empty() {
        return;
    }
    release::block_on(async move { remove_now(&ids, &networks).await });
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
