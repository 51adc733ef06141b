//! Conversation events in the OpenHands agent-server's JSON shapes: every event is
//! `{kind, id, timestamp, source, parent_id, ...}` with the same `kind` names and field names as
//! the OpenHands SDK 1.58 (`SystemPromptEvent`, `MessageEvent`, `ActionEvent`, ...).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who produced an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Agent,
    User,
    Environment,
    Hook,
}

/// `{type: "text", text, cache_prompt}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextContent {
    #[serde(rename = "type", default = "text_type")]
    pub kind: String,
    pub text: String,
    #[serde(default)]
    pub cache_prompt: bool,
}

fn text_type() -> String {
    "text".into()
}

impl TextContent {
    pub fn new(text: impl Into<String>) -> Self {
        TextContent {
            kind: text_type(),
            text: text.into(),
            cache_prompt: false,
        }
    }
}

/// A tool call as OpenHands stores it (`MessageToolCall`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
    #[serde(default = "completion_origin")]
    pub origin: String,
    #[serde(default)]
    pub responses_item_id: Option<String>,
}

fn completion_origin() -> String {
    "completion".into()
}

/// An LLM message (`Message`): role and content blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    #[serde(default)]
    pub content: Vec<Value>,
    #[serde(default)]
    pub tool_calls: Option<Vec<MessageToolCall>>,
    #[serde(default)]
    pub tool_call_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub reasoning_content: Option<String>,
    #[serde(default)]
    pub thinking_blocks: Vec<Value>,
    #[serde(default)]
    pub responses_reasoning_item: Option<Value>,
}

impl Message {
    pub fn text(role: &str, text: impl Into<String>) -> Self {
        Message {
            role: role.into(),
            content: vec![serde_json::to_value(TextContent::new(text)).unwrap_or_default()],
            tool_calls: None,
            tool_call_id: None,
            name: None,
            reasoning_content: None,
            thinking_blocks: Vec::new(),
            responses_reasoning_item: None,
        }
    }

    /// The text of all `text` content blocks, joined.
    pub fn text_content(&self) -> String {
        text_of(&self.content)
    }
}

/// Joins the `text` of content blocks (`[{type: "text", text}]`).
pub fn text_of(content: &[Value]) -> String {
    content
        .iter()
        .filter_map(|c| c.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The body of an event, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum EventBody {
    SystemPromptEvent {
        system_prompt: TextContent,
        tools: Vec<Value>,
        #[serde(default)]
        dynamic_context: Option<TextContent>,
    },
    MessageEvent {
        llm_message: Message,
        #[serde(default)]
        llm_response_id: Option<String>,
        #[serde(default)]
        activated_skills: Vec<String>,
        #[serde(default)]
        extended_content: Vec<Value>,
        #[serde(default)]
        sender: Option<String>,
        #[serde(default)]
        critic_result: Option<Value>,
    },
    ActionEvent(Box<ActionEvent>),
    ObservationEvent {
        tool_name: String,
        tool_call_id: String,
        observation: Value,
        action_id: String,
        #[serde(default)]
        extended_content: Vec<Value>,
    },
    AgentErrorEvent {
        tool_name: String,
        tool_call_id: String,
        error: String,
        #[serde(default)]
        classification: Option<Value>,
    },
    ConversationStateUpdateEvent {
        #[serde(default)]
        key: String,
        #[serde(default)]
        value: Value,
    },
    ConversationErrorEvent {
        code: String,
        detail: String,
        #[serde(default)]
        classification: Option<Value>,
    },
    PauseEvent {},
    /// The security analyser's risk for each action of a batch, by `ActionEvent` id (emitted
    /// whenever an analyser is configured; not sent to the model).
    SecurityAnalysisEvent {
        analyzer: String,
        policy: String,
        risks: std::collections::BTreeMap<String, super::security::SecurityRisk>,
        #[serde(default)]
        details: std::collections::BTreeMap<String, Value>,
    },
    /// An action that was not run: a person (or a CI run's headless policy) rejected it, or a
    /// PreToolUse hook blocked it (`rejection_source` `hook`). The model reads the reason as the
    /// action's result, like an observation.
    UserRejectObservation {
        tool_name: String,
        tool_call_id: String,
        #[serde(default = "default_rejection")]
        rejection_reason: String,
        #[serde(default = "user_rejection_source")]
        rejection_source: String,
        action_id: String,
    },
    /// Asks the condenser to condense the history before the next model call (OpenHands'
    /// `CondensationRequest`: a context-window error, or `POST .../condense`).
    CondensationRequest {},
    /// The history the model sees from now on forgets `forgotten_event_ids`; `summary` goes in
    /// as a user message at `summary_offset` of the resulting view (OpenHands' `Condensation`).
    Condensation {
        #[serde(default)]
        forgotten_event_ids: Vec<String>,
        #[serde(default)]
        summary: Option<String>,
        #[serde(default)]
        summary_offset: Option<usize>,
        llm_response_id: String,
    },
    /// A hook ran (OpenHands' `HookExecutionEvent`, source `hook`); never shown to the model.
    HookExecutionEvent(Box<HookExecution>),
}

/// The body of a `HookExecutionEvent`, OpenHands' field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookExecution {
    pub hook_event_type: String,
    pub hook_command: String,
    #[serde(default)]
    pub tool_name: Option<String>,
    pub success: bool,
    #[serde(default)]
    pub blocked: bool,
    pub exit_code: i64,
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stderr: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub additional_context: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub action_id: Option<String>,
    #[serde(default)]
    pub message_id: Option<String>,
    #[serde(default)]
    pub hook_input: Option<Value>,
}

/// The agent asked for a tool call. `action` is `None` when the call could not be turned into
/// an action (unknown tool, malformed arguments); an `AgentErrorEvent` follows it then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionEvent {
    pub thought: Vec<TextContent>,
    #[serde(default)]
    pub reasoning_content: Option<String>,
    #[serde(default)]
    pub thinking_blocks: Vec<Value>,
    #[serde(default)]
    pub responses_reasoning_item: Option<Value>,
    #[serde(default)]
    pub action: Option<Value>,
    pub tool_name: String,
    pub tool_call_id: String,
    pub tool_call: MessageToolCall,
    pub llm_response_id: String,
    #[serde(default = "unknown_risk")]
    pub security_risk: String,
    #[serde(default)]
    pub critic_result: Option<Value>,
    #[serde(default)]
    pub summary: Option<String>,
}

