//! The agent: asks the model for the next actions, runs them with its tools, and records
//! everything as events. One `step` is one model call and the tool calls it asked for.

pub mod condenser;
mod confirm;
pub mod hooks;
pub mod messages;
pub mod prompt;
pub mod repo_context;
pub mod security;
pub mod skills;
pub mod stuck;
pub mod tools;
pub mod truncate;

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};

use crate::event_log::EventLog;
use crate::llm::context_window::is_context_window_error;
use crate::llm::{ChatRequest, ChatResponse, LlmClient, LlmError, ToolCall, ToolSpec};
use crate::protocol::event::{ActionEvent, Event, EventBody, MessageToolCall, Source, TextContent};
use crate::protocol::metrics::{ConversationStats, Prices};
use condenser::view::View;
use condenser::Condenser;
pub use confirm::pending_actions;
use tools::Tool;

/// Condense-and-retry rounds after context-window errors within one step.
const MAX_OVERFLOW_RETRIES: u32 = 2;

/// What a step ended in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepOutcome {
    /// More steps are needed.
    Continue,
    /// The agent called `finish` or answered in plain text.
    Finished,
    /// The step's actions are recorded but wait for a yes (the confirmation policy).
    WaitingForConfirmation,
}

/// Why a step could not complete.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error("cannot record an event: {0:#}")]
    Store(anyhow::Error),
    /// Condensing cannot make the history fit (it would condense again with no new action).
    #[error("{0}")]
    Thrashing(String),
}

pub struct Agent {
    llm: Arc<dyn LlmClient>,
    tools: Vec<Arc<dyn Tool>>,
    specs: Vec<ToolSpec>,
    /// How many of `tools` came with `new`: `add_tools` puts later ones after them, before
    /// those the context adds (`invoke_skill`), so the model sees the order a fresh agent has.
    given_tools: usize,
    system_prompt: String,
    prices: Prices,
    /// Sent with every call (OpenAI's `prompt_cache_key`); set by the conversation.
    conversation_id: Option<String>,
    condenser: Option<Condenser>,
    /// Repository instructions and skills (see `skills`).
    skills: Option<skills::agent::SkillState>,
    /// Hooks around tool calls, messages, the session and finishing (see `hooks`).
    hooks: Option<Arc<hooks::run::HookRunner>>,
    /// Confirmation policy and security analyser (shared: the server changes them live).
    security: security::SharedSecurity,
}

/// A tool call turned into an action (with the model's `security_risk` label), or the message
/// explaining why it could not be.
type Prepared = Result<(Arc<dyn Tool>, Value, security::SecurityRisk), String>;

impl Agent {
    pub fn new(
        llm: Arc<dyn LlmClient>,
        tools: Vec<Arc<dyn Tool>>,
        system_prompt: String,
        prices: Prices,
    ) -> Self {
        let specs = tools.iter().map(|t| t.spec()).collect();
        Agent {
            llm,
            given_tools: tools.len(),
            tools,
            specs,
            system_prompt,
            prices,
            conversation_id: None,
            condenser: None,
            skills: None,
            hooks: None,
            security: security::SharedSecurity::default(),
        }
    }

    /// The agent with these confirmation and analyser settings.
    pub fn with_security(self, settings: security::SecuritySettings) -> Self {
        *self.security.write().unwrap_or_else(|p| p.into_inner()) = settings;
        self
    }

    /// The live confirmation and analyser settings.
    pub fn security(&self) -> security::SharedSecurity {
        self.security.clone()
    }

