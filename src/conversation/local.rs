//! `LocalConversation`: the agent loop in this process, with tools acting on this machine.
//! Events are persisted as they happen; opening an existing id resumes where it stopped.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Result;
use serde_json::{json, Value};

use crate::agent::hooks::agent::StopVerdict;
use crate::agent::stuck::{self, StuckThresholds};
use crate::agent::tools::Tool;
use crate::agent::{Agent, StepError, StepOutcome};
use crate::event_log::store::{self, EventStore};
use crate::event_log::{EventLog, Listener};
use crate::llm::budget::{Budget, BudgetCheck, WRAP_UP_MARKER};
use crate::protocol::event::{now_timestamp, Event, EventBody, Source};
use crate::protocol::metrics::ConversationStats;
use crate::protocol::state::{AgentInfo, ConversationState, ExecutionStatus, WorkspaceInfo};
use crate::redact::Redactor;

/// How a conversation is set up.
#[derive(Debug, Clone)]
pub struct ConversationOptions {
    /// Resume this id when it is persisted, else start it with this id.
    pub id: Option<String>,
    /// Where events are kept; `None` keeps them in memory only.
    pub persistence_dir: Option<PathBuf>,
    pub max_iterations: u32,
    pub stuck_detection: bool,
    pub stuck_thresholds: StuckThresholds,
    /// Values hidden from every event.
    pub secrets: Vec<String>,
    pub workspace: WorkspaceInfo,
    /// Stop the run once its LLM calls have cost this much (USD); see `llm::budget`.
    pub max_budget_usd: Option<f64>,
    /// What a CI run answers when actions wait for confirmation; `None`: they wait (status
    /// `waiting_for_confirmation`) for `respond_to_confirmation`.
    pub headless: Option<crate::agent::security::Headless>,
}

impl ConversationOptions {
    pub fn new(working_dir: &str) -> Self {
        ConversationOptions {
            id: None,
            persistence_dir: None,
            max_iterations: 100,
            stuck_detection: true,
            stuck_thresholds: StuckThresholds::default(),
            secrets: Vec::new(),
            workspace: WorkspaceInfo {
                kind: "LocalWorkspace".into(),
                working_dir: working_dir.into(),
            },
            max_budget_usd: None,
            headless: None,
        }
    }
}

/// Why `run` returned.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEnd {
    Finished,
    Stuck(String),
    MaxIterations(u32),
    /// The model failed for good, or an event could not be recorded.
    Error(String),
    Paused,
    /// The LLM calls cost the whole `--max-budget-usd`: OpenHands' `MaxBudgetReached` detail.
    MaxBudget(String),
    /// Actions wait for a person's yes (`respond_to_confirmation`, or `run` to approve).
    WaitingForConfirmation,
    /// Actions needed a yes that a CI run cannot give (`--on-confirmation fail`).
    ConfirmationRequired(String),
}

pub struct LocalConversation {
    agent: Agent,
    log: EventLog,
    state: ConversationState,
    options: ConversationOptions,
    pause: Arc<AtomicBool>,
    condense: Arc<AtomicBool>,
    inbox: Inbox,
    resumed: bool,
    /// Why a UserPromptSubmit hook refused the last message, until the next run reports it.
    prompt_blocked: Option<String>,
    /// Tools to start before the next run (see `set_late_tools`).
    late_tools: Option<LateTools>,
}

/// Starts tools a conversation could not have when it was opened: the MCP servers of a
/// conversation loaded back after a restart, which connect when it runs again. `Err` is why
/// they could not (the run then ends in error, and the next run tries again).
pub type LateTools = Arc<
    dyn Fn() -> futures_util::future::BoxFuture<'static, Result<Vec<Arc<dyn Tool>>, String>>
        + Send
        + Sync,
>;

/// Messages sent while the conversation runs; the loop takes them in before its next step.
pub type Inbox = Arc<std::sync::Mutex<Vec<String>>>;

