//! `--workspace remote`: a running agent-server (ours or OpenHands') as the workspace, and a
//! `RemoteConversation` whose loop runs in that server.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::config::RunConfig;
use crate::conversation::remote::{RemoteAgentSpec, RemoteConversation, RemoteOptions};
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
    let options = RemoteOptions {
        conversation_id: config.conversation_id.clone(),
        max_iterations: config.max_iterations,
        max_budget_usd: config.max_budget_usd,
        stuck_detection: config.stuck_detection,
        condenser: config.condenser.clone(),
        agent_context: config.repo_context.agent_context_json(),
        hook_config: config.repo_context.hook_config_json(),
        mcp_config: config.mcp.clone(),
        mcp_secrets: config.mcp_secrets(),
        security: config.security.clone(),
        headless: Some(config.headless),
        secrets: config.secrets.to_vec(),
    };
    let conversation = RemoteConversation::create(&workspace, spec, options).await?;
    Ok((Arc::new(workspace), Box::new(conversation)))
}
