//! The agent's side of hooks: PreToolUse around each tool call (a block becomes a
//! `UserRejectObservation` with `rejection_source: hook`), PostToolUse after it,
//! UserPromptSubmit on each user message, SessionStart before the first step, SessionEnd at
//! close, and Stop when the agent wants to finish (a block keeps it going with
//! "[Stop hook feedback] …", at most [`MAX_STOP_BLOCKS`] times).

use std::sync::Arc;

use serde_json::{json, Value};

use super::run::{HookCall, HookRunner};
use super::HookEventType;
use crate::agent::tools::Tool;
use crate::agent::{Agent, StepError};
use crate::event_log::EventLog;
use crate::llm::ToolCall;
use crate::protocol::event::{Event, EventBody, Source, TextContent};

/// Stop-hook blocks fed back to the agent in one run; one more and the run fails.
pub const MAX_STOP_BLOCKS: u32 = 3;
/// OpenHands' prefix of Stop-hook feedback.
pub const STOP_FEEDBACK_PREFIX: &str = "[Stop hook feedback]";

/// What the Stop hooks said.
#[derive(Debug, Clone, PartialEq)]
pub enum StopVerdict {
    Stop,
    /// Blocked: the feedback is in the conversation, the agent goes on.
    KeepGoing,
    /// Blocked once too often: the run fails with this message.
    Fail(String),
}

impl Agent {
    /// The agent with hooks (they run where the agent runs).
    pub fn with_hooks(mut self, hooks: HookRunner) -> Self {
        if !hooks.config().is_empty() {
            self.hooks = Some(Arc::new(hooks));
        }
        self
    }

    pub fn hooks(&self) -> Option<&HookRunner> {
        self.hooks.as_deref()
    }

    fn session_id(&self) -> &str {
        self.conversation_id.as_deref().unwrap_or_default()
    }

    /// Runs one parsed tool call with its hooks and records what happened; `false` when a
    /// PreToolUse hook rejected it.
    pub(crate) async fn call_tool(
        &self,
        log: &mut EventLog,
        call: &ToolCall,
        tool: &Arc<dyn Tool>,
        action: &Value,
        action_id: String,
    ) -> Result<bool, StepError> {
        let hook_call = |response: Option<Value>| HookCall {
            tool_name: Some(call.name.as_str()),
            tool_input: Some(action.clone()),
            tool_response: response,
            action_id: Some(action_id.clone()),
            ..HookCall::default()
        };
        if let Some(hooks) = self
            .hooks
            .as_ref()
            .filter(|h| h.has(HookEventType::PreToolUse))
        {
            let outcome = hooks
                .run(
                    HookEventType::PreToolUse,
                    self.session_id(),
                    hook_call(None),
                )
                .await;
            push_all(log, outcome.events)?;
            if outcome.blocked {
                let reject = Event::new(
                    Source::Environment,
                    EventBody::UserRejectObservation {
                        tool_name: call.name.clone(),
                        tool_call_id: call.id.clone(),
                        rejection_reason: outcome
                            .reason
                            .unwrap_or_else(|| "Blocked by hook".into()),
                        rejection_source: "hook".into(),
                        action_id,
                    },
                );
                log.push(reject).map_err(StepError::Store)?;
                return Ok(false);
            }
        }
        let output = tool.execute(action).await;
        let mut event = super::super::observation_event(call, &output, action_id.clone());
        if let (
            Some(extra),
            EventBody::ObservationEvent {
                extended_content, ..
            },
        ) = (self.path_rule_content(action), &mut event.body)
        {
            extended_content.push(extra);
        }
        log.push(event).map_err(StepError::Store)?;
        if let Some(hooks) = self
            .hooks
            .as_ref()
            .filter(|h| h.has(HookEventType::PostToolUse))
        {
            let outcome = hooks
                .run(
                    HookEventType::PostToolUse,
                    self.session_id(),
                    hook_call(Some(output.observation.clone())),
                )
                .await;
            push_all(log, outcome.events)?;
        }
        Ok(true)
    }

