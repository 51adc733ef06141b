//! Parsing the real webhook payloads of tests/fixtures/github-events (octokit/webhooks, MIT).

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/github-events/",
            $name
        ))
    };
}

#[test]
fn issue_comment_has_issue_comment_and_sender() {
    let e = GithubEvent::parse(
        "issue_comment",
        fixture!("issue_comment.created.payload.json"),
    )
    .unwrap();
    assert_eq!(e.action, "created");
    assert_eq!(e.sender.as_ref().unwrap().login, "Codertocat");
    assert!(!e.sender.as_ref().unwrap().is_bot());
    let EventKind::IssueComment { issue, comment } = &e.kind else {
        panic!("{:?}", e.kind)
    };
    assert_eq!(issue.number, 1);
    assert_eq!(issue.title, "Spelling error in the README file");
    assert_eq!(comment.id, 492700400);
    assert!(!e.is_pull_request());
    assert_eq!(e.number(), Some(1));
}

#[test]
fn issues_events_carry_label_and_assignee() {
    let labeled = GithubEvent::parse("issues", fixture!("issues.labeled.payload.json")).unwrap();
    let EventKind::Issues { label, .. } = &labeled.kind else {
        panic!()
    };
    assert_eq!(label.as_ref().unwrap().name, "bug");
    let assigned = GithubEvent::parse("issues", fixture!("issues.assigned.payload.json")).unwrap();
    let EventKind::Issues { assignee, .. } = &assigned.kind else {
        panic!()
    };
    assert_eq!(assignee.as_ref().unwrap().login, "Codertocat");
    let opened = GithubEvent::parse("issues", fixture!("issues.opened.payload.json")).unwrap();
    assert_eq!(opened.action, "opened");
}

#[test]
fn pull_request_events_know_head_base_and_fork() {
    for (file, action) in [
        (fixture!("pull_request.opened.payload.json"), "opened"),
        (
            fixture!("pull_request.synchronize.payload.json"),
            "synchronize",
        ),
        (fixture!("pull_request.labeled.payload.json"), "labeled"),
    ] {
        let e = GithubEvent::parse("pull_request", file).unwrap();
        assert_eq!(e.action, action);
        let pr = e.pull_request().unwrap();
        assert_eq!(pr.number, 2);
        assert_eq!(pr.head.name, "changes");
        assert_eq!(pr.base.name, "master");
        assert!(pr.same_repo("Codertocat/Hello-World"));
        assert!(!pr.same_repo("someone/fork"));
        assert!(e.is_pull_request());
    }
}

#[test]
fn review_and_review_comment_events() {
    let review = GithubEvent::parse(
        "pull_request_review",
        fixture!("pull_request_review.submitted.payload.json"),
    )
    .unwrap();
    let EventKind::Review { review, .. } = &review.kind else {
        panic!()
    };
    assert_eq!(review.id, 237895671);
    assert_eq!(review.body, None);
    let rc = GithubEvent::parse(
        "pull_request_review_comment",
        fixture!("pull_request_review_comment.created.payload.json"),
    )
    .unwrap();
    let EventKind::ReviewComment { comment, .. } = &rc.kind else {
        panic!()
    };
    assert_eq!(comment.path.as_deref(), Some("README.md"));
    assert!(comment.body.as_deref().unwrap().contains("emoji"));
}

#[test]
fn dispatch_and_schedule_events() {
    let wd = GithubEvent::parse(
        "workflow_dispatch",
        fixture!("workflow_dispatch.payload.json"),
    )
    .unwrap();
    let EventKind::WorkflowDispatch { inputs } = &wd.kind else {
        panic!()
    };
    assert_eq!(inputs["name"], "Mona the Octocat");
    assert_eq!(wd.number(), None);
    let rd = GithubEvent::parse(
        "repository_dispatch",
        fixture!("repository_dispatch.payload.json"),
    )
    .unwrap();
    assert_eq!(rd.action, "on-demand-test");
    assert!(matches!(rd.kind, EventKind::RepositoryDispatch { .. }));
    let schedule = GithubEvent::parse("schedule", "{\"schedule\": \"*/5 * * * *\"}").unwrap();
    assert!(matches!(schedule.kind, EventKind::Schedule));
    assert!(schedule.sender.is_none());
}

#[test]
fn a_payload_missing_its_issue_is_an_error() {
    let err = GithubEvent::parse("issue_comment", "{\"action\": \"created\"}").unwrap_err();
    assert_eq!(
        err.to_string(),
        "the issue_comment event payload has no issue"
    );
    assert!(GithubEvent::parse("push", "{}").is_ok_and(|e| matches!(e.kind, EventKind::Other)));
}

#[test]
fn bots_are_known_by_type_or_suffix() {
    let bot = |login: &str, kind: &str| Account {
        login: login.into(),
        kind: kind.into(),
    };
    assert!(bot("dependabot[bot]", "Bot").is_bot());
    assert!(bot("renovate[bot]", "User").is_bot());
    assert!(!bot("octocat", "User").is_bot());
}
