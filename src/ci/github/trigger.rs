//! Whether a GitHub event starts a run, in which mode, on which issue or PR, and whether its
//! sender may start one. Pure rules; the permission lookup itself is the API's.
//!
//! Rules (documented in the README, "GitHub Actions"):
//! - `issue_comment` (created), `pull_request_review_comment` (created), `pull_request_review`
//!   (submitted): run when the trigger phrase is in the comment or review body.
//! - `issues`: `opened` with the phrase in the title or body; `labeled` with the trigger
//!   label; `assigned` to the account named by the phrase (`@sandcrab` → `sandcrab`).
//! - `pull_request`: `opened`, `synchronize`, `reopened`, `ready_for_review`; `labeled` with
//!   the trigger label.
//! - `workflow_dispatch`, `repository_dispatch`, `schedule`: run when a prompt is given.
//! - Mode `auto` is `review` on `pull_request` events and `resolve` everywhere else (an issue,
//!   or a phrase on a PR, where resolve pushes to the PR's branch). `review` needs a PR.
//!   The mode comes from the workflow only: nothing in the event text can change it.

use crate::config::ci::{BotPolicy, CiSettings, Mode};

use super::event::{Account, EventKind, GithubEvent};

/// What the run is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Issue(u64),
    PullRequest(u64),
    /// Dispatch or schedule: no issue or PR to comment on.
    Repository,
}

/// A run to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Never `Auto`.
    pub mode: Mode,
    pub target: Target,
    /// Why it runs, for the log: "issue_comment created with @sandcrab".
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Run(Plan),
    Skip(String),
}

/// Decides from the event and the workflow's settings; `has_prompt`: the workflow gave a
/// prompt (needed by dispatch and schedule events).
pub fn decide(event: &GithubEvent, settings: &CiSettings, has_prompt: bool) -> Decision {
    let phrase = settings.trigger_phrase.as_str();
    let action = event.action.as_str();
    let with_phrase = |text: &str| contains_phrase(text, phrase);
    let label_is =
        |name: Option<&str>| name.is_some_and(|n| n.eq_ignore_ascii_case(&settings.label));
    let why = |what: &str| format!("{} {} {what}", event.name, event.action);
    let (target, reason) = match &event.kind {
        EventKind::IssueComment { issue, comment } => {
            if action != "created" || !with_phrase(comment.body.as_deref().unwrap_or("")) {
                return skip_phrase(event, phrase);
            }
            let target = match issue.pull_request {
                Some(_) => Target::PullRequest(issue.number),
                None => Target::Issue(issue.number),
            };
            (target, why(&format!("with {phrase}")))
        }
        EventKind::ReviewComment {
            pull_request,
            comment: body,
        }
        | EventKind::Review {
            pull_request,
            review: body,
        } => {
            let wanted = if matches!(event.kind, EventKind::Review { .. }) {
                "submitted"
            } else {
                "created"
            };
            if action != wanted || !with_phrase(body.body.as_deref().unwrap_or("")) {
                return skip_phrase(event, phrase);
            }
            (
                Target::PullRequest(pull_request.number),
                why(&format!("with {phrase}")),
            )
        }
        EventKind::Issues {
            issue,
            label,
            assignee,
        } => {
            let text = format!("{}\n{}", issue.title, issue.body.as_deref().unwrap_or(""));
            let assignee_name = phrase.trim_start_matches('@');
            let runs = match action {
                "opened" => with_phrase(&text),
                "labeled" => label_is(label.as_ref().map(|l| l.name.as_str())),
                "assigned" => assignee
                    .as_ref()
                    .is_some_and(|a| a.login.eq_ignore_ascii_case(assignee_name)),
                _ => false,
            };
            if !runs {
                return Decision::Skip(format!(
                    "issues {action}: no trigger (needs {phrase} in a new issue, the label '{}', or an assignment to {assignee_name})",
                    settings.label
                ));
            }
            (Target::Issue(issue.number), why(""))
        }
        EventKind::PullRequest {
            pull_request,
            label,
        } => {
            let runs = match action {
                "opened" | "synchronize" | "reopened" | "ready_for_review" => true,
                "labeled" => label_is(label.as_ref().map(|l| l.name.as_str())),
                _ => false,
            };
            if !runs {
                return Decision::Skip(format!(
                    "pull_request {action}: not a trigger (opened, synchronize, reopened, ready_for_review, or labeled '{}')",
                    settings.label
                ));
            }
            (Target::PullRequest(pull_request.number), why(""))
        }
        EventKind::WorkflowDispatch { .. }
        | EventKind::RepositoryDispatch { .. }
        | EventKind::Schedule => {
            if let Some(n) = settings.issue_number {
                (
                    Target::Issue(n),
                    format!("{} for issue #{n} (issue-number)", event.name),
                )
            } else if !has_prompt {
                return Decision::Skip(format!(
                    "{}: no prompt given (set the prompt input, or issue-number)",
                    event.name
                ));
            } else {
                (Target::Repository, event.name.clone())
            }
        }
        EventKind::Other => {
            return Decision::Skip(format!("event {} is not one sandcrab handles", event.name))
        }
    };
    let is_pr_event = matches!(event.kind, EventKind::PullRequest { .. });
    let mode = match settings.mode {
        Mode::Auto if is_pr_event => Mode::Review,
        Mode::Auto => Mode::Resolve,
        other => other,
    };
    if mode == Mode::Review && !matches!(target, Target::PullRequest(_)) {
        return Decision::Skip(format!(
            "mode review needs a pull request, and {} is not about one",
            event.name
        ));
    }
    Decision::Run(Plan {
        mode,
        target,
        reason: reason.trim().to_string(),
    })
}

