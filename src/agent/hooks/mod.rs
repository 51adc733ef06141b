//! Hooks, as OpenHands 1.58 and Claude Code define them: a `hooks.json` (`HookConfig`) maps
//! the events PreToolUse, PostToolUse, UserPromptSubmit, SessionStart, SessionEnd and Stop to
//! matchers (`*`, a tool name, or a regex) and the commands they run.
//!
//! Input may use PascalCase (`PreToolUse`) or snake_case keys, optionally inside
//! `{"hooks": {...}}`, so Claude Code hook files load as they are; on the wire
//! (`StartConversationRequest.hook_config`) it is snake_case. `run` executes them (in the
//! agent's working dir, wherever the agent runs) with Claude Code's contract: exit 0 is
//! success (stdout may be a JSON decision), exit 2 blocks, anything else is a non-blocking
//! error.

pub mod agent;
pub mod run;

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How long a Stop hook made of `verify-command` may run (seconds).
pub const VERIFY_TIMEOUT_SECS: u64 = 1800;

/// The hook events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookEventType {
    PreToolUse,
    PostToolUse,
    UserPromptSubmit,
    SessionStart,
    SessionEnd,
    Stop,
}

impl HookEventType {
    pub fn as_str(self) -> &'static str {
        match self {
            HookEventType::PreToolUse => "PreToolUse",
            HookEventType::PostToolUse => "PostToolUse",
            HookEventType::UserPromptSubmit => "UserPromptSubmit",
            HookEventType::SessionStart => "SessionStart",
            HookEventType::SessionEnd => "SessionEnd",
            HookEventType::Stop => "Stop",
        }
    }
}

/// OpenHands' `HookConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_tool_use: Vec<HookMatcher>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_tool_use: Vec<HookMatcher>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_prompt_submit: Vec<HookMatcher>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub session_start: Vec<HookMatcher>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub session_end: Vec<HookMatcher>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<HookMatcher>,
}

/// `{matcher, hooks}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookMatcher {
    #[serde(default = "star")]
    pub matcher: String,
    #[serde(default)]
    pub hooks: Vec<HookDefinition>,
}

fn star() -> String {
    "*".into()
}

/// One hook (`HookDefinition`); only `command` hooks run in sandcrab.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookDefinition {
    #[serde(rename = "type", default = "command_type")]
    pub kind: String,
    #[serde(default)]
    pub command: String,
    #[serde(default = "sixty")]
    pub timeout: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "async", default, skip_serializing_if = "std::ops::Not::not")]
    pub is_async: bool,
}

fn command_type() -> String {
    "command".into()
}

fn sixty() -> u64 {
    60
}

impl HookMatcher {
    /// OpenHands' matching: `*` or empty matches all; `/re/` or a name with regex
    /// metacharacters is a full-match regex; else the exact tool name.
    pub fn matches(&self, tool: Option<&str>) -> bool {
        let m = self.matcher.as_str();
        if m == "*" || m.is_empty() {
            return true;
        }
        let Some(tool) = tool else {
            return false;
        };
        let full =
            |pattern: &str| Regex::new(&format!("^(?:{pattern})$")).map(|re| re.is_match(tool));
        if m.len() > 2 && m.starts_with('/') && m.ends_with('/') {
            return full(&m[1..m.len() - 1]).unwrap_or(false);
        }
        if m.chars().any(|c| "|.*+?[]()^$\\".contains(c)) {
            if let Ok(hit) = full(m) {
                return hit;
            }
        }
        m == tool
    }
}

impl HookConfig {
    /// Parses a hook file or a `hook_config`: both casings, optionally under `"hooks"`.
    pub fn parse(value: &Value) -> Result<Self, String> {
        let mut value = value;
        if let Some(inner) = value.get("hooks").filter(|h| h.is_object()) {
            value = inner;
        }
        let Some(map) = value.as_object() else {
            return Err("a hook configuration must be a JSON object".into());
        };
        let mut normal = Map::new();
        for (key, v) in map {
            let snake = snake_case(key);
            if normal.insert(snake.clone(), v.clone()).is_some() {
                return Err(format!(
                    "hook event '{key}' is given twice (as '{key}' and '{snake}')"
                ));
            }
        }
        serde_json::from_value(Value::Object(normal)).map_err(|e| {
            format!("{e} (events: PreToolUse, PostToolUse, UserPromptSubmit, SessionStart, SessionEnd, Stop)")
        })
    }

    /// Parses the text of a `hooks.json`.
    pub fn parse_text(text: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Self::parse(&value)
    }

    pub fn is_empty(&self) -> bool {
        self == &HookConfig::default()
    }