fn default_rejection() -> String {
    "User rejected the action".into()
}

fn user_rejection_source() -> String {
    "user".into()
}

fn unknown_risk() -> String {
    "UNKNOWN".into()
}

/// A `terminal` action of the model response `response` (call id `call`), for tests.
#[cfg(test)]
pub fn test_terminal_action(call: &str, response: &str, action: Value, arguments: &str) -> Event {
    Event::new(
        Source::Agent,
        EventBody::ActionEvent(Box::new(ActionEvent {
            thought: vec![],
            reasoning_content: None,
            thinking_blocks: vec![],
            responses_reasoning_item: None,
            action: Some(action),
            tool_name: "terminal".into(),
            tool_call_id: call.into(),
            tool_call: MessageToolCall {
                id: call.into(),
                name: "terminal".into(),
                arguments: arguments.into(),
                origin: "completion".into(),
                responses_item_id: None,
            },
            llm_response_id: response.into(),
            security_risk: unknown_risk(),
            critic_result: None,
            summary: None,
        })),
    )
}

/// One event: the common header and its body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub timestamp: String,
    pub source: Source,
    #[serde(default)]
    pub parent_id: Option<String>,
    #[serde(flatten)]
    pub body: EventBody,
}

impl Event {
    /// A new event with a fresh id and the current time.
    pub fn new(source: Source, body: EventBody) -> Self {
        Event {
            id: uuid::Uuid::new_v4().to_string(),
            timestamp: now_timestamp(),
            source,
            parent_id: None,
            body,
        }
    }

    /// The `kind` name (`ActionEvent`...).
    pub fn kind(&self) -> &'static str {
        match &self.body {
            EventBody::SystemPromptEvent { .. } => "SystemPromptEvent",
            EventBody::MessageEvent { .. } => "MessageEvent",
            EventBody::ActionEvent(_) => "ActionEvent",
            EventBody::ObservationEvent { .. } => "ObservationEvent",
            EventBody::AgentErrorEvent { .. } => "AgentErrorEvent",
            EventBody::ConversationStateUpdateEvent { .. } => "ConversationStateUpdateEvent",
            EventBody::ConversationErrorEvent { .. } => "ConversationErrorEvent",
            EventBody::PauseEvent {} => "PauseEvent",
            EventBody::SecurityAnalysisEvent { .. } => "SecurityAnalysisEvent",
            EventBody::UserRejectObservation { .. } => "UserRejectObservation",
            EventBody::CondensationRequest {} => "CondensationRequest",
            EventBody::Condensation { .. } => "Condensation",
            EventBody::HookExecutionEvent(_) => "HookExecutionEvent",
        }
    }

    pub fn user_message(text: impl Into<String>) -> Self {
        Self::message(Source::User, "user", text)
    }

    pub fn message(source: Source, role: &str, text: impl Into<String>) -> Self {
        Event::new(
            source,
            EventBody::MessageEvent {
                llm_message: Message::text(role, text),
                llm_response_id: None,
                activated_skills: Vec::new(),
                extended_content: Vec::new(),
                sender: None,
                critic_result: None,
            },
        )
    }

    pub fn agent_error(tool_name: &str, tool_call_id: &str, error: impl Into<String>) -> Self {
        Event::new(
            Source::Agent,
            EventBody::AgentErrorEvent {
                tool_name: tool_name.into(),
                tool_call_id: tool_call_id.into(),
                error: error.into(),
                classification: None,
            },
        )
    }

    pub fn conversation_error(code: &str, detail: impl Into<String>) -> Self {
        Event::new(
            Source::Environment,
            EventBody::ConversationErrorEvent {
                code: code.into(),
                detail: detail.into(),
                classification: None,
            },
        )
    }

    pub fn state_update(key: &str, value: Value) -> Self {
        Event::new(
            Source::Environment,
            EventBody::ConversationStateUpdateEvent {
                key: key.into(),
                value,
            },
        )
    }
}

