//! Review on GitLab: a merge request pipeline (the default mode there) turns the agent's
//! findings into diff threads with GitLab's position object, checked by the fake against the
//! merge request's real diff; findings off the diff, and positions GitLab refuses, land in
//! the note.

use serde_json::Value;

use crate::job::*;

/// The findings: an added line (3), an unchanged line inside the hunk (5: old line 4; its
/// body quotes the job token, which must be redacted), a line outside the diff (15).
const FINDINGS: &str = r#"- tool: finish
  args:
    message: |
      {"summary": "The usage line is good; `sub` still adds.", "comments": [
        {"path": "calc.sh", "line": 3, "body": "Say `sub` too."},
        {"path": "calc.sh", "line": 5, "body": "Quote $2. glcbt-fake-job-token-5555"},
        {"path": "calc.sh", "line": 15, "body": "Off the diff."}]}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_become_diff_threads_with_positions_gitlab_accepts() {
    let job = Job::new(Pipeline::MergeRequest { fork: false }).await;
    let model = job.model_with(FINDINGS);
    let before = job.gitlab.bare().for_each_ref();
    let r = job.run_with(&model, &[]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("running in review mode (merge_request_event)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("checked out merge request !7 at"),
        "{}",
        r.stderr
    );

    let bare = job.gitlab.bare();
    let head = bare.rev("refs/merge-requests/7/head").unwrap();
    let start = bare.rev("refs/heads/main").unwrap();
    let threads = job.gitlab.discussions();
    assert_eq!(threads.len(), 2, "{threads:?}");
    let (iid, body, position) = &threads[0];
    assert_eq!((*iid, body.as_str()), (7, "Say `sub` too."));
    assert_eq!(position["head_sha"], head.as_str());
    assert_eq!(position["start_sha"], start.as_str());
    assert_eq!(position["base_sha"], job.fork_point.as_str());
    assert_ne!(
        job.fork_point, start,
        "main moved on since the branch forked"
    );
    assert_eq!(position["new_line"], 3);
    assert!(position.get("old_line").is_none(), "{position}");
    assert_eq!(
        threads[1].2["old_line"], 4,
        "an unchanged line names both sides"
    );
    assert_eq!(threads[1].2["new_line"], 5);
    assert!(threads[1].1.starts_with("Quote $2. "), "{threads:?}");
    assert!(
        !threads[1].1.contains(crate::fake::JOB_TOKEN),
        "redacted: {threads:?}"
    );

    let note_url = job.env_value("SANDCRAB_NOTE_URL");
    let id: u64 = note_url.rsplit("#note_").next().unwrap().parse().unwrap();
    let note = job.gitlab.note("42", "merge_requests", 7, id).unwrap();
    assert!(note.contains("The usage line is good"), "{note}");
    assert!(
        !note.contains(r#""comments""#),
        "the raw JSON is not shown: {note}"
    );
    assert!(note.contains("`calc.sh` line 15: Off the diff."), "{note}");
    assert!(note.contains("Started 2 thread(s)"), "{note}");
    assert_eq!(
        job.gitlab.bare().for_each_ref(),
        before,
        "a review pushes nothing"
    );
    assert!(job.observations().contains(SANDBOX_CHECK));
    assert_no_secret_anywhere(&job, &r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_position_falls_back_to_the_note() {
    let job = Job::new(Pipeline::MergeRequest { fork: false }).await;
    job.gitlab.refuse_positions();
    let model = job.model_with(FINDINGS);
    let r = job.run_with(&model, &[]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(job.gitlab.discussions().is_empty());
    let refused: Vec<_> = job
        .api_requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/discussions"))
        .collect();
    assert_eq!(refused.len(), 2);
    assert!(refused.iter().all(|r| r.status == 400));
    let body: Value = serde_json::from_str(&refused[0].body).unwrap();
    assert_eq!(body["position"]["position_type"], "text");
    let note_url = job.env_value("SANDCRAB_NOTE_URL");
    let id: u64 = note_url.rsplit("#note_").next().unwrap().parse().unwrap();
    let note = job.gitlab.note("42", "merge_requests", 7, id).unwrap();
    for line in [
        "`calc.sh` line 3: Say `sub` too.",
        "`calc.sh` line 5: Quote $2.",
        "`calc.sh` line 15: Off the diff.",
    ] {
        assert!(note.contains(line), "{line}: {note}");
    }
    assert!(
        note.contains("GitLab refused 2 thread position(s)"),
        "{note}"
    );
    assert_no_secret_anywhere(&job, &r);
}