    /// The matchers of one event.
    pub fn matchers(&self, event: HookEventType) -> &[HookMatcher] {
        match event {
            HookEventType::PreToolUse => &self.pre_tool_use,
            HookEventType::PostToolUse => &self.post_tool_use,
            HookEventType::UserPromptSubmit => &self.user_prompt_submit,
            HookEventType::SessionStart => &self.session_start,
            HookEventType::SessionEnd => &self.session_end,
            HookEventType::Stop => &self.stop,
        }
    }

    /// The hooks to run for `event` on `tool`, in order.
    pub fn hooks_for(&self, event: HookEventType, tool: Option<&str>) -> Vec<&HookDefinition> {
        self.matchers(event)
            .iter()
            .filter(|m| m.matches(tool))
            .flat_map(|m| &m.hooks)
            .collect()
    }

    /// `self`'s hooks first, then `other`'s (explicit hooks run before repository ones).
    pub fn merged(mut self, other: HookConfig) -> HookConfig {
        self.pre_tool_use.extend(other.pre_tool_use);
        self.post_tool_use.extend(other.post_tool_use);
        self.user_prompt_submit.extend(other.user_prompt_submit);
        self.session_start.extend(other.session_start);
        self.session_end.extend(other.session_end);
        self.stop.extend(other.stop);
        self
    }

    /// The Stop hook `verify-command` becomes: the agent cannot finish while it fails. Any
    /// failing exit blocks (the command is wrapped so it exits 2) and all its output is the
    /// feedback (stdout goes to stderr).
    pub fn verify(command: &str) -> HookConfig {
        HookConfig {
            stop: vec![HookMatcher {
                matcher: star(),
                hooks: vec![HookDefinition {
                    kind: command_type(),
                    command: format!("( {command}\n) 1>&2 || exit 2"),
                    timeout: VERIFY_TIMEOUT_SECS,
                    name: Some("verify-command".into()),
                    is_async: false,
                }],
            }],
            ..HookConfig::default()
        }
    }
}

/// `PreToolUse` → `pre_tool_use`; snake_case stays.
fn snake_case(key: &str) -> String {
    let mut out = String::new();
    for (i, c) in key.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claude_code_files_normalize_to_openhands_shape() {
        // shared/research/agent-depth.md, appendix A2 (OpenHands 1.58.2's own output).
        let input = json!({"hooks":{"PreToolUse":[{"matcher":"terminal","hooks":[{"type":"command","command":"./block.sh","timeout":10}]}],
            "Stop":[{"hooks":[{"command":"./check.sh"}]}]}});
        let config = HookConfig::parse(&input).unwrap();
        assert_eq!(config.pre_tool_use[0].hooks[0].timeout, 10);
        assert_eq!(config.stop[0].matcher, "*");
        assert_eq!(config.stop[0].hooks[0].timeout, 60);
        let wire = serde_json::to_value(&config).unwrap();
        assert_eq!(wire["pre_tool_use"][0]["matcher"], "terminal");
        assert_eq!(wire["stop"][0]["hooks"][0]["command"], "./check.sh");
        assert!(wire.get("post_tool_use").is_none());
        assert_eq!(HookConfig::parse(&wire).unwrap(), config);
    }

    #[test]
    fn unknown_or_doubled_events_are_errors() {
        assert!(HookConfig::parse(&json!({"PreCompact": []})).is_err());
        let twice = json!({"Stop": [], "stop": []});
        assert!(HookConfig::parse(&twice).unwrap_err().contains("twice"));
        assert!(HookConfig::parse(&json!([])).is_err());
    }

    #[test]
    fn matchers_follow_openhands() {
        let m = |s: &str| HookMatcher {
            matcher: s.into(),
            hooks: vec![],
        };
        assert!(m("*").matches(Some("terminal")) && m("").matches(None));
        assert!(m("terminal").matches(Some("terminal")));
        assert!(!m("terminal").matches(Some("terminal2")));
        assert!(m("terminal|file_editor").matches(Some("file_editor")));
        assert!(!m("file").matches(Some("file_editor")));
        assert!(m("/file_.*/").matches(Some("file_editor")));
        assert!(!m("file_.*").matches(None));
    }

    #[test]
    fn explicit_hooks_run_before_repository_ones() {
        let repo = HookConfig::parse(&json!({"Stop": [{"hooks": [{"command": "repo"}]}]})).unwrap();
        let merged = HookConfig::verify("make test").merged(repo);
        let commands: Vec<&str> = merged
            .hooks_for(HookEventType::Stop, None)
            .iter()
            .map(|h| h.command.as_str())
            .collect();
        assert_eq!(commands, ["( make test\n) 1>&2 || exit 2", "repo"]);
    }
}
