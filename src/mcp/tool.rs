//! An MCP server's tool as one of the agent's tools, in OpenHands' shapes: the model sees the
//! server's schema plus a `summary` parameter; the action is `MCPToolAction {data}`, the result
//! an `MCPToolObservation {content, is_error, tool_name}`, the definition an
//! `MCPToolDefinition`.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use super::client::Connection;
use crate::agent::tools::{Tool, ToolOutput};
use crate::llm::ToolSpec;
use crate::protocol::event::text_of;

/// The description of the `summary` parameter OpenHands adds to every MCP tool.
const SUMMARY: &str = "A concise summary (approximately 10 words) of what this call does.";

pub struct McpTool {
    /// What the model calls it (the raw name, or `server_tool` with several servers).
    name: String,
    /// What the server calls it.
    remote_name: String,
    description: String,
    schema: Value,
    read_only: bool,
    /// The tool as the server described it (MCP's `Tool`), for the definition's `mcp_tool`.
    remote: Value,
    connection: Arc<Connection>,
}

impl McpTool {
    pub fn new(name: String, remote: &rmcp::model::Tool, connection: Arc<Connection>) -> Self {
        let mut schema = Value::Object((*remote.input_schema).clone());
        if schema.get("type").is_none() {
            schema["type"] = json!("object");
        }
        if !schema["properties"].is_object() {
            schema["properties"] = json!({});
        }
        schema["properties"]["summary"] = json!({"type": "string", "description": SUMMARY});
        McpTool {
            name,
            remote_name: remote.name.to_string(),
            description: remote
                .description
                .as_deref()
                .unwrap_or_default()
                .to_string(),
            schema,
            read_only: remote
                .annotations
                .as_ref()
                .and_then(|a| a.read_only_hint)
                .unwrap_or(false),
            remote: serde_json::to_value(remote).unwrap_or_default(),
            connection,
        }
    }

    /// The server's own name for the tool.
    pub fn remote_name(&self) -> &str {
        &self.remote_name
    }
}

#[async_trait]
impl Tool for McpTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.name.clone(),
            description: self.description.clone(),
            parameters: self.schema.clone(),
        }
    }

    fn parse_action(&self, arguments: &Value) -> Result<Value, String> {
        let Value::Object(args) = arguments else {
            return Err(format!(
                "The arguments of '{}' must be a JSON object.",
                self.name
            ));
        };
        let mut data: Map<String, Value> = args.clone();
        data.remove("summary");
        Ok(json!({"kind": "MCPToolAction", "data": data}))
    }

    async fn execute(&self, action: &Value) -> ToolOutput {
        let data = action.get("data").cloned().unwrap_or_else(|| json!({}));
        let extra = json!({"tool_name": self.name});
        match self.connection.call(&self.remote_name, data).await {
            Ok(result) => {
                let content: Vec<Value> = result.content.iter().map(openhands_content).collect();
                let text = text_of(&content);
                let mut out = ToolOutput::new("MCPToolObservation", text, result.is_error, extra);
                out.observation["content"] = Value::Array(content);
                out
            }
            Err(message) => ToolOutput::new("MCPToolObservation", message, true, extra),
        }
    }

    fn summarize(&self, action: &Value) -> String {
        let data = action.get("data").map(Value::to_string).unwrap_or_default();
        let mut line = format!("{} {data}", self.name);
        if line.len() > 120 {
            let cut = (0..=117)
                .rev()
                .find(|i| line.is_char_boundary(*i))
                .unwrap_or(0);
            line.truncate(cut);
            line.push_str("...");
        }
        line
    }

    fn read_only(&self) -> bool {
        self.read_only
    }

    fn definition(&self) -> Value {
        json!({
            "kind": "MCPToolDefinition",
            "title": self.name,
            "description": self.description,
            "action_type": "MCPToolAction",
            "observation_type": "MCPToolObservation",
            "annotations": null,
            "meta": null,
            "mcp_tool": self.remote,
        })
    }

    async fn close(&self) {
        self.connection.close().await;
    }
}

/// An MCP content block as OpenHands' `TextContent`: text as is, anything else (images,
/// resources) as its JSON, so the model still sees it.
fn openhands_content(block: &Value) -> Value {
    match (block["type"].as_str(), block["text"].as_str()) {
        (Some("text"), Some(text)) => json!({"type": "text", "text": text}),
        _ => json!({"type": "text", "text": block.to_string()}),
    }
}