impl LocalConversation {
    /// Starts a conversation, or resumes `options.id` when it is persisted.
    pub fn open(mut agent: Agent, options: ConversationOptions) -> Result<Self> {
        let id = options
            .id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        agent.set_conversation_id(&id);
        let redactor = Redactor::new(options.secrets.iter().cloned());
        let resumable = options
            .persistence_dir
            .as_deref()
            .is_some_and(|d| store::exists(d, &id));
        let (state, events) = match (&options.persistence_dir, resumable) {
            (Some(dir), true) => store::load(dir, &id)?,
            _ => (new_state(&id, &agent, &options), Vec::new()),
        };
        let store = match &options.persistence_dir {
            Some(dir) => Some(EventStore::open(dir, &id)?),
            None => None,
        };
        let log = EventLog::new(events, store, redactor);
        let mut conv = LocalConversation {
            agent,
            log,
            state,
            options,
            pause: Arc::new(AtomicBool::new(false)),
            condense: Arc::new(AtomicBool::new(false)),
            inbox: Inbox::default(),
            resumed: resumable,
            prompt_blocked: None,
            late_tools: None,
        };
        if resumable {
            conv.prepare_resume()?;
        } else {
            let system = conv.agent.system_prompt_event();
            conv.log.push(system)?;
        }
        conv.save_state()?;
        Ok(conv)
    }

    pub fn id(&self) -> &str {
        &self.state.id
    }

