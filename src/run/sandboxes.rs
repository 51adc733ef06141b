//! `--workspace cloud|runtime-api|apptainer`: a sandbox that is an agent-server reached over
//! HTTP, with the repository copied in and a `RemoteConversation` running inside.
//!
//! The model, by kind:
//! - Cloud without `--model`: the account's LLM settings (`get_llm()`); the key is already the
//!   service's. With `--model` and a key, the key goes to the sandbox's agent-server in the
//!   agent's settings, as the OpenHands SDK sends it (a Cloud sandbox cannot reach a relay in
//!   this process); it is kept out of the agent's shell and redacted from events.
//! - Runtime API: the same as Cloud with `--model`.
//! - Apptainer: the relay, as for Docker (the container shares this host's loopback), so the
//!   key never enters the sandbox.
//!
//! A scripted model's file is uploaded into the sandbox.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use crate::config::{RunConfig, WorkspaceChoice};
use crate::conversation::remote::{RemoteAgentSpec, RemoteConversation};
use crate::conversation::Conversation;
use crate::duration;
use crate::error::BadInput;
use crate::llm::relay::Relay;
use crate::llm::{endpoint, Endpoint};
use crate::workspace::{
    ApptainerOptions, ApptainerWorkspace, CloudOptions, CloudWorkspace, RemoteWorkspace,
    RuntimeApiOptions, RuntimeApiWorkspace, SifSource, Workspace,
};

/// The sandbox, its conversation, and what must live as long as the run.
pub struct SandboxSession {
    pub workspace: Arc<dyn Workspace>,
    pub conversation: Box<dyn Conversation>,
    pub relay: Option<Relay>,
    /// Secrets learnt while opening (the account's model key, the session key).
    pub secrets: Vec<String>,
    /// The model actually used, when not the configured one (the Cloud account's).
    pub model: Option<String>,
}

/// How the agent in the sandbox reaches its model.
struct AgentModel {
    spec: RemoteAgentSpec,
    relay: Option<Relay>,
    secrets: Vec<String>,
    model: Option<String>,
}

impl AgentModel {
    /// A model the sandbox reaches on its own: no relay, no secret learned here.
    fn plain(spec: RemoteAgentSpec) -> Self {
        AgentModel {
            spec,
            relay: None,
            secrets: Vec::new(),
            model: None,
        }
    }
}

pub async fn open(
    config: &RunConfig,
    repo_dir: &Path,
    kind: WorkspaceChoice,
) -> Result<SandboxSession> {
    match kind {
        WorkspaceChoice::Cloud => open_cloud(config, repo_dir).await,
        WorkspaceChoice::RuntimeApi => open_runtime_api(config, repo_dir).await,
        _ => open_apptainer(config, repo_dir).await,
    }
}

async fn open_cloud(config: &RunConfig, repo_dir: &Path) -> Result<SandboxSession> {
    let s = &config.sandboxes;
    let mut opts = CloudOptions::new(&s.cloud_url, s.cloud_api_key.clone().unwrap_or_default());
    opts.sandbox_spec_id = s.cloud_sandbox_spec.clone();
    opts.sandbox_id = s.cloud_sandbox_id.clone();
    opts.keep_alive = s.cloud_keep_alive;
    opts.start_timeout = whole_seconds("--cloud-start-timeout", s.cloud_start_timeout)?;
    opts.workdir = config.sandbox_workdir.clone();
    opts.exclude = super::outputs_in_repo(config);
    let repo = opts.sandbox_id.is_none().then_some(repo_dir);
    eprintln!(
        "sandcrab: starting an OpenHands Cloud sandbox at {} …",
        s.cloud_url
    );
    let ws = CloudWorkspace::start(opts, repo)
        .await
        .map_err(|e| BadInput::new(e.to_string()))?;
    eprintln!("sandcrab: Cloud sandbox {}", ws.sandbox_id());
    if s.cloud_keep_alive {
        eprintln!(
            "sandcrab: the sandbox is kept; resume with --cloud-sandbox-id {}",
            ws.sandbox_id()
        );
    }
    let mut model = if config.llm_from_cloud {
        account_model(&ws).await?
    } else {
        direct_model(config, ws.remote()).await?
    };
    model.secrets.push(ws.session_key().to_string());
    let ws = Arc::new(ws);
    let conversation = conversation(config, ws.clone(), ws.remote(), &mut model).await?;
    give_cloud_secrets(&ws, conversation.id(), s.cloud_secrets.as_deref()).await;
    Ok(session(ws, conversation, model))
}

