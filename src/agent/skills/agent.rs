//! The agent's side of skills: the dynamic system block, keyword skills recalled into a user
//! message (`extended_content` + `activated_skills`, once per conversation), and path rules
//! recalled into the first observation that touches their folder (once per conversation, also
//! across a resume: `recall_path_rules`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::tool::InvokeSkillTool;
use super::{render, AgentContext};
use crate::agent::Agent;
use crate::protocol::event::{Event, EventBody, TextContent};

/// What the agent knows of its repository's skills.
#[derive(Debug, Default)]
pub struct SkillState {
    pub context: Arc<AgentContext>,
    /// The agent's working dir, to make touched paths relative.
    pub working_dir: PathBuf,
    /// Path rules already injected in this conversation.
    pub activated_rules: std::sync::Mutex<Vec<String>>,
}

impl Agent {
    /// The agent with its repository's instructions and skills; adds `invoke_skill` when a
    /// skill can be invoked.
    pub fn with_context(mut self, context: AgentContext, working_dir: &Path) -> Self {
        if context.is_empty() {
            return self;
        }
        let context = Arc::new(context);
        if context.has_invocable_skills() {
            let tool: Arc<dyn crate::agent::tools::Tool> =
                Arc::new(InvokeSkillTool::new(context.clone()));
            self.specs.push(tool.spec());
            self.tools.push(tool);
        }
        self.skills = Some(SkillState {
            context,
            working_dir: working_dir.to_path_buf(),
            activated_rules: Default::default(),
        });
        self
    }

    pub fn agent_context(&self) -> Option<&AgentContext> {
        self.skills.as_ref().map(|s| s.context.as_ref())
    }

    /// The dynamic (uncached) system block: repository context, skills, suffix.
    pub(crate) fn dynamic_context(&self) -> Option<TextContent> {
        let skills = self.skills.as_ref()?;
        render::dynamic_context(&skills.context, self.model_name()).map(TextContent::new)
    }

    /// A user message, with the knowledge of keyword skills it triggers for the first time in
    /// `events` (OpenHands' `<EXTRA_INFO>` in `extended_content`, names in
    /// `activated_skills`).
    pub fn user_message(&self, text: &str, events: &[Event]) -> Event {
        let mut event = Event::user_message(text);
        let Some(skills) = &self.skills else {
            return event;
        };
        let activated: Vec<String> = events
            .iter()
            .flat_map(|e| match &e.body {
                EventBody::MessageEvent {
                    activated_skills, ..
                } => activated_skills.clone(),
                _ => Vec::new(),
            })
            .collect();
        if let Some((extra, names)) = render::keyword_suffix(&skills.context, text, &activated) {
            if let EventBody::MessageEvent {
                activated_skills,
                extended_content,
                ..
            } = &mut event.body
            {
                extended_content
                    .push(serde_json::to_value(TextContent::new(extra)).unwrap_or_default());
                *activated_skills = names;
            }
        }
        event
    }

    /// The path rules an action's `path` brings in for the first time, as content for its
    /// observation's `extended_content`.
    pub(crate) fn path_rule_content(&self, action: &Value) -> Option<Value> {
        let skills = self.skills.as_ref()?;
        let raw = action["path"].as_str().filter(|p| !p.is_empty())?;
        let path = Path::new(raw);
        let relative = if path.is_absolute() {
            path.strip_prefix(&skills.working_dir).ok()?
        } else {
            path
        };
        let relative = relative.to_string_lossy().replace('\\', "/");
        let mut activated = skills
            .activated_rules
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let (text, names) = render::path_rules(&skills.context, &relative, &activated)?;
        activated.extend(names);
        Some(serde_json::to_value(TextContent::new(text)).unwrap_or_default())
    }

    /// On a resume: takes note of the path rules the conversation already got, so none comes
    /// a second time. They are those of the actions whose observations carried rules, replayed
    /// in order against the same context (the event log has the paths, not the rule names).
    pub(crate) fn recall_path_rules(&self, events: &[Event]) {
        if self.skills.is_none() {
            return;
        }
        let with_rules: std::collections::HashSet<&str> = events
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::ObservationEvent {
                    action_id,
                    extended_content,
                    ..
                } if !extended_content.is_empty() => Some(action_id.as_str()),
                _ => None,
            })
            .collect();
        for event in events {
            if let EventBody::ActionEvent(action) = &event.body {
                if let Some(action) = action
                    .action
                    .as_ref()
                    .filter(|_| with_rules.contains(event.id.as_str()))
                {
                    self.path_rule_content(action);
                }
            }
        }
    }
}
