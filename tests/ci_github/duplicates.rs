//! A POST that GitHub carried out before failing (a 502 after the comment, pull request or
//! review was created) is not posted twice: the runner looks for what it made first.

use serde_json::json;

use crate::common::fake_github::Fault;
use crate::job::*;

/// A 502 (with `Retry-After: 0`) given once, after the fake created the object.
fn bad_gateway_after(job: &Job, path_suffix: &str) {
    job.gh.config.lock().unwrap().faults_after.push(Fault {
        method: "POST",
        path_suffix: path_suffix.into(),
        status: 502,
        headers: vec![("retry-after".into(), "0".into())],
        body: json!({"message": "Bad Gateway"}),
        times: 1,
    });
}

#[test]
fn a_comment_created_before_a_502_is_not_posted_again() {
    let job = Job::writer();
    bad_gateway_after(&job, "/issues/1/comments");
    job.event("issue_comment.created", with_phrase);
    let r = job.run(
        "issue_comment",
        &job.script(&answer("the answer")),
        &[("INPUT_MODE", "ask")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let created = job.gh.created.lock().unwrap().clone();
    assert_eq!(created.comments.len(), 1, "{:?}", created.comments);
    let id = created.comments[0].1["id"].as_u64().unwrap();
    let edits = job.gh.matching("PATCH", &format!("/issues/comments/{id}"));
    let last = edits.last().expect("the found comment is edited");
    assert!(last.body["body"].as_str().unwrap().contains("the answer"));
    assert!(job.outputs()["comment-url"].contains(&format!("issuecomment-{id}")));
}

#[test]
fn a_pull_request_created_before_a_502_is_not_opened_again() {
    let job = Job::writer();
    bad_gateway_after(&job, "/repos/Codertocat/Hello-World/pulls");
    job.event("issue_comment.created", with_phrase);
    let r = job.run("issue_comment", &job.script(&calc_fix()), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let pulls = job.gh.created.lock().unwrap().pulls.clone();
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    let lookups = job
        .gh
        .matching("GET", "/repos/Codertocat/Hello-World/pulls");
    assert_eq!(lookups.len(), 1, "looked for it by its head branch");
    let outputs = job.outputs();
    assert_eq!(outputs["pr-url"], pulls[0]["html_url"].as_str().unwrap());
    assert_eq!(outputs["conclusion"], "success");
}

#[test]
fn a_review_created_before_a_502_is_not_posted_again() {
    let job = Job::writer();
    bad_gateway_after(&job, "/pulls/2/reviews");
    job.event("pull_request.opened", |_| {});
    let findings = json!({"summary": "One note.", "comments": [
        {"path": "calc.sh", "line": 3, "body": "`sub` adds."}]});
    let r = job.run(
        "pull_request",
        &job.script(&answer(&findings.to_string())),
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let reviews = job.gh.created.lock().unwrap().reviews.clone();
    assert_eq!(reviews.len(), 1, "{reviews:?}");
    assert_eq!(job.gh.matching("GET", "/pulls/2/reviews").len(), 1);
    let body = reviews[0].1["body"].as_str().unwrap();
    assert!(
        body.starts_with("One note.") && body.contains("<!-- sandcrab:post "),
        "{body}"
    );
    assert!(job.comment_bodies().pop().unwrap().contains("[Review]("));
}