async fn open_runtime_api(config: &RunConfig, repo_dir: &Path) -> Result<SandboxSession> {
    let s = &config.sandboxes;
    let mut opts = RuntimeApiOptions::new(
        s.runtime_api_url.clone().unwrap_or_default(),
        s.runtime_api_key.clone().unwrap_or_default(),
        s.runtime_api_image.clone().unwrap_or_default(),
    );
    opts.command = s.runtime_api_command.clone();
    if let Some(id) = &s.runtime_api_session_id {
        opts.session_id = id.clone();
    }
    opts.resource_factor = s.runtime_api_resource_factor;
    opts.runtime_class =
        Some(s.runtime_api_runtime_class.clone()).filter(|c| c != "none" && !c.is_empty());
    opts.env = config.forward_env.clone();
    opts.pause_on_close = s.runtime_api_pause_on_close;
    opts.start_timeout = whole_seconds("--runtime-api-start-timeout", s.runtime_api_start_timeout)?;
    opts.workdir = config.sandbox_workdir.clone();
    opts.exclude = super::outputs_in_repo(config);
    eprintln!(
        "sandcrab: starting (or resuming) runtime session {} …",
        opts.session_id
    );
    let ws = RuntimeApiWorkspace::start(opts, Some(repo_dir))
        .await
        .map_err(|e| BadInput::new(e.to_string()))?;
    if s.runtime_api_pause_on_close {
        eprintln!(
            "sandcrab: the runtime is paused at the end; resume with --runtime-api-session-id {}",
            ws.session_id()
        );
    }
    let mut model = direct_model(config, ws.remote()).await?;
    model
        .secrets
        .extend(ws.remote().api().api_key().map(String::from));
    let ws = Arc::new(ws);
    let conversation = conversation(config, ws.clone(), ws.remote(), &mut model).await?;
    Ok(session(ws, conversation, model))
}

async fn open_apptainer(config: &RunConfig, repo_dir: &Path) -> Result<SandboxSession> {
    let s = &config.sandboxes;
    let source = match (&s.apptainer_sif, &s.apptainer_image) {
        (Some(sif), _) => SifSource::File(sif.clone()),
        (None, image) => SifSource::Image(image.clone().unwrap_or_default()),
    };
    let binary = match &config.docker.sandbox_binary {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .context("cannot find this binary to run in the sandbox; pass --sandbox-binary")?,
    };
    let mut opts = ApptainerOptions::new(source, binary);
    if let Some(cache) = &s.apptainer_cache {
        opts.cache_dir = cache.clone();
    }
    opts.program = s.apptainer_program.clone();
    opts.binds = s.apptainer_binds.clone();
    opts.fakeroot = s.apptainer_fakeroot;
    opts.gpu = s.apptainer_gpu;
    opts.env = config.forward_env.clone();
    opts.workdir = config.sandbox_workdir.clone();
    opts.exclude = super::outputs_in_repo(config);
    eprintln!("sandcrab: starting an Apptainer container …");
    let ws = ApptainerWorkspace::start(opts, Some(repo_dir))
        .await
        .map_err(|e| BadInput::new(e.to_string()))?;
    let mut model = relayed_model(config, ws.remote()).await?;
    let ws = Arc::new(ws);
    let conversation = conversation(config, ws.clone(), ws.remote(), &mut model).await?;
    Ok(session(ws, conversation, model))
}

fn session(
    workspace: Arc<dyn Workspace>,
    conversation: Box<dyn Conversation>,
    model: AgentModel,
) -> SandboxSession {
    SandboxSession {
        workspace,
        conversation,
        relay: model.relay,
        secrets: model.secrets,
        model: model.model,
    }
}

/// The conversation on the sandbox's agent-server, watching the sandbox (a sandbox that stops
/// mid-run ends the run at once).
async fn conversation(
    config: &RunConfig,
    sandbox: Arc<dyn Workspace>,
    remote: &RemoteWorkspace,
    model: &mut AgentModel,
) -> Result<Box<dyn Conversation>> {
    let options = super::remote_options(config, model.secrets.iter().cloned());
    let mut conversation = RemoteConversation::create(remote, model.spec.clone(), options).await?;
    conversation.watch_sandbox(sandbox);
    Ok(Box::new(conversation))
}

