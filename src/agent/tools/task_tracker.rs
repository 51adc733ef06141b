//! `task_tracker`: the agent's plan as a task list (`plan` replaces it, `view` shows it), with
//! OpenHands' `TaskTrackerAction` / `TaskTrackerObservation` shapes. The list lives in memory
//! and is restored from the last observation when a conversation resumes.

use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{parse_args, ToolOutput, TypedTool};
use crate::llm::ToolSpec;

#[derive(Default)]
pub struct TaskTrackerTool {
    tasks: Mutex<Vec<Task>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    #[default]
    View,
    Plan,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    Todo,
    InProgress,
    Done,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    title: String,
    #[serde(default)]
    notes: String,
    #[serde(default)]
    status: Status,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TaskTrackerAction {
    #[serde(default)]
    command: Command,
    #[serde(default)]
    task_list: Vec<Task>,
}

impl TaskTrackerTool {
    pub fn new() -> Self {
        Self::default()
    }

    fn tasks(&self) -> std::sync::MutexGuard<'_, Vec<Task>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The list as the model reads it: `1. [ ] title`, notes indented below.
fn render(tasks: &[Task]) -> String {
    let mut out = String::new();
    for (i, task) in tasks.iter().enumerate() {
        let mark = match task.status {
            Status::Todo => ' ',
            Status::InProgress => '~',
            Status::Done => 'x',
        };
        out.push_str(&format!("{}. [{mark}] {}\n", i + 1, task.title));
        for line in task.notes.lines().filter(|l| !l.trim().is_empty()) {
            out.push_str(&format!("   {line}\n"));
        }
    }
    out.trim_end().to_string()
}

fn done_count(tasks: &[Task]) -> usize {
    tasks.iter().filter(|t| t.status == Status::Done).count()
}

fn plan_text(tasks: &[Task]) -> String {
    if tasks.is_empty() {
        return "Task list cleared: it has no tasks now.".into();
    }
    let noun = if tasks.len() == 1 { "task" } else { "tasks" };
    format!(
        "Task list updated with {} {noun} ({} done):\n{}",
        tasks.len(),
        done_count(tasks),
        render(tasks)
    )
}

fn view_text(tasks: &[Task]) -> String {
    if tasks.is_empty() {
        return "No task list yet. Create one with the `plan` command and a `task_list` of \
                tasks (title, notes, status)."
            .into();
    }
    format!("Current task list:\n{}", render(tasks))
}

#[async_trait]
impl TypedTool for TaskTrackerTool {
    type Action = TaskTrackerAction;
    const NAME: &'static str = "task_tracker";
    const ACTION_KIND: &'static str = "TaskTrackerAction";
    const OBSERVATION_KIND: &'static str = "TaskTrackerObservation";

    fn tool_spec(&self) -> ToolSpec {
        ToolSpec {
            name: "task_tracker".into(),
            description: DESCRIPTION.into(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "command": {
                        "type": "string",
                        "enum": ["view", "plan"],
                        "description": "`view` shows the task list; `plan` replaces it with \
                            `task_list`. Default: view."
                    },
                    "task_list": {
                        "type": "array",
                        "description": "For `plan`: the complete new list of tasks.",
                        "items": {
                            "type": "object",
                            "properties": {
                                "title": {"type": "string", "description": "What to do."},
                                "notes": {"type": "string", "description": "Optional details."},
                                "status": {
                                    "type": "string",
                                    "enum": ["todo", "in_progress", "done"],
                                    "description": "Default: todo."
                                }
                            },
                            "required": ["title"]
                        }
                    }
                },
                "required": ["command"]
            }),
        }
    }

    fn parse(&self, arguments: &Value) -> Result<TaskTrackerAction, String> {
        parse_args(Self::NAME, arguments)
    }

    async fn invalid(&self, action: &Value, reason: String) -> ToolOutput {
        let msg = format!("invalid task_tracker action: {reason}");
        let extra = json!({"command": action["command"], "task_list": []});
        ToolOutput::new(Self::OBSERVATION_KIND, msg, true, extra)
    }

    async fn run(&self, action: TaskTrackerAction) -> ToolOutput {
        let mut tasks = self.tasks();
        let text = match action.command {
            Command::Plan => {
                *tasks = action.task_list;
                plan_text(&tasks)
            }
            Command::View => view_text(&tasks),
        };
        let extra = json!({"command": action.command, "task_list": *tasks});
        ToolOutput::new(Self::OBSERVATION_KIND, text, false, extra)
    }

