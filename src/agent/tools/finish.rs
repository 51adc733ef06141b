//! `finish`: the agent says it is done, with a message for the user.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{parse_args, ToolOutput, TypedTool};
use crate::llm::ToolSpec;

pub struct FinishTool;

#[derive(Debug, Serialize, Deserialize)]
pub struct FinishAction {
    message: String,
}

#[async_trait]
impl TypedTool for FinishTool {
    type Action = FinishAction;
    const NAME: &'static str = "finish";
    const ACTION_KIND: &'static str = "FinishAction";
    const OBSERVATION_KIND: &'static str = "FinishObservation";

    fn tool_spec(&self) -> ToolSpec {
        ToolSpec {
            name: "finish".into(),
            description: "Signals that the task is complete. Call it once the work is done and \
                          verified; `message` summarises what was done for the user."
                .into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "message": {"type": "string", "description": "Final message to the user."}
                },
                "required": ["message"]
            }),
        }
    }

    fn parse(&self, arguments: &Value) -> Result<FinishAction, String> {
        parse_args(Self::NAME, arguments)
    }

    async fn run(&self, action: FinishAction) -> ToolOutput {
        ToolOutput::new(Self::OBSERVATION_KIND, action.message, false, json!({}))
    }

    fn summary(action: &FinishAction) -> String {
        action.message.clone()
    }
}