    /// Whether `open` found this conversation on disk.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    pub fn status(&self) -> ExecutionStatus {
        self.state.execution_status
    }

    pub fn state(&self) -> &ConversationState {
        &self.state
    }

    pub fn events(&self) -> &[Event] {
        self.log.events()
    }

    pub fn stats(&self) -> &ConversationStats {
        &self.state.stats
    }

    pub fn add_listener(&mut self, listener: Listener) {
        self.log.add_listener(listener);
    }

    /// A flag that, once set, pauses the run between steps.
    pub fn pause_handle(&self) -> Arc<AtomicBool> {
        self.pause.clone()
    }

    /// The conversation's secrets, to add more while it runs.
    pub fn redactor(&self) -> crate::event_log::SharedRedactor {
        self.log.redactor()
    }

    /// A flag that, once set, makes a running conversation condense before its next step.
    pub fn condense_handle(&self) -> Arc<AtomicBool> {
        self.condense.clone()
    }

    /// Whether the agent has a condenser (that handles condensation requests).
    pub fn handles_condensation(&self) -> bool {
        self.agent.condenser().is_some()
    }

    /// Condenses the history of a conversation that is not running. `false` without a
    /// condenser.
    pub async fn condense_now(&mut self) -> Result<bool> {
        let done = self
            .agent
            .condense_now(&mut self.log, &mut self.state.stats)
            .await
            .map_err(|e| anyhow::anyhow!("cannot condense the conversation: {e}"))?;
        self.log.push(Event::state_update(
            "stats",
            serde_json::to_value(&self.state.stats)?,
        ))?;
        self.save_state()?;
        Ok(done)
    }

    /// Where to put messages for a running conversation.
    pub fn inbox(&self) -> Inbox {
        self.inbox.clone()
    }

    /// Pauses a conversation that is not running (a running one pauses through its flag).
    pub fn pause_idle(&mut self) -> Result<()> {
        if self.state.execution_status == ExecutionStatus::Paused {
            return Ok(());
        }
        self.log
            .push(Event::new(Source::User, EventBody::PauseEvent {}))?;
        self.set_status(ExecutionStatus::Paused)
    }

    /// Adds a user message (with the skills its keywords recall, after the UserPromptSubmit
    /// hooks, which may refuse it); a finished or stuck conversation becomes idle again.
    pub async fn send_message(&mut self, text: &str) -> Result<()> {
        let mut message = self.agent.user_message(text, self.log.events());
        if let Err(reason) = self
            .agent
            .submit_prompt(&mut self.log, &mut message)
            .await?
        {
            tracing::warn!("a UserPromptSubmit hook refused the message: {reason}");
            self.prompt_blocked = Some(reason);
            return Ok(());
        }
        self.log.push(message)?;
        if self.state.execution_status.is_terminal() {
            self.set_status(ExecutionStatus::Idle)?;
        }
        Ok(())
    }

    /// Runs the agent until it finishes, gets stuck, fails, pauses or uses its iterations.
    /// A finished conversation returns at once (send a message to continue it).
    /// Tools the next run starts first (see `LateTools`).
    pub fn set_late_tools(&mut self, late: LateTools) {
        self.late_tools = Some(late);
    }

    async fn start_late_tools(&mut self) -> Result<(), String> {
        if let Some(late) = &self.late_tools {
            let tools = late().await?;
            self.agent.add_tools(tools);
            self.late_tools = None;
        }
        Ok(())
    }

    pub async fn run(&mut self) -> Result<RunEnd> {
        if self.state.execution_status == ExecutionStatus::Finished {
            return Ok(RunEnd::Finished);
        }
        // Running a conversation that waits for confirmation approves the waiting actions.
        let approved = self.state.execution_status == ExecutionStatus::WaitingForConfirmation;
        self.pause.store(false, Ordering::SeqCst);
        self.set_status(ExecutionStatus::Running)?;
        let end = match self.start_late_tools().await {
            Err(why) => RunEnd::Error(why),
            Ok(()) if approved => self.run_approved().await,
            Ok(()) => self.run_loop().await,
        };
        let status = match &end {
            RunEnd::Finished => ExecutionStatus::Finished,
            RunEnd::Stuck(_) => ExecutionStatus::Stuck,
            RunEnd::MaxIterations(_)
            | RunEnd::Error(_)
            | RunEnd::MaxBudget(_)
            | RunEnd::ConfirmationRequired(_) => ExecutionStatus::Error,
            RunEnd::Paused => ExecutionStatus::Paused,
            RunEnd::WaitingForConfirmation => ExecutionStatus::WaitingForConfirmation,
        };
        self.record_end(&end)?;
        self.set_status(status)?;
        self.log.push(Event::state_update(
            "stats",
            serde_json::to_value(&self.state.stats)?,
        ))?;
        Ok(end)
    }

    async fn run_loop(&mut self) -> RunEnd {
        let mut iterations = 0;
        let mut stop_blocks = 0;
        if let Err(e) = self.agent.start_session(&mut self.log).await {
            return RunEnd::Error(e.to_string());
        }
        loop {
            if let Err(e) = self.take_inbox().await {
                return RunEnd::Error(format!("cannot record a message: {e:#}"));
            }
            if let Some(reason) = self.prompt_blocked.take() {
                return RunEnd::Error(format!(
                    "a UserPromptSubmit hook refused the task: {reason}"
                ));
            }
            if self.pause.load(Ordering::SeqCst) {
                return RunEnd::Paused;
            }
            if self.condense.swap(false, Ordering::SeqCst) {
                let request = Event::new(Source::Environment, EventBody::CondensationRequest {});
                if let Err(e) = self.log.push(request) {
                    return RunEnd::Error(format!("cannot record an event: {e:#}"));
                }
            }
            if iterations >= self.options.max_iterations {
                return RunEnd::MaxIterations(iterations);
            }
            match self.check_budget() {
                Ok(Some(end)) => return end,
                Ok(None) => {}
                Err(e) => return RunEnd::Error(format!("cannot record a message: {e:#}")),
            }
            if self.options.stuck_detection {
                if let Some(reason) =
                    stuck::detect(self.log.events(), &self.options.stuck_thresholds)
                {
                    return RunEnd::Stuck(reason);
                }
            }
            let outcome = self.agent.step(&mut self.log, &mut self.state.stats).await;
            iterations += 1;
            self.state.iterations += 1;
            match outcome {
                Ok(StepOutcome::Finished) => {
                    match self.agent.check_stop(&mut self.log, &mut stop_blocks).await {
                        Ok(StopVerdict::Stop) => return RunEnd::Finished,
                        Ok(StopVerdict::KeepGoing) => {}
                        Ok(StopVerdict::Fail(reason)) => return RunEnd::Error(reason),
                        Err(e) => return RunEnd::Error(e.to_string()),
                    }
                }
                Ok(StepOutcome::Continue) => {}
                Ok(StepOutcome::WaitingForConfirmation) => {
                    if let Some(end) = self.answer_headless() {
                        return end;
                    }
                }
                Err(StepError::Llm(e)) => return RunEnd::Error(e.to_string()),
                Err(StepError::Thrashing(reason)) => return RunEnd::Stuck(reason),
                Err(e @ StepError::Store(_)) => return RunEnd::Error(e.to_string()),
            }
        }
    }

    /// Runs the actions that waited for confirmation, then goes on.
    async fn run_approved(&mut self) -> RunEnd {
        match self.agent.execute_pending(&mut self.log).await {
            Ok(StepOutcome::Finished) => RunEnd::Finished,
            Ok(_) => self.run_loop().await,
            Err(e) => RunEnd::Error(e.to_string()),
        }
    }

    /// Actions wait for a yes: a CI run answers on its own (reject and go on, or stop); an
    /// interactive one stops and waits. `None`: go on.
    fn answer_headless(&mut self) -> Option<RunEnd> {
        use crate::agent::security::{Headless, HEADLESS_REJECTION};
        match self.options.headless {
            None => Some(RunEnd::WaitingForConfirmation),
            Some(Headless::Reject) => {
                match self.agent.reject_pending(&mut self.log, HEADLESS_REJECTION) {
                    Ok(_) => None,
                    Err(e) => Some(RunEnd::Error(e.to_string())),
                }
            }
            Some(Headless::Fail) => {
                let waiting: Vec<String> = crate::agent::pending_actions(self.log.events())
                    .iter()
                    .map(|a| {
                        format!(
                            "{} `{}`",
                            a.tool_name,
                            a.summary.clone().unwrap_or_default()
                        )
                    })
                    .collect();
                Some(RunEnd::ConfirmationRequired(format!(
                    "the agent's next action needs a person's confirmation ({}) and nobody can confirm in this run; it was not executed. Loosen --confirmation-policy, or use --on-confirmation reject to let the agent try another way",
                    waiting.join(", ")
                )))
            }
        }
    }

    /// Rejects the actions waiting for confirmation (`respond_to_confirmation` with
    /// `accept: false`); the model reads `reason`. The conversation becomes idle.
    pub fn reject_pending(&mut self, reason: &str) -> Result<()> {
        self.agent
            .reject_pending(&mut self.log, reason)
            .map_err(|e| anyhow::anyhow!("cannot reject the waiting actions: {e}"))?;
        if self.state.execution_status == ExecutionStatus::WaitingForConfirmation {
            self.set_status(ExecutionStatus::Idle)?;
        }
        Ok(())
    }

    /// The live confirmation policy and security analyser of the agent.
    pub fn security(&self) -> crate::agent::security::SharedSecurity {
        self.agent.security()
    }

    /// Checked before every step, so after every model call (the agent's and any other call
    /// recorded in the stats): past the budget the run ends; past the wrap-up share the agent
    /// is told, once, to wrap up.
    fn check_budget(&mut self) -> Result<Option<RunEnd>> {
        let Some(max_usd) = self.options.max_budget_usd else {
            return Ok(None);
        };
        match (Budget { max_usd }).check(&self.state.stats) {
            BudgetCheck::Within => Ok(None),
            BudgetCheck::Exhausted(detail) => Ok(Some(RunEnd::MaxBudget(detail))),
            BudgetCheck::WrapUp(text) => {
                if !self.told_to_wrap_up() {
                    self.log
                        .push(Event::message(Source::Environment, "user", text))?;
                }
                Ok(None)
            }
        }
    }

    /// Whether the budget's wrap-up message is in the conversation already.
    fn told_to_wrap_up(&self) -> bool {
        self.log.events().iter().any(|e| match &e.body {
            EventBody::MessageEvent { llm_message, .. } => {
                e.source == Source::Environment
                    && llm_message.text_content().starts_with(WRAP_UP_MARKER)
            }
            _ => false,
        })
    }

    async fn take_inbox(&mut self) -> Result<()> {
        let messages: Vec<String> =
            std::mem::take(&mut *self.inbox.lock().unwrap_or_else(|p| p.into_inner()));
        for text in messages {
            self.send_message(&text).await?;
        }
        Ok(())
    }

    fn record_end(&mut self, end: &RunEnd) -> Result<()> {
        let event = match end {
            RunEnd::MaxIterations(n) => Event::conversation_error(
                "MaxIterationsReached",
                format!("the agent used all {n} iterations without finishing; raise --max-iterations or narrow the task"),
            ),
            RunEnd::Error(detail) => Event::conversation_error("LLMError", detail.clone()),
            RunEnd::Stuck(reason) => Event::conversation_error("StuckDetected", reason.clone()),
            RunEnd::MaxBudget(detail) => Event::new(
                Source::Environment,
                EventBody::ConversationErrorEvent {
                    code: "MaxBudgetReached".into(),
                    detail: detail.clone(),
                    classification: Some(json!({"kind": "quota", "retryable": false,
                        "user_action": "settings", "error_id": null})),
                },
            ),
            RunEnd::Paused => Event::new(Source::User, EventBody::PauseEvent {}),
            RunEnd::ConfirmationRequired(detail) => {
                Event::conversation_error("ConfirmationRequired", detail.clone())
            }
            RunEnd::Finished | RunEnd::WaitingForConfirmation => return Ok(()),
        };
        self.log.push(event)
    }

    fn set_status(&mut self, status: ExecutionStatus) -> Result<()> {
        self.state.execution_status = status;
        self.log.push(Event::state_update(
            "execution_status",
            json!(status.as_str()),
        ))?;
        self.save_state()
    }

    fn save_state(&mut self) -> Result<()> {
        self.state.updated_at = now_timestamp();
        if let Some(store) = self.log.store() {
            store.save_state(&self.state)?;
        }
        Ok(())
    }

    /// A resumed conversation: tools get their state back, actions cut off by the interruption
    /// get an error result, and a run that was killed mid-way becomes idle.
    fn prepare_resume(&mut self) -> Result<()> {
        self.agent.recall_path_rules(self.log.events());
        for tool in self.agent.tools() {
            if let Some(obs) = last_observation(self.log.events(), tool.name()) {
                tool.restore(&obs);
            }
        }
        let waiting = self.state.execution_status == ExecutionStatus::WaitingForConfirmation;
        for (name, call_id) in dangling_calls(self.log.events())
            .into_iter()
            .filter(|_| !waiting)
        {
            let msg = "This action was interrupted before it completed (the run was stopped); check its effects before repeating it.";
            self.log.push(Event::agent_error(&name, &call_id, msg))?;
        }
        if self.state.execution_status == ExecutionStatus::Running {
            self.state.execution_status = ExecutionStatus::Idle;
        }
        Ok(())
    }

    /// Saves the state, flushes the events and releases the tools.
    pub async fn close(&mut self) -> Result<()> {
        if let Err(e) = self.agent.end_session(&mut self.log).await {
            tracing::warn!("SessionEnd hooks: {e}");
        }
        for tool in self.agent.tools() {
            tool.close().await;
        }
        self.save_state()?;
        if let Some(store) = self.log.store() {
            store.sync()?;
        }
        Ok(())
    }
}

