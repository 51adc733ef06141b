//! Runs hooks: `sh -c COMMAND` in the agent's working dir, the `HookEvent` JSON on stdin
//! (`{event_type, tool_name, tool_input, tool_response, message, session_id, working_dir,
//! metadata}`), the terminal's environment without the runner's secrets plus
//! `OPENHANDS_PROJECT_DIR`, `OPENHANDS_SESSION_ID`, `OPENHANDS_EVENT_TYPE`,
//! `OPENHANDS_TOOL_NAME` (and `CLAUDE_PROJECT_DIR`, for Claude Code hook scripts).
//!
//! Exit 0: success, and a JSON stdout may carry `decision` (`deny` blocks), `reason`,
//! `additionalContext` and `continue` (`false` blocks). Exit 2: blocked (the reason is
//! stderr). Anything else, a timeout or a hook that cannot start: a non-blocking error. Every
//! hook run is recorded as a `HookExecutionEvent`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::{HookConfig, HookDefinition, HookEventType};
use crate::protocol::event::{Event, EventBody, HookExecution, Source};

/// Most of a hook's stdout or stderr kept in its event and in feedback (characters).
const MAX_OUTPUT_CHARS: usize = 8_000;

/// What one run of the hooks of an event decided.
#[derive(Debug, Default)]
pub struct HookOutcome {
    /// One `HookExecutionEvent` per hook run.
    pub events: Vec<Event>,
    pub blocked: bool,
    /// Why it blocked: the hook's `reason`, else its stderr, else "Blocked by hook".
    pub reason: Option<String>,
    /// The hooks' `additionalContext`, in order.
    pub additional_context: Vec<String>,
}

impl HookOutcome {
    /// The text the model gets when a Stop hook keeps it going (OpenHands: the additional
    /// context, else the blocking reason).
    pub fn feedback(&self) -> Option<String> {
        if !self.additional_context.is_empty() {
            return Some(self.additional_context.join("\n"));
        }
        self.reason.clone()
    }
}

/// Where a hook run belongs.
#[derive(Debug, Default, Clone)]
pub struct HookCall<'a> {
    pub tool_name: Option<&'a str>,
    pub tool_input: Option<Value>,
    pub tool_response: Option<Value>,
    pub message: Option<String>,
    pub metadata: Option<Value>,
    pub action_id: Option<String>,
    pub message_id: Option<String>,
}

/// The hooks of one conversation.
#[derive(Debug, Clone)]
pub struct HookRunner {
    config: HookConfig,
    working_dir: PathBuf,
    env_remove: Vec<String>,
}

/// The result of one hook.
#[derive(Debug, Default)]
struct HookResult {
    success: bool,
    blocked: bool,
    exit_code: i64,
    stdout: String,
    stderr: String,
    reason: Option<String>,
    additional_context: Option<String>,
    error: Option<String>,
}

impl HookRunner {
    pub fn new(config: HookConfig, working_dir: PathBuf, env_remove: Vec<String>) -> Self {
        HookRunner {
            config,
            working_dir,
            env_remove,
        }
    }

    pub fn config(&self) -> &HookConfig {
        &self.config
    }

    /// Whether any hook is configured for `event`.
    pub fn has(&self, event: HookEventType) -> bool {
        !self.config.matchers(event).is_empty()
    }

    /// Runs the hooks of `event` that match, in order; a blocking hook stops the rest
    /// (except for SessionStart, SessionEnd and PostToolUse, where every hook runs).
    pub async fn run(
        &self,
        event: HookEventType,
        session_id: &str,
        call: HookCall<'_>,
    ) -> HookOutcome {
        let hooks = self.config.hooks_for(event, call.tool_name);
        let mut outcome = HookOutcome::default();
        if hooks.is_empty() {
            return outcome;
        }
        let input = json!({
            "event_type": event.as_str(),
            "tool_name": call.tool_name,
            "tool_input": call.tool_input,
            "tool_response": call.tool_response,
            "message": call.message,
            "session_id": session_id,
            "working_dir": self.working_dir.to_string_lossy(),
            "metadata": call.metadata.clone().unwrap_or_else(|| json!({})),
        });
        let stop_on_block = matches!(
            event,
            HookEventType::PreToolUse | HookEventType::UserPromptSubmit | HookEventType::Stop
        );
        for hook in hooks {
            let result = self
                .execute(hook, event, session_id, call.tool_name, &input)
                .await;
            if result.blocked && outcome.reason.is_none() {
                outcome.reason = Some(
                    result
                        .reason
                        .clone()
                        .or_else(|| {
                            Some(result.stderr.trim().to_string()).filter(|s| !s.is_empty())
                        })
                        .unwrap_or_else(|| "Blocked by hook".into()),
                );
            }
            outcome.blocked |= result.blocked;
            outcome
                .additional_context
                .extend(result.additional_context.clone());
            let blocked = result.blocked;
            outcome.events.push(Event::new(
                Source::Hook,
                EventBody::HookExecutionEvent(Box::new(HookExecution {
                    hook_event_type: event.as_str().into(),
                    hook_command: hook.command.clone(),
                    tool_name: call.tool_name.map(String::from),
                    success: result.success,
                    blocked: result.blocked,
                    exit_code: result.exit_code,
                    stdout: result.stdout,
                    stderr: result.stderr,
                    reason: result.reason,
                    additional_context: result.additional_context,
                    error: result.error,
                    action_id: call.action_id.clone(),
                    message_id: call.message_id.clone(),
                    hook_input: Some(input.clone()),
                })),
            ));
            if blocked && stop_on_block {
                break;
            }
        }
        outcome
    }

