//! Repository instructions and skills, in OpenHands 1.58's shapes: a [`Skill`] is `{name,
//! content, trigger, source, description, is_agentskills_format}` and an [`AgentContext`]
//! (`agent.agent_context` on the wire) holds the skills plus the optional message suffixes.
//!
//! - `load`: reads them from a repository, from a trusted git ref or the working tree.
//! - `render`: the `<REPO_CONTEXT>` / `<SKILLS>` block of the uncached system prompt, the
//!   keyword triggers of user messages and the path rules of tool observations.
//! - `tool`: the `invoke_skill` tool that hands an AgentSkills `SKILL.md` to the model.
//!
//! The runner loads; the agent (wherever it runs) only renders what it was given, so a sandbox
//! never reads instruction files of its own.

pub mod agent;
pub mod load;
pub mod render;
pub mod tool;

use serde::{Deserialize, Serialize};

/// When a skill's content reaches the model (OpenHands' `KeywordTrigger`, `TaskTrigger`,
/// `PathTrigger`); no trigger: always on (legacy) or on demand (AgentSkills).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Trigger {
    Keyword { keywords: Vec<String> },
    Task { triggers: Vec<String> },
    Path { paths: Vec<String> },
}

/// One skill or instruction file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Skill {
    pub name: String,
    pub content: String,
    #[serde(default)]
    pub trigger: Option<Trigger>,
    /// The repository path it was read from.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Loaded from a `SKILL.md` folder: listed by name and description, read through
    /// `invoke_skill`.
    #[serde(default)]
    pub is_agentskills_format: bool,
    #[serde(default)]
    pub disable_model_invocation: bool,
}

impl Skill {
    /// An always-on skill (AGENTS.md and the like).
    pub fn always(name: &str, content: String, source: &str) -> Self {
        Skill {
            name: name.to_string(),
            content,
            trigger: None,
            source: Some(source.to_string()),
            description: None,
            is_agentskills_format: false,
            disable_model_invocation: false,
        }
    }

    /// Whether its full content belongs in `<REPO_CONTEXT>` (legacy, no trigger).
    pub fn is_repo_context(&self) -> bool {
        !self.is_agentskills_format && self.trigger.is_none()
    }

    /// Whether it is listed in `<available_skills>` and can be invoked (path rules never are).
    pub fn is_invocable(&self) -> bool {
        !self.is_repo_context()
            && !self.disable_model_invocation
            && !matches!(self.trigger, Some(Trigger::Path { .. }))
    }
}

/// OpenHands' `AgentContext`, the fields sandcrab acts on (others are ignored when parsed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgentContext {
    #[serde(default)]
    pub skills: Vec<Skill>,
    #[serde(default)]
    pub system_message_suffix: Option<String>,
    #[serde(default)]
    pub user_message_suffix: Option<String>,
}

impl AgentContext {
    pub fn is_empty(&self) -> bool {
        self.skills.is_empty()
            && self.system_message_suffix.is_none()
            && self.user_message_suffix.is_none()
    }

    /// Whether the agent needs the `invoke_skill` tool.
    pub fn has_invocable_skills(&self) -> bool {
        self.skills.iter().any(Skill::is_invocable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn skills_parse_from_openhands_json() {
        let ctx: AgentContext = serde_json::from_value(json!({
            "skills": [
                {"name": "agents", "content": "be nice", "trigger": null, "source": "AGENTS.md",
                 "version": "1.0.0", "mcp_tools": null, "inputs": []},
                {"name": "db", "content": "use sqlx", "trigger": {"type": "keyword", "keywords": ["database"]}},
                {"name": "agents:api", "content": "api", "trigger": {"type": "path", "paths": ["api/**"]}}
            ],
            "load_public_skills": false, "system_message_suffix": null
        }))
        .unwrap();
        assert_eq!(ctx.skills.len(), 3);
        assert!(ctx.skills[0].is_repo_context());
        assert_eq!(
            ctx.skills[1].trigger,
            Some(Trigger::Keyword {
                keywords: vec!["database".into()]
            })
        );
        assert!(ctx.skills[1].is_invocable());
        assert!(!ctx.skills[2].is_invocable());
        let back = serde_json::to_value(&ctx.skills[2]).unwrap();
        assert_eq!(
            back["trigger"],
            json!({"type": "path", "paths": ["api/**"]})
        );
    }
}