    /// Runs the UserPromptSubmit hooks on a user message about to be recorded: `Err(reason)`
    /// when they block it (it is then not recorded); their additional context joins the
    /// message.
    pub async fn submit_prompt(
        &self,
        log: &mut EventLog,
        message: &mut Event,
    ) -> Result<Result<(), String>, StepError> {
        let Some(hooks) = self
            .hooks
            .as_ref()
            .filter(|h| h.has(HookEventType::UserPromptSubmit))
        else {
            return Ok(Ok(()));
        };
        let text = match &message.body {
            EventBody::MessageEvent { llm_message, .. } => llm_message.text_content(),
            _ => String::new(),
        };
        let call = HookCall {
            message: Some(text),
            message_id: Some(message.id.clone()),
            ..HookCall::default()
        };
        let outcome = hooks
            .run(HookEventType::UserPromptSubmit, self.session_id(), call)
            .await;
        push_all(log, outcome.events.clone())?;
        if outcome.blocked {
            return Ok(Err(outcome
                .reason
                .unwrap_or_else(|| "Blocked by hook".into())));
        }
        if let EventBody::MessageEvent {
            extended_content, ..
        } = &mut message.body
        {
            for context in outcome.additional_context {
                extended_content.push(json!(TextContent::new(context)));
            }
        }
        Ok(Ok(()))
    }

    /// SessionStart hooks, once per conversation (before its first step); their additional
    /// context becomes a message to the agent.
    pub async fn start_session(&self, log: &mut EventLog) -> Result<(), StepError> {
        let Some(hooks) = self
            .hooks
            .as_ref()
            .filter(|h| h.has(HookEventType::SessionStart))
        else {
            return Ok(());
        };
        let started = log.events().iter().any(|e| match &e.body {
            EventBody::HookExecutionEvent(h) => h.hook_event_type == "SessionStart",
            _ => false,
        });
        if started {
            return Ok(());
        }
        let outcome = hooks
            .run(
                HookEventType::SessionStart,
                self.session_id(),
                HookCall::default(),
            )
            .await;
        push_all(log, outcome.events)?;
        if !outcome.additional_context.is_empty() {
            let text = outcome.additional_context.join("\n");
            log.push(Event::message(Source::Environment, "user", text))
                .map_err(StepError::Store)?;
        }
        Ok(())
    }

    /// SessionEnd hooks.
    pub async fn end_session(&self, log: &mut EventLog) -> Result<(), StepError> {
        let Some(hooks) = self
            .hooks
            .as_ref()
            .filter(|h| h.has(HookEventType::SessionEnd))
        else {
            return Ok(());
        };
        let outcome = hooks
            .run(
                HookEventType::SessionEnd,
                self.session_id(),
                HookCall::default(),
            )
            .await;
        push_all(log, outcome.events)
    }

    /// The Stop hooks when the agent wants to finish; `blocks` counts this run's blocks.
    pub async fn check_stop(
        &self,
        log: &mut EventLog,
        blocks: &mut u32,
    ) -> Result<StopVerdict, StepError> {
        let Some(hooks) = self.hooks.as_ref().filter(|h| h.has(HookEventType::Stop)) else {
            return Ok(StopVerdict::Stop);
        };
        let call = HookCall {
            metadata: Some(json!({"reason": "agent_finished"})),
            ..HookCall::default()
        };
        let outcome = hooks
            .run(HookEventType::Stop, self.session_id(), call)
            .await;
        push_all(log, outcome.events.clone())?;
        if !outcome.blocked {
            return Ok(StopVerdict::Stop);
        }
        let feedback = outcome
            .feedback()
            .unwrap_or_else(|| "Blocked by hook".into());
        *blocks += 1;
        if *blocks > MAX_STOP_BLOCKS {
            let flat = feedback.split_whitespace().collect::<Vec<_>>().join(" ");
            let tail: String = flat
                .chars()
                .rev()
                .take(600)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return Ok(StopVerdict::Fail(format!(
                "the Stop hook still blocks after the agent was sent back {MAX_STOP_BLOCKS} times; fix what it reports and run again (its full output is in the trajectory). It said: {tail}"
            )));
        }
        let text = format!("{STOP_FEEDBACK_PREFIX} {feedback}");
        log.push(Event::message(Source::Environment, "user", text))
            .map_err(StepError::Store)?;
        Ok(StopVerdict::KeepGoing)
    }
}

fn push_all(log: &mut EventLog, events: Vec<Event>) -> Result<(), StepError> {
    for event in events {
        log.push(event).map_err(StepError::Store)?;
    }
    Ok(())
}
