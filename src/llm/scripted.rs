//! The scripted model: replays a YAML list of model turns, for demos, dry runs and tests.
//!
//! ```yaml
//! # each item is one model turn
//! - thought: "optional text, returned as the assistant's content beside the tool call"
//!   tool: terminal
//!   args: {command: "cat ${WORKSPACE}/calc.sh"}
//! - tools:                       # several tool calls in one turn
//!     - {tool: terminal, args: {command: "ls"}}
//!     - {tool: think, args: {thought: "..."}}
//! - tool: terminal
//!   raw_args: '{"command": "ls"'   # sent verbatim, e.g. malformed JSON
//! - message: "a plain text reply with no tool call"
//! ```
//!
//! Each step has exactly one of `tool`, `tools` or `message`; unknown keys are errors. The step
//! played is chosen without state: step index = number of assistant messages already in the
//! request, so a resumed conversation continues where it stopped.
//!
//! `${WORKSPACE}` inside any string of `args` (and inside `raw_args`) is replaced by the
//! workspace path given at construction, so scripts can use absolute paths portably; without
//! a workspace it stays as written.
//!
//! A request without tools (a condenser's summary call) is answered with a one-line summary and
//! does not count as a step.
//!
//! Tool call ids are `call_<step>_<n>` (both counted from 1), response ids `scripted-<step>`.
//! Usage is approximated as characters / 4 of the request (prompt) and of the produced content
//! and arguments (completion), so demos show non-zero metrics; cost is zero (nothing is spent).

use std::path::PathBuf;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use super::{ChatRequest, ChatResponse, LlmClient, LlmError, Role, ToolCall, Usage};

/// The placeholder replaced by the workspace path in step arguments.
pub const WORKSPACE_PLACEHOLDER: &str = "${WORKSPACE}";

/// One model turn of a script.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptStep {
    /// One or more tool calls, with optional text beside them.
    Tools {
        thought: Option<String>,
        calls: Vec<ScriptCall>,
    },
    /// A plain text answer.
    Message(String),
}

/// One scripted tool call.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptCall {
    pub tool: String,
    pub arguments: ScriptArgs,
}

/// The arguments of a scripted tool call.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptArgs {
    /// Serialized to JSON text when played.
    Json(Value),
    /// Sent verbatim, even when it is not valid JSON.
    Raw(String),
}

/// A model that replays a script.
#[derive(Debug, Clone)]
pub struct ScriptedModel {
    name: String,
    steps: Vec<ScriptStep>,
}

impl ScriptedModel {
    /// A model named `name` playing `steps`, with `${WORKSPACE}` in their arguments replaced by
    /// `workspace` when given.
    pub fn new(name: &str, steps: Vec<ScriptStep>, workspace: Option<PathBuf>) -> Self {
        let steps = match workspace {
            Some(path) => {
                let path = path.to_string_lossy();
                steps
                    .into_iter()
                    .map(|s| substitute_step(s, &path))
                    .collect()
            }
            None => steps,
        };
        ScriptedModel {
            name: name.to_string(),
            steps,
        }
    }

    /// A model playing the YAML script `yaml` (see the module doc); the error names the line or
    /// the step at fault.
    pub fn from_yaml(
        name: &str,
        yaml: &str,
        workspace: Option<PathBuf>,
    ) -> Result<ScriptedModel, String> {
        Ok(ScriptedModel::new(name, parse_script(yaml)?, workspace))
    }

    /// The steps, after `${WORKSPACE}` substitution.
    pub fn steps(&self) -> &[ScriptStep] {
        &self.steps
    }
}

#[async_trait]
impl LlmClient for ScriptedModel {
    fn model_name(&self) -> &str {
        &self.name
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        if request.tools.is_empty() {
            return Ok(summary_reply(request));
        }
        let index = request
            .messages
            .iter()
            .filter(|m| m.role == Role::Assistant)
            .count();
        let Some(step) = self.steps.get(index) else {
            return Err(LlmError::Script(format!(
                "the script has {} steps and the agent asked for step {}; end the script with a `finish` tool call",
                self.steps.len(),
                index + 1
            )));
        };
        Ok(play(step, index + 1, request))
    }
}

/// A request without tools is a condenser's summary call: it gets a plain-text summary naming
/// how much it summarized, and the script does not advance.
fn summary_reply(request: &ChatRequest) -> ChatResponse {
    let text = request
        .messages
        .last()
        .and_then(|m| m.content.as_deref())
        .unwrap_or("");
    let events = text.matches("<EVENT ").count();
    play(
        &ScriptStep::Message(format!("USER_CONTEXT: scripted summary of {events} events")),
        0,
        request,
    )
}

/// The response for step number `number` (from 1).
fn play(step: &ScriptStep, number: usize, request: &ChatRequest) -> ChatResponse {
    let (content, tool_calls, finish) = match step {
        ScriptStep::Message(text) => (Some(text.clone()), Vec::new(), "stop"),
        ScriptStep::Tools { thought, calls } => {
            let calls = calls.iter().enumerate();
            let calls = calls.map(|(i, c)| tool_call(c, number, i + 1)).collect();
            (thought.clone(), calls, "tool_calls")
        }
    };
    let produced = content.as_deref().map_or(0, chars)
        + tool_calls
            .iter()
            .map(|c| chars(&c.arguments))
            .sum::<usize>();
    ChatResponse {
        id: format!("scripted-{number}"),
        usage: Usage {
            prompt_tokens: tokens(prompt_chars(request)),
            completion_tokens: tokens(produced),
            ..Usage::default()
        },
        content,
        reasoning: None,
        tool_calls,
        cost: Some(0.0),
        finish_reason: Some(finish.to_string()),
        ..ChatResponse::default()
    }
}

