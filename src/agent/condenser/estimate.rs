//! The pre-flight token estimate: characters of a request divided by a characters-per-token
//! ratio. The ratio starts conservative and is re-calibrated after every completion on the
//! `prompt_tokens` the provider reported for the request just sent, so the estimate of the
//! next request (the same history plus one step) is close to what the provider will count.

use crate::llm::{ChatMessage, ChatRequest};
use crate::protocol::event::{text_of, Event, EventBody};

/// The ratio before any completion has been counted: low, so the estimate errs high.
pub const DEFAULT_CHARS_PER_TOKEN: f64 = 3.0;

/// Characters a message or event costs beyond its text (role, ids, JSON punctuation).
const PER_ITEM_OVERHEAD: usize = 16;

/// Characters of everything a request sends: messages, tool calls, tool definitions.
pub fn request_chars(request: &ChatRequest) -> usize {
    let messages: usize = request.messages.iter().map(message_chars).sum();
    let tools: usize = request
        .tools
        .iter()
        .map(|t| t.name.len() + t.description.len() + t.parameters.to_string().len())
        .sum();
    messages + tools
}

fn message_chars(message: &ChatMessage) -> usize {
    let calls: usize = message
        .tool_calls
        .iter()
        .map(|c| c.id.len() + c.name.len() + c.arguments.len() + PER_ITEM_OVERHEAD)
        .sum();
    message.content.as_deref().map_or(0, str::len) + calls + PER_ITEM_OVERHEAD
}

/// Characters one event adds to a request (what `to_chat_messages` makes of it).
pub fn event_chars(event: &Event) -> usize {
    PER_ITEM_OVERHEAD
        + match &event.body {
            EventBody::SystemPromptEvent { system_prompt, .. } => system_prompt.text.len(),
            EventBody::MessageEvent {
                llm_message,
                extended_content,
                ..
            } => text_of(&llm_message.content).len() + text_of(extended_content).len(),
            EventBody::ActionEvent(a) => {
                let thought: usize = a.thought.iter().map(|t| t.text.len()).sum();
                thought
                    + a.tool_call.id.len()
                    + a.tool_call.name.len()
                    + a.tool_call.arguments.len()
            }
            EventBody::ObservationEvent {
                observation,
                extended_content,
                ..
            } => {
                text_of(observation["content"].as_array().map_or(&[][..], |v| v)).len()
                    + text_of(extended_content).len()
            }
            EventBody::UserRejectObservation {
                rejection_reason, ..
            } => rejection_reason.len() + 20,
            EventBody::AgentErrorEvent { error, .. } => error.len(),
            _ => 0,
        }
}

/// Tokens of `chars` characters at `chars_per_token`.
pub fn tokens(chars: usize, chars_per_token: f64) -> u64 {
    (chars as f64 / chars_per_token.max(0.5)).ceil() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ToolSpec;

    #[test]
    fn requests_count_messages_calls_and_tools() {
        let mut assistant = ChatMessage::assistant("x");
        assistant.tool_calls.push(crate::llm::ToolCall {
            id: "c".into(),
            name: "t".into(),
            arguments: "{}".into(),
        });
        let request = ChatRequest {
            messages: vec![ChatMessage::user("hello"), assistant],
            tools: vec![ToolSpec {
                name: "t".into(),
                description: "d".into(),
                parameters: serde_json::json!({}),
            }],
            conversation_id: None,
        };
        assert_eq!(
            request_chars(&request),
            (5 + 16) + (1 + 16 + 1 + 1 + 2 + 16) + 4
        );
        assert_eq!(tokens(400, 4.0), 100);
        assert_eq!(tokens(401, 4.0), 101);
    }
}
