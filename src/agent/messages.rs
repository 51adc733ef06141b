//! Turns a conversation's events into the messages the model reads: one assistant message per
//! model response (its tool calls grouped, with the reasoning the provider must get back:
//! Anthropic thinking blocks, the Responses reasoning item), one tool message per observation
//! or tool error.

use std::collections::HashSet;

use crate::llm::{ChatMessage, Role, ToolCall};
use crate::protocol::event::{text_of, ActionEvent, Event, EventBody, Source};

/// The chat history for the next completion.
pub fn to_chat_messages<'a>(events: impl IntoIterator<Item = &'a Event>) -> Vec<ChatMessage> {
    let events = events.into_iter();
    let mut out: Vec<ChatMessage> = Vec::with_capacity(events.size_hint().0);
    let mut open_calls: HashSet<String> = HashSet::new();
    let mut last_response: Option<String> = None;
    for event in events {
        match &event.body {
            EventBody::SystemPromptEvent {
                system_prompt,
                dynamic_context,
                ..
            } => {
                // The static prompt first (the cached prefix), volatile context after it.
                out.push(ChatMessage::system(system_prompt.text.clone()));
                if let Some(dynamic) = dynamic_context.as_ref().filter(|d| !d.text.is_empty()) {
                    out.push(ChatMessage::system(dynamic.text.clone()));
                }
            }
            EventBody::MessageEvent {
                llm_message,
                extended_content,
                ..
            } => {
                let role = if event.source == Source::Agent {
                    Role::Assistant
                } else {
                    Role::User
                };
                // Skill knowledge recalled for this message follows its text (OpenHands
                // appends `extended_content` to the message's content).
                let mut text = llm_message.text_content();
                for extra in extended_content.iter().filter_map(|c| c["text"].as_str()) {
                    text.push('\n');
                    text.push_str(extra);
                }
                let mut msg = ChatMessage::user(text);
                msg.role = role;
                out.push(msg);
            }
            EventBody::ActionEvent(action) => {
                push_action(&mut out, action, last_response.as_deref());
                open_calls.insert(action.tool_call_id.clone());
                last_response = Some(action.llm_response_id.clone());
                continue;
            }
            EventBody::ObservationEvent {
                tool_name,
                tool_call_id,
                observation,
                extended_content,
                ..
            } => {
                let mut text = text_of(observation["content"].as_array().map_or(&[][..], |v| v));
                // Path rules injected when this observation touched their folder.
                for extra in extended_content.iter().filter_map(|c| c["text"].as_str()) {
                    text.push_str("\n\n");
                    text.push_str(extra);
                }
                push_result(&mut out, &mut open_calls, tool_call_id, tool_name, text);
            }
            EventBody::UserRejectObservation {
                tool_name,
                tool_call_id,
                rejection_reason,
                ..
            } => {
                let text = format!("Action rejected: {rejection_reason}");
                push_result(&mut out, &mut open_calls, tool_call_id, tool_name, text);
            }
            EventBody::AgentErrorEvent {
                tool_name,
                tool_call_id,
                error,
                ..
            } => {
                push_result(
                    &mut out,
                    &mut open_calls,
                    tool_call_id,
                    tool_name,
                    error.clone(),
                );
            }
            _ => continue,
        }
        if !matches!(
            event.body,
            EventBody::ObservationEvent { .. }
                | EventBody::AgentErrorEvent { .. }
                | EventBody::UserRejectObservation { .. }
        ) {
            last_response = None;
        }
    }
    out
}

/// Adds a tool call to the assistant message of the same response, or starts one.
fn push_action(out: &mut Vec<ChatMessage>, action: &ActionEvent, last_response: Option<&str>) {
    let call = ToolCall {
        id: action.tool_call_id.clone(),
        name: action.tool_call.name.clone(),
        arguments: action.tool_call.arguments.clone(),
    };
    let same_response = last_response == Some(action.llm_response_id.as_str());
    if let (true, Some(last)) = (same_response, out.last_mut()) {
        if last.role == Role::Assistant {
            last.tool_calls.push(call);
            return;
        }
    }
    let thought: Vec<&str> = action.thought.iter().map(|t| t.text.as_str()).collect();
    let content = Some(thought.join("\n")).filter(|t| !t.is_empty());
    out.push(ChatMessage {
        role: Role::Assistant,
        content,
        tool_calls: vec![call],
        tool_call_id: None,
        name: None,
        thinking_blocks: action.thinking_blocks.clone(),
        reasoning_item: action.responses_reasoning_item.clone(),
    });
}

