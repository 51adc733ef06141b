//! The trigger rules on real payloads, with the text fields edited where a phrase is needed.

use serde_json::Value;

use super::*;
use crate::config::ci::{BotPolicy, CiSettings, Mode};

fn settings(mode: Mode) -> CiSettings {
    CiSettings {
        mode,
        trigger_phrase: "@sandcrab".into(),
        label: "sandcrab".into(),
        allowed_users: vec![],
        allow_bots: BotPolicy::Refuse,
        draft_pr: true,
        branch_prefix: "sandcrab/".into(),
        timeout: None,
        issue_number: None,
    }
}

fn fixture(name: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/github-events/{name}.payload.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn event(name: &str, file: &str, edit: impl FnOnce(&mut Value)) -> GithubEvent {
    let mut v = fixture(file);
    edit(&mut v);
    GithubEvent::parse(name, &v.to_string()).unwrap()
}

fn run_mode(d: Decision) -> (Mode, Target) {
    match d {
        Decision::Run(p) => (p.mode, p.target),
        Decision::Skip(why) => panic!("skipped: {why}"),
    }
}

#[test]
fn phrase_matches_whole_words_only() {
    assert!(contains_phrase("@sandcrab fix this", "@sandcrab"));
    assert!(contains_phrase("hey @SandCrab, please", "@sandcrab"));
    assert!(contains_phrase("line\n@sandcrab", "@sandcrab"));
    assert!(!contains_phrase("@sandcrab-bot fix", "@sandcrab"));
    assert!(!contains_phrase("mail me@sandcrab", "@sandcrab"));
    assert!(!contains_phrase("anything", ""));
}

#[test]
fn issue_comment_runs_with_the_phrase_and_resolves() {
    let s = settings(Mode::Auto);
    let plain = event("issue_comment", "issue_comment.created", |_| {});
    assert!(matches!(decide(&plain, &s, false), Decision::Skip(_)));
    let asked = event("issue_comment", "issue_comment.created", |v| {
        v["comment"]["body"] = "@sandcrab please fix the typo".into()
    });
    assert_eq!(
        run_mode(decide(&asked, &s, false)),
        (Mode::Resolve, Target::Issue(1))
    );
    let on_pr = event("issue_comment", "issue_comment.created", |v| {
        v["comment"]["body"] = "@sandcrab fix it".into();
        v["issue"]["pull_request"] = serde_json::json!({"url": "x"});
    });
    assert_eq!(
        run_mode(decide(&on_pr, &s, false)),
        (Mode::Resolve, Target::PullRequest(1))
    );
    let edited = event("issue_comment", "issue_comment.created", |v| {
        v["comment"]["body"] = "@sandcrab".into();
        v["action"] = "edited".into();
    });
    assert!(matches!(decide(&edited, &s, false), Decision::Skip(_)));
}

#[test]
fn issues_run_on_phrase_label_or_assignment() {
    let s = settings(Mode::Auto);
    let opened = event("issues", "issues.opened", |_| {});
    assert!(matches!(decide(&opened, &s, false), Decision::Skip(_)));
    let opened = event("issues", "issues.opened", |v| {
        v["issue"]["body"] = "Please @sandcrab.".into()
    });
    assert_eq!(run_mode(decide(&opened, &s, false)).1, Target::Issue(1));
    let labeled = event("issues", "issues.labeled", |_| {});
    assert!(matches!(decide(&labeled, &s, false), Decision::Skip(_)));
    let labeled = event("issues", "issues.labeled", |v| {
        v["label"]["name"] = "SandCrab".into()
    });
    assert_eq!(run_mode(decide(&labeled, &s, false)).0, Mode::Resolve);
    let assigned = event("issues", "issues.assigned", |v| {
        v["assignee"]["login"] = "sandcrab".into()
    });
    assert_eq!(run_mode(decide(&assigned, &s, false)).1, Target::Issue(1));
}

#[test]
fn pull_request_events_review_in_auto_mode() {
    let s = settings(Mode::Auto);
    for file in ["pull_request.opened", "pull_request.synchronize"] {
        let e = event("pull_request", file, |_| {});
        assert_eq!(
            run_mode(decide(&e, &s, false)),
            (Mode::Review, Target::PullRequest(2))
        );
    }
    let labeled_bug = event("pull_request", "pull_request.labeled", |_| {});
    assert!(matches!(decide(&labeled_bug, &s, false), Decision::Skip(_)));
    let closed = event("pull_request", "pull_request.closed", |_| {});
    assert!(matches!(decide(&closed, &s, false), Decision::Skip(_)));
    let ask = settings(Mode::Ask);
    let e = event("pull_request", "pull_request.opened", |_| {});
    assert_eq!(run_mode(decide(&e, &ask, false)).0, Mode::Ask);
}

#[test]
fn review_events_need_the_phrase() {
    let s = settings(Mode::Auto);
    let review = event(
        "pull_request_review",
        "pull_request_review.submitted",
        |_| {},
    );
    assert!(matches!(decide(&review, &s, false), Decision::Skip(_)));
    let review = event(
        "pull_request_review",
        "pull_request_review.submitted",
        |v| v["review"]["body"] = "@sandcrab address this".into(),
    );
    assert_eq!(
        run_mode(decide(&review, &s, false)),
        (Mode::Resolve, Target::PullRequest(2))
    );
    let rc = event(
        "pull_request_review_comment",
        "pull_request_review_comment.created",
        |v| v["comment"]["body"] = "@sandcrab use a constant here".into(),
    );
    assert_eq!(run_mode(decide(&rc, &s, false)).1, Target::PullRequest(2));
}

#[test]
fn dispatch_needs_a_prompt_and_review_needs_a_pr() {
    let s = settings(Mode::Auto);
    let wd = event("workflow_dispatch", "workflow_dispatch", |_| {});
    assert!(matches!(decide(&wd, &s, false), Decision::Skip(_)));
    assert_eq!(
        run_mode(decide(&wd, &s, true)),
        (Mode::Resolve, Target::Repository)
    );
    let review = settings(Mode::Review);
    assert!(matches!(decide(&wd, &review, true), Decision::Skip(_)));
    let push = GithubEvent::parse("push", "{}").unwrap();
    assert!(matches!(decide(&push, &s, true), Decision::Skip(_)));
}

#[test]
fn issue_number_makes_a_dispatch_or_schedule_run_resolve_that_issue() {
    let mut s = settings(Mode::Auto);
    s.issue_number = Some(7);
    let wd = event("workflow_dispatch", "workflow_dispatch", |_| {});
    assert_eq!(
        run_mode(decide(&wd, &s, false)),
        (Mode::Resolve, Target::Issue(7))
    );
    let schedule = GithubEvent::parse("schedule", r#"{"schedule": "0 3 * * *"}"#).unwrap();
    assert_eq!(
        run_mode(decide(&schedule, &s, false)),
        (Mode::Resolve, Target::Issue(7))
    );
    // Not on events that carry their own issue: the comment's issue wins.
    let ic = event("issue_comment", "issue_comment.created", |v| {
        v["comment"]["body"] = "@sandcrab go".into()
    });
    assert_eq!(run_mode(decide(&ic, &s, false)).1, Target::Issue(1));
}

#[test]
fn bots_and_allowed_users() {
    let user = Account {
        login: "octocat".into(),
        kind: "User".into(),
    };
    let bot = Account {
        login: "renovate[bot]".into(),
        kind: "Bot".into(),
    };
    let mut s = settings(Mode::Auto);
    assert_eq!(check_actor(&user, &s), ActorCheck::NeedsPermission);
    assert!(matches!(check_actor(&bot, &s), ActorCheck::Refuse(_)));
    s.allow_bots = BotPolicy::Named(vec!["renovate".into()]);
    assert_eq!(check_actor(&bot, &s), ActorCheck::AllowedBot);
    s.allow_bots = BotPolicy::Named(vec!["dependabot[bot]".into()]);
    assert!(matches!(check_actor(&bot, &s), ActorCheck::Refuse(_)));
    s.allowed_users = vec!["Hubot".into()];
    assert!(matches!(check_actor(&user, &s), ActorCheck::Refuse(_)));
    s.allowed_users = vec!["OctoCat".into()];
    assert_eq!(check_actor(&user, &s), ActorCheck::NeedsPermission);
}

#[test]
fn write_maintain_and_admin_may_run() {
    assert!(permission_allows("write", Some("write")));
    assert!(permission_allows("write", Some("maintain")));
    assert!(permission_allows("admin", None));
    assert!(!permission_allows("read", Some("triage")));
    assert!(!permission_allows("none", None));
}
