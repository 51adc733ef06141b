//! The server's conversations: each is a `LocalConversation` that runs in a background task,
//! with a view (events, status, stats) that requests read while it runs, and a version counter
//! that wakes WebSocket subscribers. Conversations persist under the conversations folder with
//! their create request, and are loaded back when the server starts (their MCP servers connect
//! again on their next run).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use anyhow::{Context, Result};
use serde_json::{json, Value};
use tokio::sync::{watch, Mutex};

use super::spec::StartRequest;
use crate::conversation::local::Inbox;
use crate::conversation::{final_response, ConversationOptions, LocalConversation};
use crate::event_log::SharedRedactor;
use crate::protocol::event::{now_timestamp, Event, EventBody};
use crate::protocol::metrics::ConversationStats;
use crate::protocol::state::{ExecutionStatus, WorkspaceInfo};
use crate::server::error::ApiError;
use crate::server::ServerConfig;

const REQUEST_FILE: &str = "request.json";
/// How long an answer to a confirmation waits for the run that asked for it to return.
const RUN_END_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What requests read of a conversation while it may be running.
pub struct View {
    pub events: Vec<Event>,
    pub status: ExecutionStatus,
    pub stats: ConversationStats,
    pub updated_at: String,
    /// Bumped when a run ends: subscribers then get a `full_state` snapshot.
    pub runs_ended: u64,
    /// Bumped when the confirmation policy or analyser changes: a `full_state` snapshot too.
    pub settings_changed: u64,
}

pub struct Handle {
    pub id: String,
    pub request: StartRequest,
    pub working_dir: PathBuf,
    pub created_at: String,
    persistence_dir: PathBuf,
    conversation: Mutex<LocalConversation>,
    view: Arc<RwLock<View>>,
    version: watch::Sender<u64>,
    pause: Arc<AtomicBool>,
    condense: Arc<AtomicBool>,
    condenses: bool,
    inbox: Inbox,
    redactor: SharedRedactor,
    running: AtomicBool,
    security: crate::agent::security::SharedSecurity,
}

impl Handle {
    fn new(
        conversation: LocalConversation,
        request: StartRequest,
        working_dir: PathBuf,
        persistence_dir: PathBuf,
    ) -> Arc<Self> {
        let mut conversation = conversation;
        let view = Arc::new(RwLock::new(View {
            events: conversation.events().to_vec(),
            status: conversation.status(),
            stats: conversation.stats().clone(),
            updated_at: now_timestamp(),
            runs_ended: 0,
            settings_changed: 0,
        }));
        let (version, _) = watch::channel(0u64);
        conversation.add_listener(view_updater(view.clone(), version.clone()));
        Arc::new(Handle {
            id: conversation.id().to_string(),
            created_at: conversation.state().created_at.clone(),
            pause: conversation.pause_handle(),
            condense: conversation.condense_handle(),
            condenses: conversation.handles_condensation(),
            inbox: conversation.inbox(),
            redactor: conversation.redactor(),
            security: conversation.security(),
            conversation: Mutex::new(conversation),
            request,
            working_dir,
            persistence_dir,
            view,
            version,
            running: AtomicBool::new(false),
        })
    }

    pub fn view(&self) -> std::sync::RwLockReadGuard<'_, View> {
        self.view.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes when events are added or a run ends.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// The execution status the view shows now.
    fn status(&self) -> ExecutionStatus {
        self.view.read().unwrap_or_else(|p| p.into_inner()).status
    }

    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    /// OpenHands' `ConversationInfo`.
    pub fn info(&self) -> Value {
        let view = self.view();
        let security = self.security_settings();
        json!({
            "id": self.id,
            "workspace": {"kind": "LocalWorkspace", "working_dir": self.working_dir.to_string_lossy()},
            "persistence_dir": self.persistence_dir.to_string_lossy(),
            "max_iterations": self.request.max_iterations,
            "stuck_detection": self.request.stuck_detection,
            "execution_status": view.status.as_str(),
            "confirmation_policy": security.policy,
            "security_analyzer": security.analyzer,
            "activated_knowledge_skills": [],
            "invoked_skills": [],
            "blocked_actions": {},
            "blocked_messages": {},
            "stats": view.stats,
            "secret_registry": {"secret_sources": {}},
            "agent_state": {},
            "title": null,
            "created_at": self.created_at,
            "updated_at": view.updated_at,
            "tags": self.request.tags,
            "agent": self.request.masked_agent(),
            "client_tools": [],
            "tool_module_qualnames": {},
            "hook_config": self.request.hook_config,
        })
    }