/// A tool result answers its call; a result without a call becomes a user note.
fn push_result(
    out: &mut Vec<ChatMessage>,
    open: &mut HashSet<String>,
    call_id: &str,
    tool: &str,
    text: String,
) {
    if open.remove(call_id) {
        out.push(ChatMessage::tool_result(call_id, tool, text));
    } else {
        out.push(ChatMessage::user(format!("[{tool}] {text}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::event::{MessageToolCall, TextContent};
    use serde_json::json;

    fn action(call_id: &str, response: &str, thought: &str) -> Event {
        Event::new(
            Source::Agent,
            EventBody::ActionEvent(Box::new(ActionEvent {
                thought: vec![TextContent::new(thought)],
                reasoning_content: None,
                thinking_blocks: vec![],
                responses_reasoning_item: None,
                action: Some(json!({"kind": "TerminalAction", "command": "ls"})),
                tool_name: "terminal".into(),
                tool_call_id: call_id.into(),
                tool_call: MessageToolCall {
                    id: call_id.into(),
                    name: "terminal".into(),
                    arguments: "{\"command\":\"ls\"}".into(),
                    origin: "completion".into(),
                    responses_item_id: None,
                },
                llm_response_id: response.into(),
                security_risk: "UNKNOWN".into(),
                critic_result: None,
                summary: None,
            })),
        )
    }

    fn observation(call_id: &str, text: &str) -> Event {
        Event::new(
            Source::Environment,
            EventBody::ObservationEvent {
                tool_name: "terminal".into(),
                tool_call_id: call_id.into(),
                observation: json!({"kind": "TerminalObservation", "content": [{"type": "text", "text": text}]}),
                action_id: "x".into(),
                extended_content: vec![],
            },
        )
    }

    #[test]
    fn calls_of_one_response_share_an_assistant_message() {
        let events = vec![
            Event::user_message("task"),
            action("c1", "r1", "first"),
            action("c2", "r1", ""),
            observation("c1", "out1"),
            observation("c2", "out2"),
            action("c3", "r2", ""),
            Event::agent_error("terminal", "c3", "bad args"),
        ];
        let msgs = to_chat_messages(&events);
        let roles: Vec<Role> = msgs.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            vec![
                Role::User,
                Role::Assistant,
                Role::Tool,
                Role::Tool,
                Role::Assistant,
                Role::Tool
            ]
        );
        assert_eq!(msgs[1].tool_calls.len(), 2);
        assert_eq!(msgs[1].content.as_deref(), Some("first"));
        assert_eq!(msgs[3].content.as_deref(), Some("out2"));
        assert_eq!(msgs[5].content.as_deref(), Some("bad args"));
    }

    #[test]
    fn dynamic_context_is_a_second_system_message_after_the_static_prompt() {
        let system = Event::new(
            Source::Agent,
            EventBody::SystemPromptEvent {
                system_prompt: TextContent::new("static"),
                tools: vec![],
                dynamic_context: Some(TextContent::new("today is Monday")),
            },
        );
        let msgs = to_chat_messages(&[system, Event::user_message("task")]);
        let texts: Vec<&str> = msgs.iter().filter_map(|m| m.content.as_deref()).collect();
        assert_eq!(texts, ["static", "today is Monday", "task"]);
        assert_eq!(msgs[1].role, Role::System);
    }

    #[test]
    fn observations_between_actions_of_one_response_do_not_split_it() {
        let events = vec![
            action("c1", "r1", ""),
            observation("c1", "o"),
            action("c2", "r1", ""),
        ];
        let msgs = to_chat_messages(&events);
        // c2 follows a tool result, so it starts a new assistant message (OpenAI needs calls
        // answered in order); both are valid histories.
        assert_eq!(msgs.iter().filter(|m| m.role == Role::Assistant).count(), 2);
    }
}
