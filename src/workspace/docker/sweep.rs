//! `sandcrab doctor --sweep`: removes every container and network labelled
//! `sandcrab.managed=true` on the engine, whichever process created them.

use std::collections::HashMap;

use bollard::query_parameters::{ListContainersOptionsBuilder, ListNetworksOptionsBuilder};

use super::engine::{self, MANAGED_LABEL};
use crate::workspace::WorkspaceError;

/// What [`sweep`] removed, and what it could not.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    /// `(id, error)` for each removal that failed.
    pub failures: Vec<(String, String)>,
}

/// Removes every sandcrab-managed container (running or not), then every managed network.
pub async fn sweep() -> Result<SweepReport, WorkspaceError> {
    sweep_labelled(&[]).await
}

/// [`sweep`], narrowed to what also carries every `(key, value)` label of `extra` (tests use
/// it so as not to remove what other runs on the same engine still use).
pub async fn sweep_labelled(extra: &[(&str, &str)]) -> Result<SweepReport, WorkspaceError> {
    let docker = engine::connect().await?;
    let filters = managed_filter(extra);
    let mut report = SweepReport::default();
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let containers = docker
        .list_containers(Some(options))
        .await
        .map_err(engine::error("list containers"))?;
    for id in containers.into_iter().filter_map(|c| c.id) {
        match super::cleanup::force_remove(&docker, &id).await {
            Ok(()) => report.containers.push(id),
            Err(e) => report.failures.push((id, e.to_string())),
        }
    }
    let options = ListNetworksOptionsBuilder::new().filters(&filters).build();
    let networks = docker
        .list_networks(Some(options))
        .await
        .map_err(engine::error("list networks"))?;
    for id in networks.into_iter().filter_map(|n| n.id) {
        match docker.remove_network(&id).await {
            Ok(()) => report.networks.push(id),
            Err(e) => report.failures.push((id, e.to_string())),
        }
    }
    Ok(report)
}

/// `label=sandcrab.managed=true` and each extra label (the engine ANDs them).
fn managed_filter(extra: &[(&str, &str)]) -> HashMap<String, Vec<String>> {
    let mut labels = vec![format!("{MANAGED_LABEL}=true")];
    labels.extend(extra.iter().map(|(k, v)| format!("{k}={v}")));
    HashMap::from([("label".to_string(), labels)])
}
