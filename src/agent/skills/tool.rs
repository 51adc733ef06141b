//! `invoke_skill` {name}: OpenHands' built-in tool that hands the model a skill listed in
//! `<available_skills>` (action `InvokeSkillAction`, observation `InvokeSkillObservation` with
//! `skill_name`). Attached only when such a skill exists. Unlike OpenHands, no `!`command``
//! in the skill text is run: the content is repository text, returned as it is.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use super::AgentContext;
use crate::agent::tools::{parse_args, with_kind, Tool, ToolOutput};
use crate::llm::ToolSpec;

pub const NAME: &str = "invoke_skill";

pub struct InvokeSkillTool {
    context: Arc<AgentContext>,
}

impl InvokeSkillTool {
    pub fn new(context: Arc<AgentContext>) -> Self {
        InvokeSkillTool { context }
    }
}

#[derive(Deserialize, serde::Serialize)]
struct Args {
    name: String,
}

#[async_trait]
impl Tool for InvokeSkillTool {
    fn name(&self) -> &'static str {
        NAME
    }

    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: NAME.into(),
            description: "Invoke a skill by name.\n\nThis is the only supported way to invoke a skill listed in\n`<available_skills>`. Call it with the `<name>` shown in that block; the\nskill's full content is rendered (including any dynamic context) and\nreturned as the tool result.\n".into(),
            parameters: json!({
                "type": "object",
                "properties": {"name": {"type": "string", "description": "Name of the loaded skill to invoke."}},
                "required": ["name"],
            }),
        }
    }

    fn parse_action(&self, arguments: &Value) -> Result<Value, String> {
        let args: Args = parse_args(NAME, arguments)?;
        Ok(with_kind("InvokeSkillAction", args))
    }

    async fn execute(&self, action: &Value) -> ToolOutput {
        let name = action["name"]
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_string();
        let found = self.context.skills.iter().find(|s| s.name == name);
        let (text, is_error) = match found {
            Some(skill) if skill.is_invocable() => {
                let mut text = skill.content.clone();
                if let Some(dir) = skill
                    .source
                    .as_deref()
                    .filter(|_| skill.is_agentskills_format)
                    .and_then(|s| s.rsplit_once('/'))
                    .map(|(dir, _)| dir)
                {
                    text.push_str(&format!("\n\n---\nThis skill is located at `{dir}`. Any files it references (e.g. under `scripts/`, `references/`, `assets/`) are relative to that directory."));
                }
                (text, false)
            }
            Some(_) => (
                format!("Skill '{name}' cannot be invoked directly. It can only be activated by trigger matching."),
                true,
            ),
            None => {
                let mut names: Vec<&str> = self
                    .context
                    .skills
                    .iter()
                    .filter(|s| s.is_invocable())
                    .map(|s| s.name.as_str())
                    .collect();
                names.sort();
                let list = if names.is_empty() { "<none>".to_string() } else { names.join(", ") };
                (format!("Unknown skill '{name}'. Available skills: {list}."), true)
            }
        };
        ToolOutput::new(
            "InvokeSkillObservation",
            text,
            is_error,
            json!({"skill_name": name}),
        )
    }

    fn summarize(&self, action: &Value) -> String {
        format!("skill {}", action["name"].as_str().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::skills::{Skill, Trigger};

    #[tokio::test]
    async fn returns_the_skill_or_names_the_available_ones() {
        let mut release = Skill::always(
            "release",
            "Run make release.".into(),
            ".agents/skills/release/SKILL.md",
        );
        release.is_agentskills_format = true;
        let mut rule = Skill::always("agents:api", "x".into(), "api/AGENTS.md");
        rule.trigger = Some(Trigger::Path {
            paths: vec!["api/**".into()],
        });
        let tool = InvokeSkillTool::new(Arc::new(AgentContext {
            skills: vec![release, rule],
            ..AgentContext::default()
        }));
        let action = tool.parse_action(&json!({"name": "release"})).unwrap();
        assert_eq!(action["kind"], "InvokeSkillAction");
        let out = tool.execute(&action).await;
        assert!(!out.is_error);
        assert!(out.text.starts_with("Run make release."));
        assert!(out.text.contains("`.agents/skills/release`"));
        assert_eq!(out.observation["kind"], "InvokeSkillObservation");
        assert_eq!(out.observation["skill_name"], "release");
        let out = tool.execute(&json!({"name": "nope"})).await;
        assert!(out.is_error);
        assert!(
            out.text.contains("Available skills: release."),
            "{}",
            out.text
        );
        assert!(tool.execute(&json!({"name": "agents:api"})).await.is_error);
    }
}
