//! Which version of the repository's instruction files, skills, hooks and MCP files a GitHub
//! run trusts (input `instructions-from`, default `base`).
//!
//! - `base`: on a pull request, the merge base of its head with the base branch (a commit of
//!   the base branch: what the maintainers merged, never what the pull request changes);
//!   otherwise the commit checked out (the default branch, or the dispatched ref).
//! - `head`: the working tree. Honoured only when the sender is a user whose write access
//!   was checked (not a bot, whose access GitHub does not report) and the pull request
//!   comes from this repository, not a fork; otherwise the run warns and uses `base`. A
//!   scheduled run (no sender) is started by the workflow itself and may use `head`.
//! - `none`: nothing.

use crate::agent::skills::load::InstructionsFrom;

use super::event::{Account, PullRequest};

/// The decision: what to use, the trusted commit (for `base` on a pull request), and a
/// warning for the log when `head` was asked for and refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trust {
    pub from: InstructionsFrom,
    pub rev: Option<String>,
    pub warning: Option<String>,
}

/// Decides for a run started by `sender` about `pr` (if any) in `repository`.
pub fn decide(
    asked: InstructionsFrom,
    sender: Option<&Account>,
    pr: Option<&PullRequest>,
    repository: &str,
) -> Trust {
    let base = |warning: Option<String>| Trust {
        from: InstructionsFrom::Base,
        rev: pr.map(|p| p.base.sha.clone()).filter(|s| !s.is_empty()),
        warning,
    };
    match asked {
        InstructionsFrom::None => Trust {
            from: InstructionsFrom::None,
            rev: None,
            warning: None,
        },
        InstructionsFrom::Base => base(None),
        InstructionsFrom::Head => {
            if let Some(sender) = sender.filter(|s| s.is_bot()) {
                return base(Some(format!(
                    "instructions-from: head is not honoured for a run started by the bot {}: using the base's instruction files, skills and hooks",
                    sender.login
                )));
            }
            match pr {
                Some(pr) if !pr.same_repo(repository) => base(Some(format!(
                    "instructions-from: head is not honoured for pull request #{} from a fork: using the base's instruction files, skills and hooks",
                    pr.number
                ))),
                _ => Trust {
                    from: InstructionsFrom::Head,
                    rev: None,
                    warning: None,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pr(head_repo: &str) -> PullRequest {
        serde_json::from_value(json!({
            "number": 7, "title": "t",
            "head": {"ref": "feature", "sha": "h1", "repo": {"full_name": head_repo}},
            "base": {"ref": "main", "sha": "b1", "repo": {"full_name": "o/r"}}
        }))
        .unwrap()
    }

    fn user(login: &str, kind: &str) -> Account {
        serde_json::from_value(json!({"login": login, "type": kind})).unwrap()
    }

    #[test]
    fn pull_requests_use_their_base_unless_a_writer_asks_for_a_same_repo_head() {
        let alice = user("alice", "User");
        let same = pr("o/r");
        let fork = pr("mallory/r");
        let t = decide(InstructionsFrom::Base, Some(&alice), Some(&same), "o/r");
        assert_eq!(
            (t.from, t.rev.as_deref()),
            (InstructionsFrom::Base, Some("b1"))
        );
        let t = decide(InstructionsFrom::Head, Some(&alice), Some(&same), "o/r");
        assert_eq!((t.from, t.rev), (InstructionsFrom::Head, None));
        let t = decide(InstructionsFrom::Head, Some(&alice), Some(&fork), "o/r");
        assert_eq!(
            (t.from, t.rev.as_deref()),
            (InstructionsFrom::Base, Some("b1"))
        );
        assert!(t.warning.unwrap().contains("fork"));
        let bot = user("dependabot[bot]", "Bot");
        let t = decide(InstructionsFrom::Head, Some(&bot), Some(&same), "o/r");
        assert_eq!(t.from, InstructionsFrom::Base);
        assert!(t.warning.unwrap().contains("bot"));
        let t = decide(InstructionsFrom::None, Some(&alice), Some(&same), "o/r");
        assert_eq!(t.from, InstructionsFrom::None);
    }

    #[test]
    fn other_runs_use_the_commit_checked_out() {
        let t = decide(InstructionsFrom::Base, None, None, "o/r");
        assert_eq!((t.from, t.rev), (InstructionsFrom::Base, None));
        let t = decide(InstructionsFrom::Head, None, None, "o/r");
        assert_eq!(t.from, InstructionsFrom::Head);
    }
}