/// The Cloud account's model (`get_llm()`).
async fn account_model(ws: &CloudWorkspace) -> Result<AgentModel> {
    let llm = ws.get_llm().await?;
    let model = llm.model.clone().ok_or_else(|| {
        BadInput::new(
            "the OpenHands Cloud account has no LLM model set; pass --model (and --llm-api-key)",
        )
    })?;
    let mut spec = RemoteAgentSpec::new(model.clone());
    spec.base_url = llm.base_url;
    spec.api_key = llm.api_key.clone();
    Ok(AgentModel {
        spec,
        relay: None,
        secrets: llm.api_key.into_iter().collect(),
        model: Some(model),
    })
}

/// The configured model, reached from the sandbox directly (its key in the agent settings).
async fn direct_model(config: &RunConfig, remote: &RemoteWorkspace) -> Result<AgentModel> {
    if let Some(spec) = scripted_spec(config, remote).await? {
        return Ok(AgentModel::plain(spec));
    }
    let mut spec = RemoteAgentSpec::new(config.llm.model.clone());
    spec.llm_settings = crate::llm::settings::to_openhands(&config.llm);
    spec.base_url = config.llm.base_url.clone();
    spec.api_key = config.llm.api_key.clone();
    Ok(AgentModel::plain(spec))
}

/// The configured model through a relay on this host's loopback (the key stays here).
async fn relayed_model(config: &RunConfig, remote: &RemoteWorkspace) -> Result<AgentModel> {
    if let Some(spec) = scripted_spec(config, remote).await? {
        return Ok(AgentModel::plain(spec));
    }
    let Endpoint::Http {
        anthropic,
        base_url,
    } = endpoint(&config.llm).map_err(|e| BadInput::new(e.to_string()))?
    else {
        unreachable!("scripted models are handled above");
    };
    let bind = ([127, 0, 0, 1], 0).into();
    let relay = super::docker::start_relay(config, anthropic, base_url, bind).await?;
    let mut spec = RemoteAgentSpec::new(config.llm.model.clone());
    spec.llm_settings = crate::llm::settings::to_openhands(&config.llm);
    spec.base_url = Some(relay.base_url());
    spec.api_key = Some(relay.token().to_string());
    let secrets = vec![relay.token().to_string()];
    Ok(AgentModel {
        spec,
        relay: Some(relay),
        secrets,
        model: None,
    })
}

/// A scripted model: its file uploaded into the sandbox.
async fn scripted_spec(
    config: &RunConfig,
    remote: &RemoteWorkspace,
) -> Result<Option<RemoteAgentSpec>> {
    let Endpoint::Scripted { path } =
        endpoint(&config.llm).map_err(|e| BadInput::new(e.to_string()))?
    else {
        return Ok(None);
    };
    let local = super::docker::script_file(config, &path)?;
    let at = format!(
        "/tmp/.sandcrab-script-{}.yaml",
        uuid::Uuid::new_v4().simple()
    );
    let copied = remote.upload(&local, &at).await?;
    anyhow::ensure!(
        copied.success,
        "cannot copy the script into the sandbox: {}",
        copied.error.unwrap_or_default()
    );
    Ok(Some(RemoteAgentSpec::new(format!("scripted:{at}"))))
}

/// Gives the conversation the account's secrets as `LookupSecret` references (`POST
/// /api/conversations/{id}/secrets`); a failure is a warning, the run goes on without them.
async fn give_cloud_secrets(ws: &CloudWorkspace, conversation_id: &str, names: Option<&[String]>) {
    let given = async {
        let secrets = ws.get_secrets(names).await?;
        if secrets.is_empty() {
            return Ok::<usize, anyhow::Error>(0);
        }
        let body: serde_json::Map<String, Value> = secrets
            .iter()
            .map(|(name, s)| (name.clone(), s.to_json()))
            .collect();
        let path = format!("/api/conversations/{conversation_id}/secrets");
        let api = ws.remote().api();
        let rb = api
            .request(reqwest::Method::POST, &path)
            .json(&json!({"secrets": body}));
        api.send(&format!("POST {path}"), rb).await?;
        Ok(secrets.len())
    };
    match given.await {
        Ok(0) => {}
        Ok(n) => eprintln!(
            "sandcrab: {n} account secret(s) given to the agent (resolved in the sandbox)"
        ),
        Err(e) => {
            eprintln!("sandcrab: warning: cannot give the account's secrets to the agent: {e}")
        }
    }
}

/// A start timeout from a flag, at most `duration::MAX` (a huge one would overflow a deadline).
fn whole_seconds(flag: &str, value: u64) -> Result<Duration, BadInput> {
    duration::whole_seconds(flag, value).map_err(BadInput::new)
}
