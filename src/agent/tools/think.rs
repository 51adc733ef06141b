//! `think`: the agent writes down a thought; nothing is executed.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{parse_args, ToolOutput, TypedTool};
use crate::llm::ToolSpec;

pub struct ThinkTool;

#[derive(Debug, Serialize, Deserialize)]
pub struct ThinkAction {
    thought: String,
}

#[async_trait]
impl TypedTool for ThinkTool {
    type Action = ThinkAction;
    const NAME: &'static str = "think";
    const ACTION_KIND: &'static str = "ThinkAction";
    const OBSERVATION_KIND: &'static str = "ThinkObservation";

    fn tool_spec(&self) -> ToolSpec {
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

    fn parse(&self, arguments: &Value) -> Result<ThinkAction, String> {
        parse_args(Self::NAME, arguments)
    }

    async fn run(&self, _action: ThinkAction) -> ToolOutput {
        ToolOutput::new(
            Self::OBSERVATION_KIND,
            "Your thought has been logged.",
            false,
            json!({}),
        )
    }

    fn summary(action: &ThinkAction) -> String {
        action.thought.clone()
    }
}
