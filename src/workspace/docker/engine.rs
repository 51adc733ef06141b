//! Thin helpers over bollard: connecting (API version negotiated, so older engines answer),
//! making sure the image is there, the container's create body (on the run's network, or with
//! a published loopback port under an explicit network mode), its published port, its logs.

use std::collections::HashMap;

use bollard::errors::Error as DockerError;
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{CreateImageOptionsBuilder, LogsOptionsBuilder};
use bollard::Docker;
use futures_util::StreamExt;

use super::DockerOptions;
use crate::workspace::WorkspaceError;

/// Every container and network sandcrab creates carries `sandcrab.managed=true`.
pub const MANAGED_LABEL: &str = "sandcrab.managed";
/// The run's id: `sandcrab.session=<uuid>`.
pub const SESSION_LABEL: &str = "sandcrab.session";
/// Where the agent-server binary is copied, and its conversations kept, in the container.
pub const BINARY_PATH: &str = "/.sandcrab/sandcrab";
pub const CONVERSATIONS_DIR: &str = "/.sandcrab/conversations";
/// The agent-server's port inside the container.
pub const SERVER_PORT: u16 = 8000;

/// Connects with bollard's defaults (`DOCKER_HOST`, else the local socket).
pub async fn connect() -> Result<Docker, WorkspaceError> {
    let docker = Docker::connect_with_defaults().map_err(error("connect to the Docker engine"))?;
    docker
        .negotiate_version()
        .await
        .map_err(error("reach the Docker engine"))
}

/// Maps a bollard error to a `WorkspaceError` saying what was being done.
pub fn error(doing: &'static str) -> impl Fn(DockerError) -> WorkspaceError {
    move |e| WorkspaceError::Engine(format!("docker: cannot {doing}: {e}"))
}

