//! The GitHub event that started the job (`GITHUB_EVENT_NAME` + the JSON at
//! `GITHUB_EVENT_PATH`), with only the fields sandcrab uses. Everything in it but ids and
//! numbers is untrusted text written by whoever opened the issue, PR or comment.

use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

/// A GitHub account (`sender`, authors, assignees).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Account {
    pub login: String,
    /// `User`, `Bot` or `Organization`.
    #[serde(rename = "type", default)]
    pub kind: String,
}

impl Account {
    pub fn is_bot(&self) -> bool {
        self.kind == "Bot" || self.login.ends_with("[bot]")
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Label {
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Issue {
    pub number: u64,
    #[serde(default)]
    pub title: String,
    pub body: Option<String>,
    #[serde(default)]
    pub labels: Vec<Label>,
    /// Present when the issue is a pull request (comments on PRs arrive as issue comments).
    pub pull_request: Option<Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RepoRef {
    pub full_name: String,
}

/// A PR's head or base.
#[derive(Debug, Clone, Deserialize)]
pub struct Branch {
    #[serde(rename = "ref")]
    pub name: String,
    pub sha: String,
    /// `None` when the head repository (a fork) was deleted.
    pub repo: Option<RepoRef>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PullRequest {
    pub number: u64,
    #[serde(default)]
    pub title: String,
    pub body: Option<String>,
    pub head: Branch,
    pub base: Branch,
    #[serde(default)]
    pub labels: Vec<Label>,
    #[serde(default)]
    pub draft: bool,
}

impl PullRequest {
    /// Whether its head branch lives in `repository` (so the runner may push to it).
    pub fn same_repo(&self, repository: &str) -> bool {
        self.head
            .repo
            .as_ref()
            .is_some_and(|r| r.full_name.eq_ignore_ascii_case(repository))
    }
}

/// An issue comment, a review comment (with `path`/`line`) or a review (`body` only).
#[derive(Debug, Clone, Deserialize)]
pub struct Comment {
    pub id: u64,
    pub body: Option<String>,
    pub path: Option<String>,
    pub line: Option<u64>,
    pub diff_hunk: Option<String>,
}

/// The payload fields sandcrab reads, for every event kind.
#[derive(Debug, Clone, Deserialize)]
struct Payload {
    action: Option<String>,
    sender: Option<Account>,
    issue: Option<Issue>,
    pull_request: Option<PullRequest>,
    comment: Option<Comment>,
    review: Option<Comment>,
    label: Option<Label>,
    assignee: Option<Account>,
    inputs: Option<Value>,
    client_payload: Option<Value>,
}

/// The event, by kind.
#[derive(Debug, Clone)]
pub enum EventKind {
    /// A comment on an issue or on a PR's conversation.
    IssueComment {
        issue: Issue,
        comment: Comment,
    },
    /// A comment on a line of a PR's diff.
    ReviewComment {
        pull_request: PullRequest,
        comment: Comment,
    },
    /// A submitted review.
    Review {
        pull_request: PullRequest,
        review: Comment,
    },
    Issues {
        issue: Issue,
        label: Option<Label>,
        assignee: Option<Account>,
    },
    PullRequest {
        pull_request: PullRequest,
        label: Option<Label>,
    },
    WorkflowDispatch {
        inputs: Value,
    },
    RepositoryDispatch {
        client_payload: Value,
    },
    Schedule,
    /// Anything else: never runs.
    Other,
}

/// A GitHub event.
#[derive(Debug, Clone)]
pub struct GithubEvent {
    /// `GITHUB_EVENT_NAME`.
    pub name: String,
    /// The payload's `action` (`created`, `opened`, `labeled`...), empty when none.
    pub action: String,
    pub sender: Option<Account>,
    pub kind: EventKind,
}

/// Why an event could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("cannot read the event payload {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the {name} event payload is not what GitHub sends: {source}")]
    Parse {
        name: String,
        source: serde_json::Error,
    },
    #[error("the {name} event payload has no {field}")]
    Missing { name: String, field: &'static str },
}

impl GithubEvent {
    /// Reads the event at `path` (schedule events may have none).
    pub fn load(name: &str, path: Option<&Path>) -> Result<Self, EventError> {
        let text = match path {
            Some(path) => std::fs::read_to_string(path).map_err(|source| EventError::Read {
                path: path.display().to_string(),
                source,
            })?,
            None => "{}".to_string(),
        };
        Self::parse(name, &text)
    }

    /// Parses a payload of the event `name`.
    pub fn parse(name: &str, json: &str) -> Result<Self, EventError> {
        let p: Payload = serde_json::from_str(json).map_err(|source| EventError::Parse {
            name: name.to_string(),
            source,
        })?;
        let missing = |field| EventError::Missing {
            name: name.to_string(),
            field,
        };
        let kind = match name {
            "issue_comment" => EventKind::IssueComment {
                issue: p.issue.ok_or_else(|| missing("issue"))?,
                comment: p.comment.ok_or_else(|| missing("comment"))?,
            },
            "pull_request_review_comment" => EventKind::ReviewComment {
                pull_request: p.pull_request.ok_or_else(|| missing("pull_request"))?,
                comment: p.comment.ok_or_else(|| missing("comment"))?,
            },
            "pull_request_review" => EventKind::Review {
                pull_request: p.pull_request.ok_or_else(|| missing("pull_request"))?,
                review: p.review.ok_or_else(|| missing("review"))?,
            },
            "issues" => EventKind::Issues {
                issue: p.issue.ok_or_else(|| missing("issue"))?,
                label: p.label,
                assignee: p.assignee,
            },
            "pull_request" | "pull_request_target" => EventKind::PullRequest {
                pull_request: p.pull_request.ok_or_else(|| missing("pull_request"))?,
                label: p.label,
            },
            "workflow_dispatch" => EventKind::WorkflowDispatch {
                inputs: p.inputs.unwrap_or(Value::Null),
            },
            "repository_dispatch" => EventKind::RepositoryDispatch {
                client_payload: p.client_payload.unwrap_or(Value::Null),
            },
            "schedule" => EventKind::Schedule,
            _ => EventKind::Other,
        };
        Ok(GithubEvent {
            name: name.to_string(),
            action: p.action.unwrap_or_default(),
            sender: p.sender,
            kind,
        })
    }

    /// The issue or PR number the event is about.
    pub fn number(&self) -> Option<u64> {
        match &self.kind {
            EventKind::IssueComment { issue, .. } | EventKind::Issues { issue, .. } => {
                Some(issue.number)
            }
            EventKind::ReviewComment { pull_request, .. }
            | EventKind::Review { pull_request, .. }
            | EventKind::PullRequest { pull_request, .. } => Some(pull_request.number),
            _ => None,
        }
    }

    /// Whether the event is about a pull request (an issue comment on one included).
    pub fn is_pull_request(&self) -> bool {
        match &self.kind {
            EventKind::IssueComment { issue, .. } => issue.pull_request.is_some(),
            EventKind::ReviewComment { .. }
            | EventKind::Review { .. }
            | EventKind::PullRequest { .. } => true,
            _ => false,
        }
    }

    /// The pull request in the payload, when the event carries one.
    pub fn pull_request(&self) -> Option<&PullRequest> {
        match &self.kind {
            EventKind::ReviewComment { pull_request, .. }
            | EventKind::Review { pull_request, .. }
            | EventKind::PullRequest { pull_request, .. } => Some(pull_request),
            _ => None,
        }
    }
}

#[cfg(test)]
#[path = "event_tests.rs"]
mod tests;