    fn summary(action: &TaskTrackerAction) -> String {
        match action.command {
            Command::View => "view".into(),
            Command::Plan => format!(
                "plan ({} tasks, {} done)",
                action.task_list.len(),
                done_count(&action.task_list)
            ),
        }
    }

    fn restore_state(&self, last_observation: &Value) {
        if let Ok(tasks) =
            serde_json::from_value::<Vec<Task>>(last_observation["task_list"].clone())
        {
            *self.tasks() = tasks;
        }
    }
}

const DESCRIPTION: &str = "Keeps a structured task list for multi-step work. Use `plan` with the \
complete `task_list` to create or update it (each task: `title`, optional `notes`, `status` \
todo | in_progress | done), and `view` to see it. Plan complex tasks before starting, keep one \
task in_progress at a time, and mark tasks done as soon as they are finished and verified.";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::tools::Tool;

    async fn call(tool: &TaskTrackerTool, args: Value) -> ToolOutput {
        let action = tool.parse_action(&args).expect("valid arguments");
        tool.execute(&action).await
    }

    fn three_tasks() -> Value {
        json!([
            {"title": "Read the code", "status": "done"},
            {"title": "Fix the bug", "notes": "in parser.rs\nkeep API", "status": "in_progress"},
            {"title": "Run tests"}
        ])
    }

    #[tokio::test]
    async fn view_without_a_list_says_how_to_make_one() {
        let tool = TaskTrackerTool::new();
        let out = call(&tool, json!({})).await;
        assert!(out.text.contains("No task list") && out.text.contains("plan"));
        assert_eq!(out.observation["kind"], json!("TaskTrackerObservation"));
        assert_eq!(out.observation["command"], json!("view"));
        assert_eq!(out.observation["task_list"], json!([]));
        assert!(!out.is_error);
    }

    #[tokio::test]
    async fn plan_replaces_and_renders_the_list() {
        let tool = TaskTrackerTool::new();
        call(
            &tool,
            json!({"command": "plan", "task_list": [{"title": "old"}]}),
        )
        .await;
        let out = call(
            &tool,
            json!({"command": "plan", "task_list": three_tasks()}),
        )
        .await;
        let rendered = "1. [x] Read the code\n2. [~] Fix the bug\n   in parser.rs\n   keep API\n\
                        3. [ ] Run tests";
        assert_eq!(
            out.text,
            format!("Task list updated with 3 tasks (1 done):\n{rendered}")
        );
        assert_eq!(
            out.observation["task_list"][2],
            json!({"title": "Run tests", "notes": "", "status": "todo"})
        );
        let out = call(&tool, json!({"command": "view"})).await;
        assert_eq!(out.text, format!("Current task list:\n{rendered}"));
        assert_eq!(out.observation["task_list"].as_array().unwrap().len(), 3);
    }

    #[tokio::test]
    async fn restore_reloads_the_list() {
        let tool = TaskTrackerTool::new();
        let out = call(
            &tool,
            json!({"command": "plan", "task_list": three_tasks()}),
        )
        .await;
        let resumed = TaskTrackerTool::new();
        resumed.restore(&out.observation);
        let view = call(&resumed, json!({"command": "view"})).await;
        assert!(view.text.contains("2. [~] Fix the bug"), "{}", view.text);
        resumed.restore(&json!({"kind": "Other"}));
        assert_eq!(
            call(&resumed, json!({})).await.observation["task_list"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
    }

    #[test]
    fn parse_defaults_validation_and_summary() {
        let tool = TaskTrackerTool::new();
        let action = tool.parse_action(&json!({"command": "plan", "task_list": [{"title": "a"}]}));
        let action = action.unwrap();
        assert_eq!(
            action,
            json!({"kind": "TaskTrackerAction", "command": "plan",
                   "task_list": [{"title": "a", "notes": "", "status": "todo"}]})
        );
        assert!(tool.parse_action(&json!({"command": "delete"})).is_err());
        let bad_status = json!({"command": "plan", "task_list": [{"title": "a", "status": "x"}]});
        assert!(tool
            .parse_action(&bad_status)
            .unwrap_err()
            .contains("in_progress"));
        assert!(tool
            .parse_action(&json!({"command": "plan", "task_list": [{}]}))
            .is_err());
        let plan = json!({"command": "plan", "task_list": three_tasks()});
        assert_eq!(tool.summarize(&plan), "plan (3 tasks, 1 done)");
        assert_eq!(tool.summarize(&json!({"command": "view"})), "view");
    }
}
