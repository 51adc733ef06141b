//! The GitLab notes client against a fake GitLab on loopback (tests/fakes/gitlab.rs) that
//! checks the `PRIVATE-TOKEN` header and records every request: create and update on merge
//! requests and issues, project paths as one encoded segment, retries on 5xx and 429, clear
//! errors for 401, 404 and a missing token, and the token in no body.

#[path = "fakes/gitlab.rs"]
mod fake;

use std::collections::HashMap;
use std::time::Duration;

use fake::{FakeGitlab, TOKEN};
use sandcrab::ci::gitlab::{GitlabClient, GitlabError, NoteTarget};
use sandcrab::ci::retry::Backoff;
use sandcrab::config::gitlab::gitlab_token;

const QUICK: Backoff = Backoff {
    attempts: 5,
    first_wait: Duration::from_millis(5),
    factor: 2.0,
};

fn client(fake: &FakeGitlab, token: &str) -> GitlabClient {
    GitlabClient::new(&fake.api_url, Some(token))
        .unwrap()
        .with_backoff(QUICK)
}

fn assert_token_only_in_headers(fake: &FakeGitlab) {
    for request in fake.requests() {
        assert!(!request.body.contains(TOKEN), "{request:?}");
        assert!(!request.path.contains(TOKEN), "{request:?}");
    }
}

#[tokio::test]
async fn creates_then_updates_a_note_on_a_merge_request() {
    let fake = FakeGitlab::start().await;
    let gitlab = client(&fake, TOKEN);
    let target = NoteTarget::MergeRequest(7);
    let note = gitlab
        .create_note("group/app", target, "sandcrab is working…")
        .await
        .unwrap();
    assert_eq!(note.body, "sandcrab is working…");
    let updated = gitlab
        .update_note("group/app", target, note.id, "**sandcrab finished**")
        .await
        .unwrap();
    assert_eq!(updated.id, note.id);
    assert_eq!(
        fake.note("group/app", "merge_requests", 7, note.id)
            .as_deref(),
        Some("**sandcrab finished**")
    );

    let requests = fake.requests();
    let seen: Vec<(&str, &str)> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    let update_path = format!(
        "/api/v4/projects/group%2Fapp/merge_requests/7/notes/{}",
        note.id
    );
    assert_eq!(
        seen,
        [
            (
                "POST",
                "/api/v4/projects/group%2Fapp/merge_requests/7/notes"
            ),
            ("PUT", update_path.as_str())
        ]
    );
    for request in &requests {
        assert_eq!(request.headers["private-token"], TOKEN);
        assert!(
            !request.headers.contains_key("authorization"),
            "one auth header"
        );
        let body: serde_json::Value = serde_json::from_str(&request.body).unwrap();
        assert_eq!(
            body.as_object().unwrap().len(),
            1,
            "only the body field: {body}"
        );
    }
    assert_token_only_in_headers(&fake);
}

#[tokio::test]
async fn creates_and_updates_a_note_on_an_issue() {
    let fake = FakeGitlab::start().await;
    let gitlab = client(&fake, TOKEN);
    let note = gitlab
        .create_note("42", NoteTarget::Issue(3), "on it")
        .await
        .unwrap();
    gitlab
        .update_note("42", NoteTarget::Issue(3), note.id, "done")
        .await
        .unwrap();
    assert_eq!(
        fake.note("42", "issues", 3, note.id).as_deref(),
        Some("done")
    );
    assert_eq!(
        fake.requests()[0].path,
        "/api/v4/projects/42/issues/3/notes"
    );
}

#[tokio::test]
async fn retries_on_5xx_and_429() {
    let fake = FakeGitlab::start().await;
    fake.fail(&[502, 429, 503]);
    let note = client(&fake, TOKEN)
        .create_note("42", NoteTarget::MergeRequest(1), "hi")
        .await
        .unwrap();
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [502, 429, 503, 201],
        "201 Created, as GitLab answers"
    );
    assert_eq!(
        fake.note("42", "merge_requests", 1, note.id).as_deref(),
        Some("hi")
    );
}

#[tokio::test]
async fn a_server_that_keeps_failing_is_given_up_with_its_status() {
    let fake = FakeGitlab::start().await;
    fake.fail(&[500; 10]);
    let e = client(&fake, TOKEN)
        .create_note("42", NoteTarget::MergeRequest(1), "hi")
        .await
        .unwrap_err();
    assert!(matches!(e, GitlabError::Api { status: 500, .. }), "{e}");
    assert_eq!(fake.requests().len(), 5, "five attempts");
}

#[tokio::test]
async fn a_401_is_a_clear_error_and_not_retried() {
    let fake = FakeGitlab::start().await;
    let e = client(&fake, "glpat-wrong")
        .create_note("42", NoteTarget::MergeRequest(1), "hi")
        .await
        .unwrap_err();
    assert!(
        matches!(e, GitlabError::Unauthorized { status: 401, .. }),
        "{e}"
    );
    let text = e.to_string();
    assert!(
        text.contains("HTTP 401") && text.contains("api scope"),
        "{text}"
    );
    assert!(!text.contains("glpat-wrong"), "{text}");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn updating_a_note_that_is_not_there_is_a_clear_error() {
    let fake = FakeGitlab::start().await;
    let e = client(&fake, TOKEN)
        .update_note("42", NoteTarget::Issue(3), 99, "x")
        .await
        .unwrap_err();
    assert!(matches!(e, GitlabError::NotFound { .. }), "{e}");
    assert!(
        e.to_string().contains("updating note 99 on issue #3"),
        "{e}"
    );
}

#[tokio::test]
async fn only_a_job_token_means_no_token_and_no_request() {
    let fake = FakeGitlab::start().await;
    let vars: HashMap<&str, &str> = [
        ("CI_JOB_TOKEN", "job-token"),
        ("SANDCRAB_GITLAB_TOKEN", "job-token"),
    ]
    .into();
    let token = gitlab_token(|name| vars.get(name).map(|v| v.to_string()));
    let e = GitlabClient::new(&fake.api_url, token.as_deref())
        .err()
        .expect("refused");
    assert!(matches!(e, GitlabError::MissingToken));
    let text = e.to_string();
    assert!(
        text.contains("CI_JOB_TOKEN cannot post notes") && text.contains("SANDCRAB_GITLAB_TOKEN"),
        "{text}"
    );
    assert!(fake.requests().is_empty());
}