fn tool_call(call: &ScriptCall, step: usize, n: usize) -> ToolCall {
    let arguments = match &call.arguments {
        ScriptArgs::Json(value) => value.to_string(),
        ScriptArgs::Raw(text) => text.clone(),
    };
    ToolCall {
        id: format!("call_{step}_{n}"),
        name: call.tool.clone(),
        arguments,
    }
}

fn prompt_chars(request: &ChatRequest) -> usize {
    let message_chars = |m: &super::ChatMessage| {
        m.content.as_deref().map_or(0, chars)
            + m.tool_calls
                .iter()
                .map(|c| chars(&c.arguments))
                .sum::<usize>()
    };
    request.messages.iter().map(message_chars).sum()
}

fn chars(text: &str) -> usize {
    text.chars().count()
}

/// Approximate tokens: a quarter of the characters, rounded up.
fn tokens(chars: usize) -> u64 {
    chars.div_ceil(4) as u64
}

fn substitute_step(step: ScriptStep, workspace: &str) -> ScriptStep {
    match step {
        ScriptStep::Tools { thought, calls } => ScriptStep::Tools {
            thought,
            calls: calls
                .into_iter()
                .map(|call| ScriptCall {
                    tool: call.tool,
                    arguments: substitute_args(call.arguments, workspace),
                })
                .collect(),
        },
        message => message,
    }
}

fn substitute_args(args: ScriptArgs, workspace: &str) -> ScriptArgs {
    match args {
        ScriptArgs::Json(value) => ScriptArgs::Json(substitute_value(value, workspace)),
        ScriptArgs::Raw(text) => ScriptArgs::Raw(text.replace(WORKSPACE_PLACEHOLDER, workspace)),
    }
}

fn substitute_value(value: Value, workspace: &str) -> Value {
    match value {
        Value::String(text) => Value::String(text.replace(WORKSPACE_PLACEHOLDER, workspace)),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| substitute_value(v, workspace))
                .collect(),
        ),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, substitute_value(v, workspace)))
                .collect(),
        ),
        other => other,
    }
}

/// One step as written in YAML.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    thought: Option<String>,
    tool: Option<String>,
    args: Option<Value>,
    raw_args: Option<String>,
    tools: Option<Vec<RawCall>>,
    message: Option<String>,
}

/// One call of a `tools` list as written in YAML.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCall {
    tool: String,
    args: Option<Value>,
    raw_args: Option<String>,
}

/// Parses and checks a YAML script (see the module doc).
pub fn parse_script(yaml: &str) -> Result<Vec<ScriptStep>, String> {
    if yaml.trim().is_empty() {
        return Err("the script is empty; it must be a YAML list of steps".to_string());
    }
    let raw: Vec<RawStep> = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
    if raw.is_empty() {
        return Err("the script has no steps".to_string());
    }
    raw.into_iter()
        .enumerate()
        .map(|(i, step)| check_step(step).map_err(|e| format!("step {}: {e}", i + 1)))
        .collect()
}

fn check_step(step: RawStep) -> Result<ScriptStep, String> {
    match (step.tool, step.tools, step.message) {
        (Some(tool), None, None) => {
            let arguments = call_args(step.args, step.raw_args)?;
            let calls = vec![ScriptCall { tool, arguments }];
            Ok(ScriptStep::Tools {
                thought: step.thought,
                calls,
            })
        }
        (None, Some(calls), None) => {
            if step.args.is_some() || step.raw_args.is_some() {
                return Err("`args`/`raw_args` belong inside each item of `tools`".to_string());
            }
            tools_step(step.thought, calls)
        }
        (None, None, Some(text)) => {
            if step.thought.is_some() || step.args.is_some() || step.raw_args.is_some() {
                return Err("a `message` step takes no `thought`, `args` or `raw_args`".into());
            }
            Ok(ScriptStep::Message(text))
        }
        _ => Err("needs exactly one of `tool`, `tools` or `message`".to_string()),
    }
}

fn tools_step(thought: Option<String>, calls: Vec<RawCall>) -> Result<ScriptStep, String> {
    if calls.is_empty() {
        return Err("`tools` is empty".to_string());
    }
    let calls = calls
        .into_iter()
        .enumerate()
        .map(|(i, call)| {
            let arguments = call_args(call.args, call.raw_args)
                .map_err(|e| format!("tool call {}: {e}", i + 1))?;
            Ok(ScriptCall {
                tool: call.tool,
                arguments,
            })
        })
        .collect::<Result<_, String>>()?;
    Ok(ScriptStep::Tools { thought, calls })
}

/// `args` or `raw_args` (not both); neither means `{}`.
fn call_args(args: Option<Value>, raw_args: Option<String>) -> Result<ScriptArgs, String> {
    match (args, raw_args) {
        (Some(_), Some(_)) => Err("give `args` or `raw_args`, not both".to_string()),
        (Some(Value::Object(map)), None) => Ok(ScriptArgs::Json(Value::Object(map))),
        (Some(_), None) => Err("`args` must be a mapping; use `raw_args` for verbatim text".into()),
        (None, Some(text)) => Ok(ScriptArgs::Raw(text)),
        (None, None) => Ok(ScriptArgs::Json(Value::Object(Default::default()))),
    }
}
