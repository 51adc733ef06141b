//! The per-run network: `sandcrab-<session>`, created `internal` (the engine gives it no route
//! off its bridge), labelled like the container, and the container's only network. The runner
//! reaches the agent-server at the container's address on it; the sandbox reaches the runner's
//! relay at the network's gateway address (the bridge's address on this host).

use std::collections::HashMap;
use std::net::IpAddr;

use bollard::models::NetworkCreateRequest;
use bollard::Docker;

use super::engine::{self, MANAGED_LABEL, SESSION_LABEL};
use crate::workspace::WorkspaceError;

/// The network's name for a run.
pub fn name(session: &str) -> String {
    format!("sandcrab-{session}")
}

/// Creates the run's internal network; returns its id.
pub async fn create(
    docker: &Docker,
    session: &str,
    extra_labels: &[(String, String)],
) -> Result<String, WorkspaceError> {
    let mut labels = HashMap::from([
        (MANAGED_LABEL.to_string(), "true".to_string()),
        (SESSION_LABEL.to_string(), session.to_string()),
    ]);
    labels.extend(extra_labels.iter().cloned());
    let request = NetworkCreateRequest {
        name: name(session),
        driver: Some("bridge".to_string()),
        internal: Some(true),
        labels: Some(labels),
        ..Default::default()
    };
    let created = docker
        .create_network(request)
        .await
        .map_err(engine::error("create the sandbox's internal network"))?;
    Ok(created.id)
}

/// The container's address on its (only) network.
pub async fn container_ip(docker: &Docker, id: &str) -> Result<IpAddr, WorkspaceError> {
    let info = docker
        .inspect_container(id, None)
        .await
        .map_err(engine::error("inspect the container"))?;
    let settings = info.network_settings.unwrap_or_default();
    settings
        .networks
        .unwrap_or_default()
        .into_values()
        .filter_map(|n| n.ip_address)
        .find_map(|ip| ip.parse().ok())
        .ok_or_else(|| {
            WorkspaceError::Engine(format!(
                "docker: container {id} has no address on its network"
            ))
        })
}

/// The container's address on the network named `network`.
pub async fn ip_on(docker: &Docker, id: &str, network: &str) -> Result<IpAddr, WorkspaceError> {
    let info = docker
        .inspect_container(id, None)
        .await
        .map_err(engine::error("inspect the container"))?;
    info.network_settings
        .and_then(|s| s.networks)
        .and_then(|mut n| n.remove(network))
        .and_then(|n| n.ip_address)
        .and_then(|ip| ip.parse().ok())
        .ok_or_else(|| {
            WorkspaceError::Engine(format!(
                "docker: container {id} has no address on network {network}"
            ))
        })
}