    /// A `full_state` state update, as OpenHands sends when a subscriber joins and a run ends.
    pub fn full_state_event(&self) -> Event {
        Event::state_update("full_state", self.info())
    }

    /// Adds a user message; a running conversation takes it in before its next step.
    pub async fn send_message(self: &Arc<Self>, text: String, run: bool) -> Result<(), ApiError> {
        if self.is_running() {
            self.inbox
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(text);
            return Ok(());
        }
        self.conversation.lock().await.send_message(&text).await?;
        if run {
            self.start_run().or_else(|e| {
                if e.status.as_u16() == 409 {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
        }
        Ok(())
    }

    /// The conversation's confirmation policy and security analyser now.
    pub fn security_settings(&self) -> crate::agent::security::SecuritySettings {
        self.security
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Changes the confirmation policy and/or the analyser (from the next batch on).
    pub fn update_security(
        &self,
        change: impl FnOnce(&mut crate::agent::security::SecuritySettings),
    ) {
        change(&mut self.security.write().unwrap_or_else(|p| p.into_inner()));
        self.view
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .settings_changed += 1;
        self.version.send_modify(|v| *v += 1);
    }

    /// `respond_to_confirmation`: a yes runs the waiting actions and goes on (a run in the
    /// background); a no records a `UserRejectObservation` for each and leaves the
    /// conversation idle. 409 while a run is going.
    pub async fn respond_to_confirmation(
        self: &Arc<Self>,
        accept: bool,
        reason: &str,
    ) -> Result<(), ApiError> {
        // A client that saw `waiting_for_confirmation` may answer before the run that set it
        // has returned: wait for that run's end (it is finishing, not acting) before refusing.
        if self.is_running() && self.status() == ExecutionStatus::WaitingForConfirmation {
            let mut version = self.version.subscribe();
            let _ = tokio::time::timeout(RUN_END_WAIT, async {
                while self.is_running() && version.changed().await.is_ok() {}
            })
            .await;
        }
        if self.is_running() {
            return Err(ApiError::conflict("the conversation is running"));
        }
        if accept {
            return self.start_run();
        }
        self.conversation.lock().await.reject_pending(reason)?;
        Ok(())
    }

    /// Starts a run in the background; 409 when one is going.
    pub fn start_run(self: &Arc<Self>) -> Result<(), ApiError> {
        if self
            .running
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return Err(ApiError::conflict("the conversation is already running"));
        }
        let handle = self.clone();
        tokio::spawn(async move {
            let result = handle.conversation.lock().await.run().await;
            if let Err(e) = result {
                tracing::error!("conversation {} failed: {e:#}", handle.id);
            }
            handle.running.store(false, Ordering::SeqCst);
            handle
                .view
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .runs_ended += 1;
            handle.version.send_modify(|v| *v += 1);
        });
        Ok(())
    }

    /// Pauses after the current step, or at once when idle.
    pub async fn pause(&self) -> Result<(), ApiError> {
        self.pause.store(true, Ordering::SeqCst);
        if self.is_running() {
            return Ok(());
        }
        if let Ok(mut conversation) = self.conversation.try_lock() {
            conversation.pause_idle()?;
        }
        Ok(())
    }

    /// Forces a condensation (`POST .../condense`): at once when idle, before the next step
    /// when running; 409 when the agent has no condenser.
    pub async fn condense(&self) -> Result<(), ApiError> {
        if !self.condenses {
            return Err(ApiError::conflict(
                "the agent has no condenser that handles requests",
            ));
        }
        if self.is_running() {
            self.condense.store(true, Ordering::SeqCst);
            return Ok(());
        }
        match self.conversation.try_lock() {
            Ok(mut conversation) => {
                conversation.condense_now().await?;
            }
            Err(_) => self.condense.store(true, Ordering::SeqCst),
        }
        Ok(())
    }

    pub fn final_response(&self) -> String {
        final_response(&self.view().events).unwrap_or_default()
    }

    /// Hides these values from now on.
    pub fn add_secrets(&self, values: Vec<String>) {
        self.redactor
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .add(values);
    }

    /// Waits for a run to stop and saves the conversation.
    async fn close(&self) {
        self.pause.store(true, Ordering::SeqCst);
        if let Err(e) = self.conversation.lock().await.close().await {
            tracing::warn!("conversation {}: {e:#}", self.id);
        }
    }
}

/// Mirrors each event into the view and wakes subscribers.
fn view_updater(
    view: Arc<RwLock<View>>,
    version: watch::Sender<u64>,
) -> crate::event_log::Listener {
    Box::new(move |event: &Event| {
        {
            let mut view = view.write().unwrap_or_else(|p| p.into_inner());
            if let EventBody::ConversationStateUpdateEvent { key, value } = &event.body {
                match key.as_str() {
                    "execution_status" => {
                        view.status = serde_json::from_value(value.clone()).unwrap_or(view.status)
                    }
                    "stats" => {
                        view.stats = serde_json::from_value(value.clone()).unwrap_or_default()
                    }
                    _ => {}
                }
            }
            view.events.push(event.clone());
            view.updated_at = event.timestamp.clone();
        }
        version.send_modify(|v| *v += 1);
    })
}

/// Every conversation of the server.
#[derive(Clone)]
pub struct ConversationService {
    config: Arc<ServerConfig>,
    conversations: Arc<RwLock<HashMap<String, Arc<Handle>>>>,
}

impl ConversationService {
    /// Loads the conversations persisted under the conversations folder.
    pub fn open(config: Arc<ServerConfig>) -> Result<Self> {
        let dir = &config.conversations_dir;
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the conversations folder {}", dir.display()))?;
        let service = ConversationService {
            config: config.clone(),
            conversations: Arc::default(),
        };
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path().join(REQUEST_FILE);
            if path.is_file() {
                if let Err(e) = service.restore(&path) {
                    tracing::warn!("cannot load the conversation at {}: {e:#}", path.display());
                }
            }
        }
        Ok(service)
    }

    fn restore(&self, request_file: &Path) -> Result<()> {
        let request: StartRequest = serde_json::from_slice(&std::fs::read(request_file)?)?;
        // Its MCP servers connect when it runs again, not at start-up: the server comes up at
        // once, and a conversation that never runs again starts none.
        let late = request.mcp_config().is_ok_and(|c| !c.is_empty());
        self.build(request, Vec::new(), late)
            .map_err(|e| anyhow::anyhow!(e.detail))?;
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<Arc<Handle>> {
        let id = normalize_id(id).unwrap_or_else(|| id.to_string());
        self.read().get(&id).cloned()
    }

    /// Every conversation, oldest first.
    pub fn list(&self) -> Vec<Arc<Handle>> {
        let mut all: Vec<_> = self.read().values().cloned().collect();
        all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        all
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Handle>>> {
        self.conversations.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates a conversation (or returns the existing one with that id: `false`).
    pub async fn create(&self, mut request: StartRequest) -> Result<(Arc<Handle>, bool), ApiError> {
        let id = match &request.conversation_id {
            Some(id) => normalize_id(id).ok_or_else(|| {
                ApiError::new(
                    axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    format!("conversation_id '{id}' is not a UUID"),
                )
            })?,
            None => uuid::Uuid::new_v4().to_string(),
        };
        if let Some(existing) = self.get(&id) {
            return Ok((existing, false));
        }
        request.conversation_id = Some(id);
        let initial = request.initial_message.take();
        let working_dir = request.working_dir(&self.config.working_dir);
        std::fs::create_dir_all(&working_dir)?;
        let mcp_tools = request
            .start_mcp(&working_dir)
            .await
            .map_err(ApiError::bad_request)?;
        let handle = self.build(request, mcp_tools, false)?;
        self.save_request(&handle)?;
        if let Some(message) = initial {
            handle.send_message(message.text(), message.run).await?;
        }
        Ok((handle, true))
    }

    /// Opens (or resumes) the conversation a request describes and registers it. With
    /// `late_mcp`, its MCP servers start when it next runs (a conversation loaded back).
    fn build(
        &self,
        request: StartRequest,
        mcp_tools: Vec<Arc<dyn crate::agent::tools::Tool>>,
        late_mcp: bool,
    ) -> Result<Arc<Handle>, ApiError> {
        let id = request
            .conversation_id
            .clone()
            .ok_or_else(|| ApiError::internal("a stored request has no id"))?;
        let working_dir = request.working_dir(&self.config.working_dir);
        std::fs::create_dir_all(&working_dir)?;
        let env_remove = crate::secret_env::names_to_remove();
        let agent = request
            .build_agent(&working_dir, &env_remove, mcp_tools)
            .map_err(ApiError::bad_request)?;
        let mut options = ConversationOptions::new(&working_dir.to_string_lossy());
        options.id = Some(id.clone());
        options.persistence_dir = Some(self.config.conversations_dir.clone());
        options.max_iterations = request.max_iterations;
        options.max_budget_usd = request.max_budget_per_run.filter(|b| *b > 0.0);
        options.stuck_detection = request.stuck_detection;
        options.secrets = request
            .secret_values()
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        options.workspace = WorkspaceInfo {
            kind: "LocalWorkspace".into(),
            working_dir: working_dir.to_string_lossy().into_owned(),
        };
        let mut conversation = LocalConversation::open(agent, options)?;
        if late_mcp {
            let (request, dir) = (Arc::new(request.clone()), working_dir.clone());
            conversation.set_late_tools(Arc::new(move || {
                let (request, dir) = (request.clone(), dir.clone());
                Box::pin(async move { request.start_mcp(&dir).await })
            }));
        }
        let handle = Handle::new(
            conversation,
            request,
            working_dir,
            self.config.conversations_dir.join(&id),
        );
        self.conversations
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, handle.clone());
        Ok(handle)
    }

    /// Keeps the create request beside the events (owner-only: it may hold the LLM key), so the
    /// conversation can be rebuilt after a restart.
    fn save_request(&self, handle: &Handle) -> Result<(), ApiError> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self
            .config
            .conversations_dir
            .join(&handle.id)
            .join(REQUEST_FILE);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        serde_json::to_writer_pretty(&mut file, &handle.request)
            .map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(())
    }

    /// Stops and forgets a conversation, and removes its files.
    pub async fn delete(&self, id: &str) -> Result<(), ApiError> {
        let handle = self
            .get(id)
            .ok_or_else(|| ApiError::not_found(format!("conversation {id} not found")))?;
        self.conversations
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&handle.id);
        handle.close().await;
        let dir = self.config.conversations_dir.join(&handle.id);
        let _ = tokio::fs::remove_dir_all(dir).await;
        Ok(())
    }

    /// Pauses every run and saves every conversation (server shutdown).
    pub async fn shutdown(&self) {
        let all = self.list();
        for handle in &all {
            handle.pause.store(true, Ordering::SeqCst);
        }
        for handle in all {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), handle.close()).await;
        }
    }
}

/// A UUID in its hyphenated form (OpenHands sends both forms).
pub fn normalize_id(id: &str) -> Option<String> {
    uuid::Uuid::parse_str(id)
        .ok()
        .map(|u| u.hyphenated().to_string())
}
