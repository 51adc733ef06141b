//! The agent's side of confirmation: the model's `security_risk` label taken off the
//! arguments, the analysis of a batch (`SecurityAnalysisEvent`), whether it waits for a yes,
//! and what happens to waiting actions: run on approval, `UserRejectObservation` on rejection.

use std::collections::HashSet;

use serde_json::Value;

use super::security::{analysis_fields, SecurityRisk, SecuritySettings};
use super::{Agent, Prepared, StepError, StepOutcome};
use crate::event_log::EventLog;
use crate::llm::ToolCall;
use crate::protocol::event::{ActionEvent, Event, EventBody, Source};

/// Takes `security_risk` off the model's arguments: its label when an analyser reads it, else
/// ignored (OpenHands tolerates it without an analyser). A label that is not a risk is a
/// message for the model.
pub(super) fn take_risk_label(args: &mut Value, labelled: bool) -> Result<SecurityRisk, String> {
    let Some(value) = args.as_object_mut().and_then(|a| a.remove("security_risk")) else {
        return Ok(SecurityRisk::Unknown);
    };
    if !labelled {
        return Ok(SecurityRisk::Unknown);
    }
    value.as_str().and_then(SecurityRisk::parse).ok_or_else(|| {
        format!("security_risk is {value}: use one of LOW, MEDIUM, HIGH (or UNKNOWN).")
    })
}

/// Rates the batch (recording a `SecurityAnalysisEvent` when an analyser is set) and says
/// whether it waits for confirmation. A batch of only `finish`/`think` never does.
pub(super) fn needs_confirmation(
    log: &mut EventLog,
    settings: &SecuritySettings,
    prepared: &[Prepared],
    action_ids: &[String],
) -> Result<bool, StepError> {
    let actions: Vec<(&String, &Prepared)> = action_ids
        .iter()
        .zip(prepared)
        .filter(|(_, p)| p.is_ok())
        .collect();
    let trivial = actions
        .iter()
        .all(|(_, p)| matches!(p, Ok((tool, _, _)) if matches!(tool.name(), "finish" | "think")));
    if trivial {
        return Ok(false);
    }
    let mut risks = Vec::with_capacity(actions.len());
    if let Some(analyzer) = &settings.analyzer {
        let ratings: Vec<(String, super::security::Rating)> = actions
            .iter()
            .filter_map(|(id, p)| match p {
                Ok((tool, action, label)) => {
                    Some(((*id).clone(), analyzer.rate(tool.name(), action, *label)))
                }
                Err(_) => None,
            })
            .collect();
        risks.extend(ratings.iter().map(|(_, r)| r.risk));
        let (analyzer, policy, risks, details) = analysis_fields(settings, &ratings);
        let event = Event::new(
            Source::Environment,
            EventBody::SecurityAnalysisEvent {
                analyzer,
                policy,
                risks,
                details,
            },
        );
        log.push(event).map_err(StepError::Store)?;
    } else {
        risks.resize(actions.len(), SecurityRisk::Unknown);
    }
    Ok(risks.iter().any(|r| settings.policy.should_confirm(*r)))
}

/// Actions recorded but neither run nor answered (waiting for confirmation, or cut off).
pub fn pending_actions(events: &[Event]) -> Vec<&ActionEvent> {
    let answered: HashSet<&str> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::ObservationEvent { tool_call_id, .. }
            | EventBody::AgentErrorEvent { tool_call_id, .. }
            | EventBody::UserRejectObservation { tool_call_id, .. } => Some(tool_call_id.as_str()),
            _ => None,
        })
        .collect();
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::ActionEvent(a)
                if a.action.is_some() && !answered.contains(a.tool_call_id.as_str()) =>
            {
                Some(a.as_ref())
            }
            _ => None,
        })
        .collect()
}

/// (action event id, action) of the pending actions.
fn pending_with_ids(events: &[Event]) -> Vec<(String, ActionEvent)> {
    let pending: HashSet<String> = pending_actions(events)
        .iter()
        .map(|a| a.tool_call_id.clone())
        .collect();
    events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::ActionEvent(a) if pending.contains(&a.tool_call_id) => {
                Some((e.id.clone(), (**a).clone()))
            }
            _ => None,
        })
        .collect()
}

impl Agent {
    /// Runs the actions that waited for confirmation (approval), recording their observations.
    pub async fn execute_pending(&self, log: &mut EventLog) -> Result<StepOutcome, StepError> {
        let mut outcome = StepOutcome::Continue;
        for (action_id, action) in pending_with_ids(log.events()) {
            let call = ToolCall {
                id: action.tool_call_id.clone(),
                name: action.tool_name.clone(),
                arguments: action.tool_call.arguments.clone(),
            };
            let event = match self.tools.iter().find(|t| t.name() == action.tool_name) {
                None => Event::agent_error(&call.name, &call.id, "The tool is gone."),
                Some(tool) => {
                    // Approved is not exempt: the hooks around a tool call run as in a step.
                    let parsed = action.action.clone().unwrap_or_default();
                    let ran = self.call_tool(log, &call, tool, &parsed, action_id).await?;
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

    /// Rejects the actions that wait for confirmation: each gets a `UserRejectObservation`
    /// with `reason`, which the model reads. Returns how many there were.
    pub fn reject_pending(&self, log: &mut EventLog, reason: &str) -> Result<usize, StepError> {
        let pending = pending_with_ids(log.events());
        for (action_id, action) in &pending {
            let event = Event::new(
                Source::User,
                EventBody::UserRejectObservation {
                    tool_name: action.tool_name.clone(),
                    tool_call_id: action.tool_call_id.clone(),
                    rejection_reason: reason.to_string(),
                    rejection_source: "user".into(),
                    action_id: action_id.clone(),
                },
            );
            log.push(event).map_err(StepError::Store)?;
        }
        Ok(pending.len())
    }
}
