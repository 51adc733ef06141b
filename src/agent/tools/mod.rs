//! The agent's tools, with OpenHands' names, argument names and action/observation `kind`s:
//! `terminal`, `file_editor`, `task_tracker`, `finish`, `think`.
//!
//! A tool turns the model's JSON arguments into an action object (stored in `ActionEvent.action`)
//! and executes it into an observation object (stored in `ObservationEvent.observation`) plus the
//! text the model reads back.

pub mod file_editor;
pub mod finish;
pub mod shell;
pub mod task_tracker;
pub mod terminal;
pub mod think;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use crate::llm::ToolSpec;

/// The result of executing one action.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    /// The observation object with its `kind` (e.g. `TerminalObservation`), OpenHands' shape:
    /// `content: [{type: "text", text}]`, `is_error`, and the tool's own fields.
    pub observation: Value,
    /// What the model reads back (already truncated to a sane size).
    pub text: String,
    pub is_error: bool,
}

impl ToolOutput {
    /// Builds an observation of `kind` whose content is `text`, with the tool's extra fields.
    pub fn new(kind: &str, text: impl Into<String>, is_error: bool, extra: Value) -> Self {
        let text = text.into();
        let mut obj = Map::new();
        obj.insert("kind".into(), json!(kind));
        obj.insert("content".into(), json!([{"type": "text", "text": text}]));
        obj.insert("is_error".into(), json!(is_error));
        if let Value::Object(extra) = extra {
            for (k, v) in extra {
                obj.insert(k, v);
            }
        }
        ToolOutput {
            observation: Value::Object(obj),
            text,
            is_error,
        }
    }
}

/// Where tools act: the agent's working directory on this machine (the sandbox, when the agent
/// runs in one).
#[derive(Debug, Clone)]
pub struct ToolContext {
    pub working_dir: PathBuf,
    /// Environment variables added to the terminal session (on top of the process's own).
    pub env: Vec<(String, String)>,
    /// Names of environment variables removed from the terminal session (secrets of the runner).
    pub env_remove: Vec<String>,
    /// Cap on the text one observation hands back to the model (characters).
    pub max_output_chars: usize,
}

impl ToolContext {
    pub fn new(working_dir: impl Into<PathBuf>) -> Self {
        ToolContext {
            working_dir: working_dir.into(),
            env: Vec::new(),
            env_remove: Vec::new(),
            max_output_chars: crate::agent::truncate::DEFAULT_MAX_OUTPUT_CHARS,
        }
    }
}

/// One tool.
#[async_trait]
pub trait Tool: Send + Sync {
    /// The name the model calls (`terminal`).
    fn name(&self) -> &str;

    /// The model-facing description and JSON schema of the arguments.
    fn spec(&self) -> ToolSpec;

    /// Validates the model's arguments into the action object (with `kind`, e.g.
    /// `TerminalAction`, and every field with its default filled in). An `Err` is a message for
    /// the model: what was wrong and how to call the tool correctly.
    fn parse_action(&self, arguments: &Value) -> Result<Value, String>;

    /// Executes a parsed action. Failures the model can react to (file not found, non-zero
    /// exit) are observations with `is_error`; this never panics on bad input.
    async fn execute(&self, action: &Value) -> ToolOutput;

    /// One short line for progress logs (`cat calc.sh`, `str_replace /w/calc.sh`).
    fn summarize(&self, action: &Value) -> String;

    /// Restores the tool's state from its last observation of a resumed conversation (the
    /// task tracker's list). Most tools hold no state.
    fn restore(&self, _last_observation: &Value) {}

    /// Releases what the tool holds (the terminal's shell). Called once at the end of a run.
    async fn close(&self) {}

    /// Whether the tool only reads (MCP's `readOnlyHint`): its schema gets no `security_risk`.
    fn read_only(&self) -> bool {
        false
    }

    /// OpenHands' serialized `ToolDefinition` of the tool (in the `SystemPromptEvent`).
    fn definition(&self) -> Value {
        crate::agent::tool_definition(self.name(), &self.spec().description)
    }
}