fn skip_phrase(event: &GithubEvent, phrase: &str) -> Decision {
    Decision::Skip(format!(
        "{} {}: no {phrase} in the text",
        event.name, event.action
    ))
}

/// Whether `phrase` is in `text` as a whole word, ignoring case: at the start or after
/// whitespace, and followed by whitespace, `.,!?;:)` or the end (`@sandcrab-bot` is not
/// `@sandcrab`).
pub fn contains_phrase(text: &str, phrase: &str) -> bool {
    let phrase = phrase.trim().to_lowercase();
    if phrase.is_empty() {
        return false;
    }
    let text = text.to_lowercase();
    text.match_indices(&phrase).any(|(at, m)| {
        let before = text[..at].chars().next_back();
        let after = text[at + m.len()..].chars().next();
        before.is_none_or(char::is_whitespace)
            && after.is_none_or(|c| c.is_whitespace() || ".,!?;:)".contains(c))
    })
}

/// Who may run, before asking GitHub about permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActorCheck {
    Refuse(String),
    /// An allowed bot: GitHub's collaborator API does not know app bots, so it is not asked.
    AllowedBot,
    /// A user: needs write, maintain or admin on the repository.
    NeedsPermission,
}

/// The settings' verdict on `actor` (bots, allowed-users).
pub fn check_actor(actor: &Account, settings: &CiSettings) -> ActorCheck {
    let login = actor.login.as_str();
    let bare = |name: &str| name.trim_end_matches("[bot]").to_lowercase();
    if actor.is_bot() {
        let allowed = match &settings.allow_bots {
            BotPolicy::Any => true,
            BotPolicy::Refuse => false,
            BotPolicy::Named(names) => names.iter().any(|n| bare(n) == bare(login)),
        };
        return if allowed {
            ActorCheck::AllowedBot
        } else {
            ActorCheck::Refuse(format!(
                "{login} is a bot; bots may not trigger sandcrab unless named in allow-bots"
            ))
        };
    }
    if !settings.allowed_users.is_empty()
        && !settings
            .allowed_users
            .iter()
            .any(|u| u.eq_ignore_ascii_case(login))
    {
        return ActorCheck::Refuse(format!("{login} is not in allowed-users"));
    }
    ActorCheck::NeedsPermission
}

/// Whether GitHub's answer to `collaborators/{user}/permission` lets the user run sandcrab:
/// write, maintain or admin (`permission`, or the finer `role_name`).
pub fn permission_allows(permission: &str, role_name: Option<&str>) -> bool {
    let ok = |p: &str| matches!(p, "admin" | "maintain" | "write");
    ok(permission) || role_name.is_some_and(ok)
}

#[cfg(test)]
#[path = "trigger_tests.rs"]
mod tests;
