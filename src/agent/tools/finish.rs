//! `finish`: the agent says it is done, with a message for the user.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{parse_args, with_kind, Tool, ToolOutput};
use crate::llm::ToolSpec;

pub struct FinishTool;

#[derive(Debug, Serialize, Deserialize)]
struct FinishAction {
    message: String,
}

#[async_trait]
impl Tool for FinishTool {
    fn name(&self) -> &'static str {
        "finish"
    }

    fn spec(&self) -> ToolSpec {
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

    fn parse_action(&self, arguments: &Value) -> Result<Value, String> {
        let action: FinishAction = parse_args("finish", arguments)?;
        Ok(with_kind("FinishAction", action))
    }

    async fn execute(&self, action: &Value) -> ToolOutput {
        let message = action["message"].as_str().unwrap_or_default();
        ToolOutput::new("FinishObservation", message, false, json!({}))
    }

    fn summarize(&self, action: &Value) -> String {
        action["message"].as_str().unwrap_or_default().to_string()
    }
}