/// The current time in OpenHands' timestamp format (ISO 8601, microseconds, no zone; UTC).
pub fn now_timestamp() -> String {
    chrono::Utc::now()
        .naive_utc()
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn action_event_round_trips_in_openhands_shape() {
        let json = json!({
            "kind": "ActionEvent", "id": "a1", "timestamp": "2026-01-01T00:00:00.000000",
            "source": "agent", "parent_id": null,
            "thought": [{"type": "text", "text": "look", "cache_prompt": false}],
            "action": {"kind": "TerminalAction", "command": "ls", "is_input": false,
                       "timeout": null, "reset": false},
            "tool_name": "terminal", "tool_call_id": "c1",
            "tool_call": {"id": "c1", "name": "terminal", "arguments": "{\"command\":\"ls\"}",
                          "origin": "completion"},
            "llm_response_id": "r1", "security_risk": "UNKNOWN"
        });
        let event: Event = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(event.kind(), "ActionEvent");
        let back = serde_json::to_value(&event).unwrap();
        assert_eq!(back["kind"], "ActionEvent");
        assert_eq!(
            back["tool_call"]["arguments"],
            json["tool_call"]["arguments"]
        );
        assert_eq!(back["action"], json["action"]);
    }

    #[test]
    fn message_event_serializes_kind_and_source() {
        let event = Event::user_message("fix the bug");
        let v = serde_json::to_value(&event).unwrap();
        assert_eq!(v["kind"], "MessageEvent");
        assert_eq!(v["source"], "user");
        assert_eq!(v["llm_message"]["role"], "user");
        assert_eq!(v["llm_message"]["content"][0]["text"], "fix the bug");
    }

    #[test]
    fn openhands_condensation_events_parse_and_round_trip() {
        // As OpenHands 1.58.2 dumps them (shared/research/agent-depth.md §1).
        let request = json!({"kind": "CondensationRequest", "id": "q1",
            "timestamp": "2026-01-01T00:00:00.000000", "source": "environment", "parent_id": null});
        let condensation = json!({"kind": "Condensation", "id": "8544",
            "timestamp": "2026-01-01T00:00:01.000000", "source": "environment", "parent_id": null,
            "forgotten_event_ids": ["e1", "e2"], "summary": "USER_CONTEXT: fix the bug",
            "summary_offset": 1, "llm_response_id": "resp-1"});
        let event: Event = serde_json::from_value(request.clone()).unwrap();
        assert_eq!(event.kind(), "CondensationRequest");
        assert_eq!(serde_json::to_value(&event).unwrap(), request);
        let event: Event = serde_json::from_value(condensation.clone()).unwrap();
        assert_eq!(event.kind(), "Condensation");
        assert_eq!(serde_json::to_value(&event).unwrap(), condensation);
    }

    #[test]
    fn hook_events_parse_in_openhands_shape() {
        let hook = json!({"kind": "HookExecutionEvent", "id": "h1",
            "timestamp": "2026-01-01T00:00:00.000000", "source": "hook", "parent_id": null,
            "hook_event_type": "Stop", "hook_command": "./check.sh", "tool_name": null,
            "success": false, "blocked": true, "exit_code": 2, "stdout": "", "stderr": "fail",
            "reason": null, "additional_context": null, "error": null, "action_id": null,
            "message_id": null, "hook_input": {"event_type": "Stop"}});
        let event: Event = serde_json::from_value(hook.clone()).unwrap();
        assert_eq!(event.kind(), "HookExecutionEvent");
        assert_eq!(serde_json::to_value(&event).unwrap(), hook);
        let reject = json!({"kind": "UserRejectObservation", "id": "r1",
            "timestamp": "2026-01-01T00:00:00.000000", "source": "environment", "parent_id": null,
            "tool_name": "terminal", "tool_call_id": "c1", "rejection_reason": "no rm",
            "rejection_source": "hook", "action_id": "a1"});
        let event: Event = serde_json::from_value(reject.clone()).unwrap();
        assert_eq!(event.kind(), "UserRejectObservation");
        assert_eq!(serde_json::to_value(&event).unwrap(), reject);
    }

    #[test]
    fn pause_event_has_only_the_header() {
        let v = serde_json::to_value(Event::new(Source::User, EventBody::PauseEvent {})).unwrap();
        assert_eq!(v["kind"], "PauseEvent");
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back.kind(), "PauseEvent");
    }
}