    fn security_settings(&self) -> security::SecuritySettings {
        self.security
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The conversation this agent works in (its calls share one prompt cache).
    pub fn set_conversation_id(&mut self, id: &str) {
        self.conversation_id = Some(id.to_string());
    }

    /// The agent with a condenser that keeps its history within the model's window.
    pub fn with_condenser(mut self, condenser: Condenser) -> Self {
        self.condenser = Some(condenser);
        self
    }

    pub fn condenser(&self) -> Option<&Condenser> {
        self.condenser.as_ref()
    }

    pub fn model_name(&self) -> &str {
        self.llm.model_name()
    }

    pub fn tools(&self) -> &[Arc<dyn Tool>] {
        &self.tools
    }

    /// Adds tools that were not there when the agent was made (the MCP servers of a reloaded
    /// conversation), where `new` would have put them.
    pub fn add_tools(&mut self, tools: Vec<Arc<dyn Tool>>) {
        for tool in tools {
            self.specs.insert(self.given_tools, tool.spec());
            self.tools.insert(self.given_tools, tool);
            self.given_tools += 1;
        }
    }

    /// The first event of a conversation: the system prompt and the tool definitions, in
    /// OpenHands' `ToolDefinition` shape (`kind` `TerminalTool`, `action_type` `TerminalAction`...).
    pub fn system_prompt_event(&self) -> Event {
        let tools = self.tools.iter().map(|t| t.definition()).collect();
        Event::new(
            Source::Agent,
            EventBody::SystemPromptEvent {
                system_prompt: TextContent::new(self.system_prompt.clone()),
                tools,
                dynamic_context: self.dynamic_context(),
            },
        )
    }

    /// The request for the next completion: the view of `events` and the tools.
    pub fn request(&self, events: &[Event]) -> ChatRequest {
        let mut tools = self.specs.clone();
        if self.security_settings().analyzer.is_some() {
            for (spec, tool) in tools.iter_mut().zip(&self.tools) {
                if !tool.read_only() && !matches!(tool.name(), "finish" | "think") {
                    spec.parameters["properties"]["security_risk"] = security::risk_parameter();
                }
            }
        }
        ChatRequest {
            messages: messages::to_chat_messages(View::from_events(events).iter()),
            tools,
            conversation_id: self.conversation_id.clone(),
        }
    }

    /// One step: a completion (recorded in `stats` under `agent`), then every tool call it
    /// asked for, recorded in `log`. With a condenser, the history is condensed first when it
    /// must be, and a context-window error leads to a `CondensationRequest`, a condensation and
    /// a retry instead of a failure.
    pub async fn step(
        &self,
        log: &mut EventLog,
        stats: &mut ConversationStats,
    ) -> Result<StepOutcome, StepError> {
        let mut overflows = 0;
        let response = loop {
            if let Some(condenser) = &self.condenser {
                self.condense_if_needed(condenser, log, stats).await?;
            }
            let request = self.request(log.events());
            let started = Instant::now();
            match self.llm.complete(&request).await {
                Ok(response) => {
                    let latency = started.elapsed();
                    stats.record("agent", self.model_name(), &response, latency, self.prices);
                    if let Some(condenser) = &self.condenser {
                        let chars = condenser::estimate::request_chars(&request);
                        condenser.calibrate(chars, response.usage.prompt_tokens);
                    }
                    break response;
                }
                Err(e) if is_context_window_error(&e) && overflows < MAX_OVERFLOW_RETRIES => {
                    let Some(condenser) = &self.condenser else {
                        return Err(e.into());
                    };
                    overflows += 1;
                    condenser.learn_overflow(&e, condenser::estimate::request_chars(&request));
                    tracing::warn!(
                        "the prompt did not fit the model's context window; condensing the history and retrying"
                    );
                    log.push(Event::new(
                        Source::Environment,
                        EventBody::CondensationRequest {},
                    ))
                    .map_err(StepError::Store)?;
                }
                Err(e) => return Err(e.into()),
            }
        };
        if response.tool_calls.is_empty() {
            return self.reply_without_tools(log, response);
        }
        let prepared: Vec<Prepared> = response
            .tool_calls
            .iter()
            .map(|c| self.prepare(c))
            .collect();
        let settings = self.security_settings();
        let mut action_ids = Vec::with_capacity(prepared.len());
        for (i, (call, prep)) in response.tool_calls.iter().zip(&prepared).enumerate() {
            let event = action_event(&response, i, call, prep, settings.analyzer.is_some());
            action_ids.push(event.id.clone());
            log.push(event).map_err(StepError::Store)?;
        }
        if confirm::needs_confirmation(log, &settings, &prepared, &action_ids)? {
            for (call, prep) in response.tool_calls.iter().zip(&prepared) {
                if let Err(message) = prep {
                    log.push(Event::agent_error(&call.name, &call.id, message.clone()))
                        .map_err(StepError::Store)?;
                }
            }
            return Ok(StepOutcome::WaitingForConfirmation);
        }
        let mut outcome = StepOutcome::Continue;
        for ((call, prep), action_id) in response.tool_calls.iter().zip(prepared).zip(action_ids) {
            let event = match prep {
                Err(message) => Event::agent_error(&call.name, &call.id, message),
                Ok((tool, action, _)) => {
                    let ran = self.call_tool(log, call, &tool, &action, action_id).await?;
                    if ran && tool.name() == "finish" {
                        outcome = StepOutcome::Finished;
                    }
                    continue;
                }
            };
            log.push(event).map_err(StepError::Store)?;
        }
        Ok(outcome)
    }

    /// Handles a `CondensationRequest` at once (`POST .../condense` on an idle conversation):
    /// the request is recorded and the condensation made. `false` without a condenser.
    pub async fn condense_now(
        &self,
        log: &mut EventLog,
        stats: &mut ConversationStats,
    ) -> Result<bool, StepError> {
        let Some(condenser) = &self.condenser else {
            return Ok(false);
        };
        log.push(Event::new(
            Source::Environment,
            EventBody::CondensationRequest {},
        ))
        .map_err(StepError::Store)?;
        self.condense(condenser, log, stats, false).await?;
        Ok(true)
    }

    /// Condenses the history when the condenser says it must, recording the `Condensation`.
    async fn condense_if_needed(
        &self,
        condenser: &Condenser,
        log: &mut EventLog,
        stats: &mut ConversationStats,
    ) -> Result<(), StepError> {
        self.condense(condenser, log, stats, true).await
    }

    async fn condense(
        &self,
        condenser: &Condenser,
        log: &mut EventLog,
        stats: &mut ConversationStats,
        guard: bool,
    ) -> Result<(), StepError> {
        let chars = condenser::estimate::request_chars(&self.request(log.events()));
        let condensation = {
            let view = View::from_events(log.events());
            let reasons = condenser.reasons(&view, chars);
            if !reasons.any() {
                return Ok(());
            }
            if guard && condenser::thrashing(log.events()) {
                return Err(StepError::Thrashing(format!(
                    "the history still does not fit the model's context window ({} tokens planned) after a condensation with no new action; give the model a larger window (--context-window) or smaller tool outputs",
                    condenser.window()
                )));
            }
            condenser.condense(&view, reasons, chars, stats).await?
        };
        if let Some(event) = condensation {
            log.push(event).map_err(StepError::Store)?;
        }
        Ok(())
    }

    /// A reply with no tool call: a final answer, or an empty turn the model is nudged out of.
    fn reply_without_tools(
        &self,
        log: &mut EventLog,
        response: ChatResponse,
    ) -> Result<StepOutcome, StepError> {
        let text = response.content.unwrap_or_default();
        if text.trim().is_empty() {
            let nudge =
                "Your last reply had neither text nor a tool call. Continue the task with a \
                         tool call, or call `finish` if it is done.";
            log.push(Event::message(Source::Environment, "user", nudge))
                .map_err(StepError::Store)?;
            return Ok(StepOutcome::Continue);
        }
        let mut event = Event::message(Source::Agent, "assistant", text);
        if let EventBody::MessageEvent {
            llm_response_id, ..
        } = &mut event.body
        {
            *llm_response_id = Some(response.id);
        }
        log.push(event).map_err(StepError::Store)?;
        Ok(StepOutcome::Finished)
    }

    /// Finds the tool and parses the arguments; an `Err` is a message for the model.
    fn prepare(&self, call: &ToolCall) -> Prepared {
        let Some(tool) = self.tools.iter().find(|t| t.name() == call.name) else {
            let names: Vec<&str> = self.tools.iter().map(|t| t.name()).collect();
            return Err(format!(
                "Tool '{}' does not exist. Available tools: {}.",
                call.name,
                names.join(", ")
            ));
        };
        let arguments = if call.arguments.trim().is_empty() {
            "{}"
        } else {
            call.arguments.as_str()
        };
        let mut args: Value = serde_json::from_str(arguments).map_err(|e| {
            format!(
                "The arguments of your '{}' call are not valid JSON ({e}). Call the tool again with a \
                 JSON object of arguments.",
                call.name
            )
        })?;
        let label =
            confirm::take_risk_label(&mut args, self.security_settings().analyzer.is_some())?;
        let action = tool.parse_action(&args)?;
        Ok((tool.clone(), action, label))
    }
}

/// OpenHands' serialized `ToolDefinition` of the tool `name` (`file_editor` → `FileEditorTool`).
pub(crate) fn tool_definition(name: &str, description: &str) -> Value {
    let camel: String = name
        .split('_')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or(String::new(), |c| {
                c.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect();
    json!({
        "kind": format!("{camel}Tool"),
        "title": name,
        "description": description,
        "action_type": format!("{camel}Action"),
        "observation_type": format!("{camel}Observation"),
        "annotations": null,
        "meta": null,
    })
}

fn action_event(
    response: &ChatResponse,
    index: usize,
    call: &ToolCall,
    prep: &Prepared,
    labelled: bool,
) -> Event {
    let thought = match (&response.content, index) {
        (Some(text), 0) if !text.trim().is_empty() => vec![TextContent::new(text.clone())],
        _ => Vec::new(),
    };
    let (action, summary, risk) = match prep {
        Ok((tool, action, risk)) => (Some(action.clone()), Some(tool.summarize(action)), *risk),
        Err(_) => (None, None, security::SecurityRisk::Unknown),
    };
    let risk = if labelled {
        risk
    } else {
        security::SecurityRisk::Unknown
    };
    Event::new(
        Source::Agent,
        EventBody::ActionEvent(Box::new(ActionEvent {
            thought,
            reasoning_content: (index == 0).then(|| response.reasoning.clone()).flatten(),
            thinking_blocks: match index {
                0 => response.thinking_blocks.clone(),
                _ => Vec::new(),
            },
            responses_reasoning_item: (index == 0)
                .then(|| response.reasoning_item.clone())
                .flatten(),
            action,
            tool_name: call.name.clone(),
            tool_call_id: call.id.clone(),
            tool_call: MessageToolCall {
                id: call.id.clone(),
                name: call.name.clone(),
                arguments: call.arguments.clone(),
                origin: "completion".into(),
                responses_item_id: None,
            },
            llm_response_id: response.id.clone(),
            security_risk: risk.as_str().into(),
            critic_result: None,
            summary,
        })),
    )
}

fn observation_event(call: &ToolCall, output: &tools::ToolOutput, action_id: String) -> Event {
    Event::new(
        Source::Environment,
        EventBody::ObservationEvent {
            tool_name: call.name.clone(),
            tool_call_id: call.id.clone(),
            observation: output.observation.clone(),
            action_id,
            extended_content: Vec::new(),
        },
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn tool_definitions_use_openhands_kinds() {
        let def = super::tool_definition("file_editor", "edits");
        assert_eq!(def["kind"], "FileEditorTool");
        assert_eq!(def["action_type"], "FileEditorAction");
        assert_eq!(def["observation_type"], "FileEditorObservation");
        assert_eq!(def["title"], "file_editor");
    }
}