fn new_state(id: &str, agent: &Agent, options: &ConversationOptions) -> ConversationState {
    let now = now_timestamp();
    ConversationState {
        id: id.to_string(),
        execution_status: ExecutionStatus::Idle,
        agent: AgentInfo {
            kind: "Agent".into(),
            model: agent.model_name().to_string(),
            tools: agent.tools().iter().map(|t| t.name().to_string()).collect(),
        },
        workspace: options.workspace.clone(),
        max_iterations: options.max_iterations,
        stuck_detection: options.stuck_detection,
        stats: ConversationStats::default(),
        iterations: 0,
        created_at: now.clone(),
        updated_at: now,
    }
}

/// The last observation of `tool`, if it ran.
pub fn last_observation(events: &[Event], tool: &str) -> Option<Value> {
    events.iter().rev().find_map(|e| match &e.body {
        EventBody::ObservationEvent {
            tool_name,
            observation,
            ..
        } if tool_name == tool => Some(observation.clone()),
        _ => None,
    })
}

/// Tool calls with an action event but no observation or error after it.
fn dangling_calls(events: &[Event]) -> Vec<(String, String)> {
    let mut open: Vec<(String, String)> = Vec::new();
    for event in events {
        match &event.body {
            EventBody::ActionEvent(a) => open.push((a.tool_name.clone(), a.tool_call_id.clone())),
            EventBody::ObservationEvent { tool_call_id, .. }
            | EventBody::AgentErrorEvent { tool_call_id, .. }
            | EventBody::UserRejectObservation { tool_call_id, .. } => {
                open.retain(|(_, id)| id != tool_call_id);
            }
            _ => {}
        }
    }
    open
}

#[async_trait::async_trait]
impl super::Conversation for LocalConversation {
    fn id(&self) -> &str {
        LocalConversation::id(self)
    }

    fn resumed(&self) -> bool {
        self.resumed
    }

    fn status(&self) -> ExecutionStatus {
        self.state.execution_status
    }

    fn events(&self) -> &[Event] {
        self.log.events()
    }

    fn stats(&self) -> &ConversationStats {
        &self.state.stats
    }

    fn iterations(&self) -> u32 {
        self.state.iterations
    }

    fn add_listener(&mut self, listener: Listener) {
        self.log.add_listener(listener);
    }

    async fn send_message(&mut self, text: &str) -> Result<()> {
        LocalConversation::send_message(self, text).await
    }

    async fn run(&mut self) -> Result<RunEnd> {
        LocalConversation::run(self).await
    }

    fn pause_handle(&self) -> Arc<AtomicBool> {
        self.pause.clone()
    }

    async fn close(&mut self) -> Result<()> {
        LocalConversation::close(self).await
    }
}
