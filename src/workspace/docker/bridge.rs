//! The bridge container of a remote engine ([`super::location`]): the runner cannot route to
//! the sandbox's internal network there, and the sandbox must still reach nothing but the
//! relay. The bridge is a second, tiny container from the same image running only
//! `sandcrab forward` ([`super::forward`]); it sits on the engine's default bridge network
//! and on the run's internal network:
//!
//! - inbound: port 8000 published on the engine's address forwards to the sandbox's
//!   agent-server, so the runner reaches it at `ENGINE:PUBLISHED`;
//! - outbound: [`expose`] starts a second forward inside it, from its address on the internal
//!   network to a listener of the runner (the relay), which the engine's NAT lets it reach.
//!
//! It holds no secret and runs nothing else; the sandbox keeps its single internal network.
//! It is labelled like the sandbox, registered for cleanup and removed before the network.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use bollard::exec::{CreateExecOptions, StartExecOptions};
use bollard::models::{ContainerCreateBody, HostConfig, NetworkConnectRequest, PortBinding};
use bollard::query_parameters::{CreateContainerOptionsBuilder, UploadToContainerOptionsBuilder};
use bollard::Docker;

use super::engine::{self, BINARY_PATH, MANAGED_LABEL, SERVER_PORT, SESSION_LABEL};
use super::{archive, cleanup, network, DockerOptions};
use crate::workspace::WorkspaceError;

/// The port, inside the bridge, where the sandbox reaches the runner's relay.
pub const RELAY_PORT: u16 = 4000;
/// Marks the bridge among a run's containers: `sandcrab.role=bridge`.
const ROLE_LABEL: &str = "sandcrab.role";

/// A started bridge.
#[derive(Debug, Clone)]
pub struct Bridge {
    pub container_id: String,
    /// Its address on the run's internal network (what the sandbox connects to).
    pub internal_ip: IpAddr,
    /// Where the runner reaches the sandbox's agent-server.
    pub server: SocketAddr,
}

/// Starts the bridge for the sandbox at `sandbox_ip` on the run's `network`, publishing its
/// server port on `engine`. Registered for cleanup; removed again if it fails to come up.
pub async fn start(
    docker: &Docker,
    opts: &DockerOptions,
    session: &str,
    sandbox_ip: IpAddr,
    engine: IpAddr,
) -> Result<Bridge, WorkspaceError> {
    let id = create(docker, opts, session, sandbox_ip, engine).await?;
    cleanup::register(&id);
    match boot(docker, opts, session, &id, engine).await {
        Ok(bridge) => Ok(bridge),
        Err(e) => {
            cleanup::unregister(&id);
            let _ = cleanup::force_remove(docker, &id).await;
            Err(e)
        }
    }
}

/// Makes the runner's listener at `runner` reachable from the sandbox; returns the address
/// the sandbox uses (the bridge's, on the internal network).
pub async fn expose(
    docker: &Docker,
    bridge: &Bridge,
    runner: SocketAddr,
) -> Result<SocketAddr, WorkspaceError> {
    let pair = format!("0.0.0.0:{RELAY_PORT}={runner}");
    let config = CreateExecOptions {
        cmd: Some(vec![BINARY_PATH.to_string(), "forward".into(), pair]),
        attach_stdout: Some(false),
        attach_stderr: Some(false),
        ..Default::default()
    };
    let exec = docker
        .create_exec(&bridge.container_id, config)
        .await
        .map_err(engine::error(
            "start the relay forward in the bridge container",
        ))?;
    let detached = StartExecOptions {
        detach: true,
        ..Default::default()
    };
    docker
        .start_exec(&exec.id, Some(detached))
        .await
        .map_err(engine::error(
            "start the relay forward in the bridge container",
        ))?;
    Ok(SocketAddr::new(bridge.internal_ip, RELAY_PORT))
}

async fn create(
    docker: &Docker,
    opts: &DockerOptions,
    session: &str,
    sandbox_ip: IpAddr,
    engine: IpAddr,
) -> Result<String, WorkspaceError> {
    let name = format!("sandcrab-{}-bridge", &session[..8]);
    let mut options = CreateContainerOptionsBuilder::new().name(&name);
    if let Some(platform) = &opts.platform {
        options = options.platform(platform);
    }
    let body = create_body(opts, session, sandbox_ip, engine);
    let created = docker
        .create_container(Some(options.build()), body)
        .await
        .map_err(engine::error("create the bridge container"))?;
    Ok(created.id)
}

/// Copies the binary in, joins the internal network, starts, and reads its addresses.
async fn boot(
    docker: &Docker,
    opts: &DockerOptions,
    session: &str,
    id: &str,
    engine: IpAddr,
) -> Result<Bridge, WorkspaceError> {
    let (tar, _) = archive::path_archive(&opts.sandbox_binary, BINARY_PATH, (0, 0))
        .map_err(WorkspaceError::Io)?;
    let upload = UploadToContainerOptionsBuilder::new().path("/").build();
    docker
        .upload_to_container(id, Some(upload), bollard::body_full(tar.into()))
        .await
        .map_err(engine::error(
            "copy the forwarder into the bridge container",
        ))?;
    let join = NetworkConnectRequest {
        container: id.to_string(),
        ..Default::default()
    };
    docker
        .connect_network(&network::name(session), join)
        .await
        .map_err(engine::error(
            "connect the bridge container to the run's network",
        ))?;
    docker
        .start_container(id, None)
        .await
        .map_err(engine::error("start the bridge container"))?;
    let internal_ip = network::ip_on(docker, id, &network::name(session)).await?;
    let port = engine::published_port(docker, id).await?;
    Ok(Bridge {
        container_id: id.to_string(),
        internal_ip,
        server: SocketAddr::new(engine, port),
    })
}

/// The forwarder on the default bridge network, its server port published on the engine's
/// address only, with the same labels (and a role) as the sandbox.
fn create_body(
    opts: &DockerOptions,
    session: &str,
    sandbox_ip: IpAddr,
    engine: IpAddr,
) -> ContainerCreateBody {
    let port = format!("{SERVER_PORT}/tcp");
    let mut labels = HashMap::from([
        (MANAGED_LABEL.to_string(), "true".to_string()),
        (SESSION_LABEL.to_string(), session.to_string()),
        (ROLE_LABEL.to_string(), "bridge".to_string()),
    ]);
    labels.extend(opts.labels.iter().cloned());
    let binding = PortBinding {
        host_ip: Some(engine.to_string()),
        host_port: Some(String::new()),
    };
    let inbound = format!(
        "0.0.0.0:{SERVER_PORT}={}",
        SocketAddr::new(sandbox_ip, SERVER_PORT)
    );
    ContainerCreateBody {
        image: Some(opts.image.clone()),
        entrypoint: Some(vec![BINARY_PATH.to_string()]),
        cmd: Some(vec!["forward".to_string(), inbound]),
        labels: Some(labels),
        user: Some("0:0".to_string()),
        exposed_ports: Some(vec![port.clone()]),
        host_config: Some(HostConfig {
            port_bindings: Some(HashMap::from([(port, Some(vec![binding]))])),
            network_mode: Some("bridge".to_string()),
            memory: Some(64 << 20),
            pids_limit: Some(64),
            ..Default::default()
        }),
        ..Default::default()
    }
}
