//! Runner in a container: when sandcrab itself runs in a container on the same engine (the
//! host's socket shared in, as GitHub's container actions do), the sandbox's address on its
//! internal network is not reachable from the runner's container. The runner's container then
//! joins that network (`docker network connect`), talks to the sandbox there, and binds the
//! relay on its own address on it; leaving the network comes with removing it.
//!
//! Detection: `/.dockerenv` exists (the engine puts it in every container) and the engine
//! knows a container by this process's hostname (a container's default hostname is its short
//! id) or by a 64-hex container id in `/proc/self/mountinfo` (the `/containers/<id>/` paths of
//! its `resolv.conf` and `hostname` mounts, there even with a custom hostname). Both must hold,
//! so a host that merely has the file, or an engine in the same container (dind) that does not
//! know it, is not taken for a runner container.

use std::net::IpAddr;

use bollard::models::{NetworkConnectRequest, NetworkDisconnectRequest};
use bollard::Docker;

use super::engine;
use crate::workspace::WorkspaceError;

/// This process's container on `docker`, if it runs in one the engine knows and has a network
/// of its own. A container in the host's network namespace (`--network host`) reaches the
/// sandbox as the host does and cannot join another network: it counts as no container.
pub async fn own_container(docker: &Docker) -> Option<String> {
    if !std::path::Path::new("/.dockerenv").exists() {
        return None;
    }
    for candidate in candidates() {
        if let Ok(info) = docker.inspect_container(&candidate, None).await {
            let mode = info.host_config.and_then(|h| h.network_mode);
            return info.id.filter(|_| mode.as_deref() != Some("host"));
        }
    }
    None
}

/// The hostname, then the container ids in the sources of the `/etc/hostname` and
/// `/etc/resolv.conf` mounts (only those: a host's own mount table names other containers).
fn candidates() -> Vec<String> {
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let ids = mountinfo
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let own = matches!(fields.get(4), Some(&"/etc/hostname" | &"/etc/resolv.conf"));
            own.then(|| fields.get(3).copied()).flatten()
        })
        .flat_map(|source| source.split('/'))
        .filter(|part| part.len() == 64 && part.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(String::from)
        .collect::<Vec<_>>();
    let mut all: Vec<String> = std::iter::once(hostname.trim().to_string())
        .filter(|h| !h.is_empty())
        .chain(ids)
        .collect();
    all.dedup();
    all
}

/// Connects `container` to `network`; returns its address there.
pub async fn join(
    docker: &Docker,
    network: &str,
    container: &str,
) -> Result<IpAddr, WorkspaceError> {
    let request = NetworkConnectRequest {
        container: container.to_string(),
        ..Default::default()
    };
    docker
        .connect_network(network, request)
        .await
        .map_err(engine::error(
            "connect this runner's container to the sandbox's network",
        ))?;
    let info = docker
        .inspect_network(network, None)
        .await
        .map_err(engine::error("inspect the sandbox's network"))?;
    info.containers
        .and_then(|mut c| c.remove(container))
        .and_then(|e| e.ipv4_address)
        .and_then(|cidr| cidr.split('/').next().and_then(|ip| ip.parse().ok()))
        .ok_or_else(|| {
            WorkspaceError::Engine(format!(
                "docker: this runner's container has no address on network {network}"
            ))
        })
}

/// Disconnects (force) every container still attached to `network`, so it can be removed.
pub async fn evict_all(docker: &Docker, network: &str) {
    let Ok(info) = docker.inspect_network(network, None).await else {
        return;
    };
    for container in info.containers.unwrap_or_default().into_keys() {
        let request = NetworkDisconnectRequest {
            container,
            force: Some(true),
        };
        let _ = docker.disconnect_network(network, request).await;
    }
}