pub fn is_not_found(e: &DockerError) -> bool {
    matches!(
        e,
        DockerError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Makes sure `image` is on the engine: inspects it, and if missing tries one pull.
pub async fn ensure_image(
    docker: &Docker,
    image: &str,
    platform: Option<&str>,
) -> Result<(), WorkspaceError> {
    match docker.inspect_image(image).await {
        Ok(_) => return Ok(()),
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(error("inspect the image")(e)),
    }
    pull(docker, image, platform).await.map_err(|e| {
        WorkspaceError::Setup(format!(
            "image {image} not found locally and cannot be pulled ({e}); build it \
             (docker build -t {image} ...) or load it (docker load) on this engine first"
        ))
    })
}

async fn pull(docker: &Docker, image: &str, platform: Option<&str>) -> Result<(), DockerError> {
    let mut options = CreateImageOptionsBuilder::new().from_image(image);
    if let Some(platform) = platform {
        options = options.platform(platform);
    }
    let mut progress = docker.create_image(Some(options.build()), None, None);
    while let Some(step) = progress.next().await {
        step?;
    }
    Ok(())
}

/// The create body: entrypoint = the copied binary, `serve` on port 8000, limits, labels.
/// With `network` (the run's internal network) the container joins only it and nothing is
/// published; without, `opts.network_mode` applies and the port is published on loopback.
pub fn create_body(
    opts: &DockerOptions,
    session: &str,
    key: &str,
    network: Option<&str>,
    publish_on: std::net::IpAddr,
) -> ContainerCreateBody {
    let port = format!("{SERVER_PORT}/tcp");
    let mut env = vec![format!("SESSION_API_KEY={key}")];
    env.extend(opts.env.iter().map(|(k, v)| format!("{k}={v}")));
    let mut labels = HashMap::from([
        (MANAGED_LABEL.to_string(), "true".to_string()),
        (SESSION_LABEL.to_string(), session.to_string()),
    ]);
    labels.extend(opts.labels.iter().cloned());
    ContainerCreateBody {
        image: Some(opts.image.clone()),
        entrypoint: Some(vec![BINARY_PATH.to_string()]),
        cmd: Some(serve_args(&opts.workdir)),
        env: Some(env),
        labels: Some(labels),
        user: opts.user.clone(),
        working_dir: Some(opts.workdir.clone()),
        exposed_ports: Some(vec![port.clone()]),
        host_config: Some(host_config(opts, port, network, publish_on)),
        ..Default::default()
    }
}

fn serve_args(workdir: &str) -> Vec<String> {
    let port = SERVER_PORT.to_string();
    [
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        &port,
        "--working-dir",
        workdir,
        "--conversations-dir",
        CONVERSATIONS_DIR,
        "--idle-timeout-minutes",
        crate::workspace::SANDBOX_IDLE_TIMEOUT_MINUTES,
    ]
    .map(String::from)
    .to_vec()
}

fn host_config(
    opts: &DockerOptions,
    port: String,
    network: Option<&str>,
    publish_on: std::net::IpAddr,
) -> HostConfig {
    let binding = PortBinding {
        host_ip: Some(publish_on.to_string()),
        host_port: Some(String::new()),
    };
    let published = HashMap::from([(port, Some(vec![binding]))]);
    HostConfig {
        port_bindings: network.is_none().then_some(published),
        memory: opts.memory_bytes,
        nano_cpus: opts.nano_cpus,
        pids_limit: opts.pids_limit,
        network_mode: network.map(String::from).or(opts.network_mode.clone()),
        ..Default::default()
    }
}

/// The host port the engine published for the server's port.
pub async fn published_port(docker: &Docker, id: &str) -> Result<u16, WorkspaceError> {
    let info = docker
        .inspect_container(id, None)
        .await
        .map_err(error("inspect the container"))?;
    let key = format!("{SERVER_PORT}/tcp");
    info.network_settings
        .and_then(|n| n.ports)
        .and_then(|mut ports| ports.remove(&key).flatten())
        .into_iter()
        .flatten()
        .find_map(|b| b.host_port.and_then(|p| p.parse().ok()))
        .ok_or_else(|| {
            WorkspaceError::Engine(format!(
                "docker: container {id} has no published port for {key} (network mode?)"
            ))
        })
}

/// The gateway address of the container's network: where the container reaches this host
/// (and so a relay bound to it).
pub async fn gateway_ip(docker: &Docker, id: &str) -> Result<std::net::IpAddr, WorkspaceError> {
    let info = docker
        .inspect_container(id, None)
        .await
        .map_err(error("inspect the container"))?;
    let settings = info.network_settings.unwrap_or_default();
    settings
        .networks
        .unwrap_or_default()
        .into_values()
        .filter_map(|n| n.gateway)
        .find(|g| !g.is_empty())
        .and_then(|g| g.parse().ok())
        .ok_or_else(|| {
            WorkspaceError::Engine(format!(
                "docker: container {id} has no network gateway to reach this host"
            ))
        })
}

/// Whether the container is still running (`None` when the engine cannot tell).
pub async fn is_running(docker: &Docker, id: &str) -> Option<bool> {
    let info = docker.inspect_container(id, None).await.ok()?;
    info.state.and_then(|s| s.running)
}

/// How the container ended when it no longer runs ("exited with code 137"), or `None` while
/// it runs (paused included) or when the engine cannot tell (unreachable, say).
pub async fn how_it_stopped(docker: &Docker, id: &str) -> Option<String> {
    let state = match docker.inspect_container(id, None).await {
        Ok(info) => info.state?,
        Err(DockerError::DockerResponseServerError {
            status_code: 404, ..
        }) => return Some("was removed".into()),
        Err(_) => return None,
    };
    if state.running != Some(false) {
        return None;
    }
    let mut how = match state.exit_code {
        Some(code) => format!("exited with code {code}"),
        None => "stopped".to_string(),
    };
    if state.oom_killed == Some(true) {
        how.push_str(" (killed for lack of memory: raise --memory or leave it unset)");
    }
    Some(how)
}

/// The container's last `lines` lines of output (stdout and stderr), for error messages.
pub async fn last_logs(docker: &Docker, id: &str, lines: usize) -> String {
    let options = LogsOptionsBuilder::new()
        .stdout(true)
        .stderr(true)
        .tail(&lines.to_string())
        .build();
    let mut logs = docker.logs(id, Some(options));
    let mut text = String::new();
    while let Some(Ok(piece)) = logs.next().await {
        text.push_str(&String::from_utf8_lossy(&piece.into_bytes()));
    }
    text.trim_end().to_string()
}