    async fn execute(
        &self,
        hook: &HookDefinition,
        event: HookEventType,
        session_id: &str,
        tool: Option<&str>,
        input: &Value,
    ) -> HookResult {
        let fail = |error: String| HookResult {
            exit_code: -1,
            error: Some(error),
            ..HookResult::default()
        };
        if hook.kind != "command" {
            return fail(format!(
                "hook type '{}' is not supported by sandcrab: use a command hook",
                hook.kind
            ));
        }
        if hook.command.trim().is_empty() {
            return fail("'command' is required when type is 'command'".into());
        }
        let dir = self.working_dir.to_string_lossy().into_owned();
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(&hook.command)
            .current_dir(&self.working_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        for name in &self.env_remove {
            cmd.env_remove(name);
        }
        cmd.env("OPENHANDS_PROJECT_DIR", &dir)
            .env("CLAUDE_PROJECT_DIR", &dir)
            .env("OPENHANDS_SESSION_ID", session_id)
            .env("OPENHANDS_EVENT_TYPE", event.as_str());
        if let Some(tool) = tool {
            cmd.env("OPENHANDS_TOOL_NAME", tool);
        }
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => return fail(format!("Hook command could not start: {e}")),
        };
        if let Some(mut stdin) = child.stdin.take() {
            let bytes = input.to_string().into_bytes();
            tokio::spawn(async move {
                let _ = stdin.write_all(&bytes).await;
            });
        }
        let group = child.id();
        if hook.is_async {
            let limit = Duration::from_secs(hook.timeout.max(1));
            tokio::spawn(async move {
                if tokio::time::timeout(limit, child.wait()).await.is_err() {
                    kill_group(group);
                }
            });
            return HookResult {
                success: true,
                ..HookResult::default()
            };
        }
        let limit = Duration::from_secs(hook.timeout.max(1));
        let output = match tokio::time::timeout(limit, child.wait_with_output()).await {
            Ok(Ok(output)) => output,
            Ok(Err(e)) => return fail(format!("Hook execution failed: {e}")),
            Err(_) => {
                kill_group(group);
                return fail(format!("Hook timed out after {} seconds", hook.timeout));
            }
        };
        kill_group(group);
        let code = output.status.code().map_or(-1, i64::from);
        let mut result = HookResult {
            success: code == 0,
            blocked: code == 2,
            exit_code: code,
            stdout: clip(&String::from_utf8_lossy(&output.stdout)),
            stderr: clip(&String::from_utf8_lossy(&output.stderr)),
            ..HookResult::default()
        };
        if let Ok(Value::Object(decision)) = serde_json::from_str::<Value>(result.stdout.trim()) {
            match decision
                .get("decision")
                .and_then(Value::as_str)
                .map(str::to_lowercase)
            {
                Some(d) if d == "deny" => result.blocked = true,
                _ => {}
            }
            if let Some(reason) = decision.get("reason") {
                result.reason = Some(text_of(reason));
            }
            if let Some(context) = decision.get("additionalContext") {
                result.additional_context = Some(text_of(context));
            }
            if decision.get("continue").is_some_and(|c| c == &json!(false)) {
                result.blocked = true;
            }
        }
        result
    }
}

fn text_of(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), String::from)
}

/// Ends what a hook left running in its process group.
fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
        // SAFETY: killpg only sends a signal; the group is the hook's own (process_group(0)).
        unsafe {
            libc::killpg(pid, libc::SIGKILL);
        }
    }
}

/// Head and tail of long output (a failing test run ends with what matters).
fn clip(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= MAX_OUTPUT_CHARS {
        return text.to_string();
    }
    let head: String = chars[..MAX_OUTPUT_CHARS / 4].iter().collect();
    let tail: String = chars[chars.len() - MAX_OUTPUT_CHARS * 3 / 4..]
        .iter()
        .collect();
    format!(
        "{head}\n[... {} characters cut ...]\n{tail}",
        chars.len() - MAX_OUTPUT_CHARS
    )
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
