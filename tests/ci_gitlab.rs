//! The GitLab client against the strict fake GitLab on loopback (tests/fakes/gitlab.rs) that
//! checks the `PRIVATE-TOKEN` header, judges every body against its endpoint table and records
//! every request: notes on merge requests and issues, project paths as one encoded segment,
//! retries on 5xx and 429, clear errors for 401, 404 and a missing token, the token in no
//! body; a merge request opened twice (a retried POST) is found, not doubled; and the fake
//! itself refuses what GitLab refuses.

#[path = "fakes/gitlab.rs"]
mod fake;

use std::collections::HashMap;
use std::time::Duration;

use fake::{FakeGitlab, TOKEN};
use sandcrab::ci::gitlab::api::NewMergeRequest;
use sandcrab::ci::gitlab::{GitlabClient, GitlabError, NoteTarget};
use sandcrab::config::gitlab::gitlab_token;
use sandcrab::http::retry::RetryPolicy;

const QUICK: RetryPolicy = RetryPolicy::new(5, Duration::from_millis(5), 2.0);

fn client(fake: &FakeGitlab, token: &str) -> GitlabClient {
    GitlabClient::new(&fake.api_url, Some(token))
        .unwrap()
        .with_policy(QUICK)
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
    let client = client(&fake, TOKEN);
    let target = NoteTarget::MergeRequest(1);
    let note = client.create_note("42", target, "hi").await.unwrap();
    fake.fail(&[502, 429, 503]);
    client
        .update_note("42", target, note.id, "edited")
        .await
        .unwrap();
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [201, 502, 429, 503, 200],
        "201 Created, as GitLab answers"
    );
    assert_eq!(
        fake.note("42", "merge_requests", 1, note.id).as_deref(),
        Some("edited")
    );
}

#[tokio::test]
async fn a_new_note_is_posted_again_after_a_429_but_never_after_a_5xx() {
    let fake = FakeGitlab::start().await;
    let client = client(&fake, TOKEN);
    fake.fail(&[429]);
    client
        .create_note("42", NoteTarget::MergeRequest(1), "hi")
        .await
        .unwrap();
    fake.fail(&[502]);
    let e = client
        .create_note("42", NoteTarget::MergeRequest(1), "again")
        .await
        .unwrap_err();
    assert!(matches!(e, GitlabError::Api { status: 502, .. }), "{e}");
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [429, 201, 502],
        "the POST that reached GitLab is not sent again"
    );
}

#[tokio::test]
async fn a_server_that_keeps_failing_is_given_up_with_its_status() {
    let fake = FakeGitlab::start().await;
    fake.fail(&[500; 10]);
    let e = client(&fake, TOKEN).issue("42", 3).await.unwrap_err();
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

/// A project on the fake with branches `main` and `feature`.
fn seed(fake: &FakeGitlab) {
    let work = tempfile::tempdir().unwrap();
    let git = |dir: &std::path::Path, args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t.invalid"])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    let w = work.path();
    git(w, &["init", "-q", "-b", "main"]);
    git(w, &["commit", "-q", "--allow-empty", "-m", "one"]);
    git(w, &["branch", "feature"]);
    let bare = fake.bare().0;
    std::fs::create_dir_all(bare.parent().unwrap()).unwrap();
    git(w, &["init", "-q", "--bare", bare.to_str().unwrap()]);
    git(
        w,
        &["push", "-q", bare.to_str().unwrap(), "main", "feature"],
    );
}

#[tokio::test]
async fn a_merge_request_opened_twice_is_found_not_doubled() {
    let fake = FakeGitlab::start().await;
    seed(&fake);
    let gitlab = client(&fake, TOKEN);
    let request = NewMergeRequest {
        source_branch: "feature".into(),
        target_branch: "main".into(),
        title: "Draft: Resolve #5: x".into(),
        description: "Closes #5".into(),
        remove_source_branch: true,
    };
    let first = gitlab.create_merge_request("42", &request).await.unwrap();
    let again = gitlab.create_merge_request("42", &request).await.unwrap();
    assert_eq!(first.iid, again.iid);
    assert_eq!(fake.merge_requests().len(), 1);
    let seen: Vec<(String, u16)> = fake
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.status))
        .collect();
    let expected = [("POST", 201), ("POST", 409), ("GET", 200)];
    assert_eq!(
        seen,
        expected.map(|(m, s)| (m.to_string(), s)).to_vec(),
        "the 409 is answered by a lookup"
    );
    let lookup = &fake.requests()[2];
    assert!(lookup.query.contains("source_branch=feature"), "{lookup:?}");
    let missing = NewMergeRequest {
        source_branch: "nope".into(),
        ..request
    };
    let e = gitlab
        .create_merge_request("42", &missing)
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400), "{e}");
    assert_token_only_in_headers(&fake);
}

#[tokio::test]
async fn the_fake_refuses_what_gitlab_refuses() {
    let fake = FakeGitlab::start().await;
    seed(&fake);
    let http = reqwest::Client::new();
    let post = |path: &str, token: &str, body: serde_json::Value| {
        http.post(format!("{}/{path}", fake.api_url))
            .header("PRIVATE-TOKEN", token)
            .json(&body)
            .send()
    };
    let answer = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        (status, r.json::<serde_json::Value>().await.unwrap())
    };
    let mr = serde_json::json!({"source_branch": "feature", "target_branch": "main", "title": "t"});
    let cases = [
        (
            "projects/42/merge_requests",
            "wrong",
            mr.clone(),
            401,
            serde_json::json!({"message": "401 Unauthorized"}),
        ),
        (
            "projects/43/merge_requests",
            TOKEN,
            mr.clone(),
            404,
            serde_json::json!({"message": "404 Project Not Found"}),
        ),
        (
            "projects/42/merge_requests",
            TOKEN,
            serde_json::json!({"source_branch": "feature", "target_branch": "main"}),
            400,
            serde_json::json!({"error": "title is missing"}),
        ),
        (
            "projects/42/merge_requests",
            TOKEN,
            serde_json::json!({"source_branch": "feature", "target_branch": "main", "title": "t", "remove_source_branch": "yes"}),
            400,
            serde_json::json!({"error": "remove_source_branch is invalid"}),
        ),
        (
            "projects/42/merge_requests",
            TOKEN,
            serde_json::json!({"source_branch": "feature", "target_branch": "main", "title": "t", "draft": true}),
            400,
            serde_json::json!({"error": "draft does not have a valid value"}),
        ),
        (
            "projects/42/merge_requests/7/notes",
            TOKEN,
            serde_json::json!({"body": 5}),
            400,
            serde_json::json!({"error": "body is invalid"}),
        ),
    ];
    for (path, token, body, status, shape) in cases {
        let got = answer(post(path, token, body.clone()).await.unwrap()).await;
        assert_eq!(got, (status, shape), "{path} {body}");
    }
}