/// A tool whose action is one serde type, parsed from the model's arguments by `parse` (which
/// validates) and handed to `run` typed. The blanket [`Tool`] impl is the only place that turns
/// the action into its wire object (the struct's fields plus `kind`, as stored in
/// `ActionEvent.action`) and back: an action runs from that stored object, also after a
/// confirmation or a resume, so `execute` decodes it with the same type.
#[async_trait]
pub trait TypedTool: Send + Sync {
    type Action: serde::Serialize + serde::de::DeserializeOwned + Send + Sync;
    /// The name the model calls (`terminal`).
    const NAME: &'static str;
    /// The action's `kind` on the wire (`TerminalAction`).
    const ACTION_KIND: &'static str;
    /// The observation's `kind` (`TerminalObservation`).
    const OBSERVATION_KIND: &'static str;

    /// The model-facing description and JSON schema of the arguments.
    fn tool_spec(&self) -> ToolSpec;

    /// Validates the model's arguments into the action; an `Err` is a message for the model.
    fn parse(&self, arguments: &Value) -> Result<Self::Action, String>;

    /// Runs the action (see [`Tool::execute`]).
    async fn run(&self, action: Self::Action) -> ToolOutput;

    /// One short line for progress logs.
    fn summary(action: &Self::Action) -> String;

    /// The observation for a stored action that does not decode (an edited event log).
    async fn invalid(&self, _action: &Value, reason: String) -> ToolOutput {
        let text = format!("invalid {} action: {reason}", Self::NAME);
        ToolOutput::new(Self::OBSERVATION_KIND, text, true, json!({}))
    }

    /// See [`Tool::restore`].
    fn restore_state(&self, _last_observation: &Value) {}

    /// See [`Tool::close`].
    async fn release(&self) {}
}

#[async_trait]
impl<T: TypedTool> Tool for T {
    fn name(&self) -> &str {
        T::NAME
    }

    fn spec(&self) -> ToolSpec {
        self.tool_spec()
    }

    fn parse_action(&self, arguments: &Value) -> Result<Value, String> {
        Ok(with_kind(T::ACTION_KIND, self.parse(arguments)?))
    }

    async fn execute(&self, action: &Value) -> ToolOutput {
        match serde_json::from_value::<T::Action>(action.clone()) {
            Ok(typed) => self.run(typed).await,
            Err(e) => self.invalid(action, e.to_string()).await,
        }
    }

    fn summarize(&self, action: &Value) -> String {
        serde_json::from_value::<T::Action>(action.clone())
            .map(|typed| T::summary(&typed))
            .unwrap_or_default()
    }

    fn restore(&self, last_observation: &Value) {
        self.restore_state(last_observation)
    }

    async fn close(&self) {
        self.release().await
    }
}

/// The default tool set of a coding agent, acting in `ctx.working_dir`.
pub fn default_tools(ctx: &ToolContext) -> Vec<Arc<dyn Tool>> {
    vec![
        Arc::new(terminal::TerminalTool::new(ctx.clone())),
        Arc::new(file_editor::FileEditorTool::new(ctx.clone())),
        Arc::new(task_tracker::TaskTrackerTool::new()),
        Arc::new(finish::FinishTool),
        Arc::new(think::ThinkTool),
    ]
}

/// Deserializes `arguments` into `T`, with a message for the model on failure.
pub fn parse_args<T: serde::de::DeserializeOwned>(
    tool: &str,
    arguments: &Value,
) -> Result<T, String> {
    serde_json::from_value(arguments.clone())
        .map_err(|e| format!("invalid arguments for tool '{tool}': {e}"))
}

/// Puts `kind` into a serialized action struct.
pub fn with_kind(kind: &str, action: impl serde::Serialize) -> Value {
    let mut v = serde_json::to_value(action).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut v {
        map.insert("kind".into(), json!(kind));
    }
    v
}
