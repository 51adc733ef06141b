//! The agent-server (`sandcrab serve`): the OpenHands agent-server 1.58 API, core subset, with
//! the same paths, JSON field names, event kinds and status values, so the OpenHands Python SDK
//! can drive it and our remote client can drive theirs.

pub mod auth;
pub mod bash;
pub mod conversations;
pub mod error;
pub mod files;
pub mod git;
pub mod info;
pub mod lifetime;
pub mod sockets;
pub mod validation;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use axum::Router;

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    /// Accepted `X-Session-API-Key` values; empty = no auth (only sensible on loopback).
    pub session_api_keys: Vec<String>,
    /// Where conversations persist (`<dir>/<id>/events.jsonl`, `base_state.json`).
    pub conversations_dir: PathBuf,
    /// The default working directory of commands and conversations.
    pub working_dir: PathBuf,
    /// Exit after this long with no API request (`None`: never).
    pub idle_timeout: Option<std::time::Duration>,
    /// Exit when the parent process exits.
    pub exit_when_parent_gone: bool,
}

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<ServerConfig>,
    pub started: Instant,
    pub activity: Arc<info::Activity>,
    pub bash: bash::BashService,
    pub conversations: conversations::ConversationService,
}

impl AppState {
    pub fn new(config: ServerConfig) -> Result<Self> {
        let config = Arc::new(config);
        Ok(AppState {
            conversations: conversations::ConversationService::open(config.clone())?,
            bash: bash::BashService::new(config.working_dir.clone()),
            activity: Arc::new(info::Activity::new()),
            started: Instant::now(),
            config,
        })
    }
}

/// Every route: open info routes, `/api/*` behind the session key, and the WebSocket (which
/// authenticates with its first frame or a query parameter).
pub fn router(state: AppState) -> Router {
    let api = Router::new()
        .merge(bash::routes())
        .merge(files::routes())
        .merge(git::routes())
        .merge(conversations::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_session_key,
        ));
    Router::new()
        .merge(info::routes())
        .nest("/api", api)
        .merge(sockets::routes())
        .fallback(|| async { error::ApiError::not_found("Not Found") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            info::track_activity,
        ))
        .with_state(state)
}

/// Binds, prints the address, and serves until SIGINT/SIGTERM.
pub async fn serve(config: ServerConfig) -> Result<()> {
    let addr = format!("{}:{}", config.host, config.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| {
            format!("cannot listen on {addr}; is the port taken? pick another with --port")
        })?;
    let local: SocketAddr = listener.local_addr()?;
    let keyed = !config.session_api_keys.is_empty();
    let state = AppState::new(config)?;
    let conversations = state.conversations.clone();
    println!(
        "sandcrab serve: listening on http://{local} ({})",
        if keyed {
            "session key required"
        } else {
            "no session key: anyone who can reach this address can use it"
        }
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let stop = lifetime::stop_reason(
        state.activity.clone(),
        state.config.idle_timeout,
        state.config.exit_when_parent_gone,
    );
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            if let Some(line) = lifetime::describe(stop.await) {
                eprintln!("{line}");
            }
        })
        .await?;
    conversations.shutdown().await;
    Ok(())
}
