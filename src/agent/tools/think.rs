//! `think`: the agent writes down a thought; nothing is executed.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{parse_args, with_kind, Tool, ToolOutput};
use crate::llm::ToolSpec;

pub struct ThinkTool;

#[derive(Debug, Serialize, Deserialize)]
struct ThinkAction {
    thought: String,
}

#[async_trait]
impl Tool for ThinkTool {
    fn name(&self) -> &'static str {
        "think"
    }

    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "think".into(),
            description: "Use the tool to think about something. It will not obtain new \
                          information or make any changes; it only logs the thought. Use it \
                          for complex reasoning or to brainstorm before acting."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {"thought": {"type": "string", "description": "The thought to log."}},
                "required": ["thought"]
            }),
        }
    }

    fn parse_action(&self, arguments: &Value) -> Result<Value, String> {
        let action: ThinkAction = parse_args("think", arguments)?;
        Ok(with_kind("ThinkAction", action))
    }

    async fn execute(&self, _action: &Value) -> ToolOutput {
        ToolOutput::new(
            "ThinkObservation",
            "Your thought has been logged.",
            false,
            json!({}),
        )
    }

    fn summarize(&self, action: &Value) -> String {
        action["thought"].as_str().unwrap_or_default().to_string()
    }
}
