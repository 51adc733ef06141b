//! `--workspace docker`: a sandbox container from any local image, with the static agent-server
//! copied in and the repository copied to `--sandbox-workdir`; the conversation runs inside it.
//!
//! The model key never enters the sandbox: the sandbox's agent talks to a relay in this process
//! (bound to the container network's gateway address) with a per-run token, and the relay adds
//! the real key. A scripted model's file is copied in instead.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::config::RunConfig;
use crate::conversation::remote::{RemoteAgentSpec, RemoteConversation};
use crate::conversation::Conversation;
use crate::demo;
use crate::error::BadInput;
use crate::llm::relay::{self, Relay, RelayConfig, RelayProvider};
use crate::llm::{endpoint, Endpoint};
use crate::workspace::docker::{DockerOptions, DockerWorkspace};
use crate::workspace::Workspace;

/// Where a scripted model's file goes inside the sandbox.
const SCRIPT_IN_SANDBOX: &str = "/.sandcrab/script.yaml";

/// The sandbox, its conversation, and what must live as long as the run (the relay).
pub struct DockerSession {
    pub workspace: Arc<DockerWorkspace>,
    pub conversation: Box<dyn Conversation>,
    pub relay: Option<Relay>,
}

/// Starts the sandbox and opens the conversation in it.
pub async fn open(config: &RunConfig, repo_dir: &Path) -> Result<DockerSession> {
    let options = docker_options(config)?;
    eprintln!("sandcrab: starting a sandbox from {} …", options.image);
    let workspace = Arc::new(
        DockerWorkspace::start(options, Some(repo_dir))
            .await
            .map_err(|e| BadInput::new(e.to_string()))?,
    );
    let (spec, relay) = agent_spec(config, &workspace).await?;
    let remote_options = super::remote_options(config, relay.iter().map(|r| r.token().to_string()));
    let mut conversation =
        RemoteConversation::create(workspace.remote(), spec, remote_options).await?;
    conversation.watch_sandbox(workspace.clone());
    Ok(DockerSession {
        workspace,
        conversation: Box::new(conversation),
        relay,
    })
}

fn docker_options(config: &RunConfig) -> Result<DockerOptions> {
    let d = &config.docker;
    let sandbox_binary = match &d.sandbox_binary {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .context("cannot find this binary to copy into the sandbox; pass --sandbox-binary")?,
    };
    Ok(DockerOptions {
        image: d.image.clone(),
        workdir: config.sandbox_workdir.clone(),
        sandbox_binary,
        env: config.forward_env.clone(),
        labels: parse_labels(&d.labels)?,
        keep_on_failure: d.keep_on_failure,
        platform: d.platform.clone(),
        user: d.sandbox_user.clone(),
        memory_bytes: d.memory.as_deref().map(parse_bytes).transpose()?,
        nano_cpus: d.cpus.map(|c| (c * 1e9) as i64),
        pids_limit: d.pids_limit,
        network_mode: d.network.clone(),
        docker_host: config.docker_host.clone(),
        exclude: super::outputs_in_repo(config),
    })
}

/// The agent's model as the sandbox sees it: the scripted file copied in, or the relay.
async fn agent_spec(
    config: &RunConfig,
    workspace: &DockerWorkspace,
) -> Result<(RemoteAgentSpec, Option<Relay>)> {
    let target = endpoint(&config.llm).map_err(|e| BadInput::new(e.to_string()))?;
    match target {
        Endpoint::Scripted { path } => {
            let local = script_file(config, &path)?;
            let copied = workspace.upload(&local, SCRIPT_IN_SANDBOX).await?;
            anyhow::ensure!(
                copied.success,
                "cannot copy the script into the sandbox: {}",
                copied.error.unwrap_or_default()
            );
            Ok((
                RemoteAgentSpec::new(format!("scripted:{SCRIPT_IN_SANDBOX}")),
                None,
            ))
        }
        Endpoint::Http {
            anthropic,
            base_url,
        } => {
            let bind = (workspace.gateway_ip().await?, 0).into();
            let relay = start_relay(config, anthropic, base_url, bind).await?;
            let seen_at = workspace.sandbox_address_of(relay.address()).await?;
            let mut spec = RemoteAgentSpec::new(config.llm.model.clone());
            spec.llm_settings = crate::llm::settings::to_openhands(&config.llm);
            spec.base_url = Some(relay.base_url_via(seen_at));
            spec.api_key = Some(relay.token().to_string());
            Ok((spec, Some(relay)))
        }
    }
}

/// A relay on `bind` to the configured provider, adding the configured key.
pub(super) async fn start_relay(
    config: &RunConfig,
    anthropic: bool,
    base_url: String,
    bind: std::net::SocketAddr,
) -> Result<Relay> {
    let provider = if anthropic {
        RelayProvider::Anthropic
    } else {
        RelayProvider::OpenAi
    };
    relay::start(RelayConfig::new(
        base_url,
        config.llm.api_key.clone(),
        provider,
        bind,
    ))
    .await
}

/// The script to copy in: the given file, or the demo's embedded one in a private temp file.
pub(super) fn script_file(config: &RunConfig, path: &str) -> Result<ScriptFile> {
    if config.demo && config.llm.model == demo::MODEL {
        let mut file = tempfile::Builder::new()
            .prefix("sandcrab-demo-script-")
            .suffix(".yaml")
            .tempfile()?;
        std::io::Write::write_all(&mut file, demo::SCRIPT.as_bytes())?;
        return Ok(ScriptFile::Temporary(file.into_temp_path()));
    }
    Ok(ScriptFile::Given(PathBuf::from(path)))
}

/// A script on this machine: the user's file, or the demo's (removed on drop).
pub(super) enum ScriptFile {
    Given(PathBuf),
    Temporary(tempfile::TempPath),
}

impl std::ops::Deref for ScriptFile {
    type Target = std::path::Path;

    fn deref(&self) -> &std::path::Path {
        match self {
            ScriptFile::Given(path) => path,
            ScriptFile::Temporary(path) => path,
        }
    }
}

fn parse_labels(labels: &[String]) -> Result<Vec<(String, String)>, BadInput> {
    labels
        .iter()
        .map(|l| {
            l.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| BadInput::new(format!("--label {l}: use KEY=VALUE")))
        })
        .collect()
}

/// `512m`, `2g`, `1073741824` → bytes.
fn parse_bytes(text: &str) -> Result<i64, BadInput> {
    let text = text.trim().to_ascii_lowercase();
    let (number, unit) = text.split_at(
        text.find(|c: char| c.is_ascii_alphabetic())
            .unwrap_or(text.len()),
    );
    let factor: i64 = match unit.trim_end_matches('b') {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        _ => {
            return Err(BadInput::new(format!(
                "--memory {text}: use a size like 512m or 2g"
            )))
        }
    };
    let n: f64 = number
        .parse()
        .map_err(|_| BadInput::new(format!("--memory {text}: use a size like 512m or 2g")))?;
    Ok((n * factor as f64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_labels_parse() {
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("2g").unwrap(), 2 << 30);
        assert_eq!(parse_bytes("1.5gb").unwrap(), 3 << 29);
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert!(parse_bytes("lots").is_err());
        assert_eq!(
            parse_labels(&["a=b".into()]).unwrap(),
            vec![("a".into(), "b".into())]
        );
        assert!(parse_labels(&["nolabel".into()]).is_err());
    }
}
