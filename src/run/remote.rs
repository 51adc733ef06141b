//! `--workspace remote`: a running agent-server (ours or OpenHands') as the workspace, and a
//! `RemoteConversation` whose loop runs in that server.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::config::RunConfig;
use crate::conversation::remote::{RemoteAgentSpec, RemoteConversation};
use crate::conversation::Conversation;
use crate::error::BadInput;
use crate::workspace::{RemoteWorkspace, Workspace};

/// How long a server may take to answer `/alive`.
const ALIVE_TIMEOUT: Duration = Duration::from_secs(30);

/// Connects to `--server-url` and opens (or attaches to) the conversation there.
pub async fn open(config: &RunConfig) -> Result<(Arc<dyn Workspace>, Box<dyn Conversation>)> {
    let url = config
        .server_url
        .as_deref()
        .ok_or_else(|| BadInput::new("--workspace remote needs --server-url URL"))?;
    let workspace = RemoteWorkspace::new(
        url,
        config.session_api_key.clone(),
        config.sandbox_workdir.clone(),
    )?;
    workspace
        .wait_until_alive(ALIVE_TIMEOUT)
        .await
        .map_err(|e| {
            BadInput::new(format!(
                "{e}; check --server-url and that the server is running"
            ))
        })?;
    let mut spec = RemoteAgentSpec::new(config.llm.model.clone());
    spec.llm_settings = crate::llm::settings::to_openhands(&config.llm);
    spec.base_url = config.llm.base_url.clone();
    spec.api_key = config.llm.api_key.clone();
    let options = super::remote_options(config, std::iter::empty());
    let conversation = RemoteConversation::create(&workspace, spec, options).await?;
    Ok((Arc::new(workspace), Box::new(conversation)))
}
