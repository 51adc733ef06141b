//! Resolve on GitLab: an issue pipeline pushes a branch and opens a merge request that closes
//! the issue; a merge request pipeline in resolve mode pushes to the source branch (a
//! fast-forward); a merge request from a fork gets no push.

use serde_json::Value;

use crate::common::*;
use crate::fake::TOKEN;
use crate::job::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issue_pipeline_pushes_a_branch_and_opens_a_merge_request_that_closes_it() {
    let job = Job::new(Pipeline::Branch("trigger")).await;
    let r = job.run(&[("SANDCRAB_ISSUE_IID", "5")]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("running in resolve mode (trigger)"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("sandcrab: GitLab CI: progress in a note on issue #5 of group/app"),
        "{}",
        r.stderr
    );

    // The branch: one commit on main's tip with the fix, by sandcrab, nothing else.
    let bare = job.gitlab.bare();
    let branches = bare
        .git(&[
            "for-each-ref",
            "--format=%(refname)",
            "refs/heads/sandcrab/",
        ])
        .unwrap();
    let branch = branches
        .trim()
        .strip_prefix("refs/heads/")
        .unwrap()
        .to_string();
    assert!(branch.starts_with("sandcrab/5-"), "{branch}");
    let parent = bare.rev(&format!("{branch}~1")).unwrap();
    assert_eq!(parent, job.main, "the commit sits on the pipeline's commit");
    let changed = bare
        .git(&["diff", "--name-only", &job.main, &branch])
        .unwrap();
    assert_eq!(changed, "calc.sh");
    let calc = bare.git(&["show", &format!("{branch}:calc.sh")]).unwrap();
    assert!(calc.contains("sub) echo $((a - b))"), "{calc}");
    let author = bare
        .git(&["log", "-1", "--format=%an <%ae>", &branch])
        .unwrap();
    assert!(
        author.starts_with("sandcrab <sandcrab@noreply.127.0.0.1>"),
        "{author}"
    );

    // The merge request: the documented fields, a draft that closes the issue.
    let requests = job.api_requests();
    let created: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/api/v4/projects/42/merge_requests")
        .collect();
    assert_eq!(created.len(), 1, "{requests:?}");
    assert_eq!(created[0].status, 201, "{:?}", created[0]);
    let body: Value = serde_json::from_str(&created[0].body).unwrap();
    assert_eq!(body["source_branch"], branch.as_str());
    assert_eq!(body["target_branch"], "main");
    assert_eq!(
        body["title"],
        "Draft: Resolve #5: sub adds instead of subtracting"
    );
    let description = body["description"].as_str().unwrap();
    assert!(description.starts_with("Closes #5\n\n"), "{description}");
    assert!(
        description.contains("Fixed `sub` in calc.sh"),
        "{description}"
    );
    let get_issue = requests
        .iter()
        .find(|r| r.method == "GET" && r.path == "/api/v4/projects/42/issues/5");
    assert!(get_issue.is_some(), "the issue was read: {requests:?}");
    let mrs = job.gitlab.merge_requests();
    let opened = mrs.iter().find(|m| m.source_branch == branch).unwrap();

    // The note on the issue, the env file, the agent's view.
    let events = trajectory(&job.out());
    let task = kinds(&events, "MessageEvent")[0]["llm_message"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        task.contains(r#""title": "sub adds instead of subtracting""#),
        "{task}"
    );
    let server = &job.gitlab.server_url;
    let mr_url = format!("{server}/group/app/-/merge_requests/{}", opened.iid);
    assert_eq!(job.env_value("SANDCRAB_BRANCH"), branch);
    assert_eq!(job.env_value("SANDCRAB_MR_URL"), mr_url);
    assert_eq!(job.env_value("SANDCRAB_CONCLUSION"), "success");
    let note_url = job.env_value("SANDCRAB_NOTE_URL");
    let id: u64 = note_url.rsplit("#note_").next().unwrap().parse().unwrap();
    let note = job.gitlab.note("42", "issues", 5, id).unwrap();
    assert!(
        note.contains(&format!("[Merge request]({mr_url})")),
        "{note}"
    );
    assert!(
        note.contains(&format!("/group/app/-/tree/{branch}")),
        "{note}"
    );
    assert!(
        job.observations().contains(SANDBOX_CHECK),
        "no token in the agent's shell or .git/config"
    );

    // Git went over HTTP with the access token (user oauth2), never the job token.
    let git: Vec<_> = job
        .gitlab
        .requests()
        .into_iter()
        .filter(|r| !r.path.starts_with("/api/"))
        .collect();
    assert!(
        git.iter()
            .any(|r| r.path.ends_with("/git-receive-pack") && r.status == 200),
        "{git:?}"
    );
    use base64::Engine;
    let oauth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("oauth2:{TOKEN}"))
    );
    assert!(
        git.iter()
            .all(|r| r.headers.get("authorization").map(|a| a.to_lowercase())
                == Some(oauth.to_lowercase())),
        "{git:?}"
    );
    assert_no_secret_anywhere(&job, &r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolve_in_a_merge_request_pipeline_fast_forwards_its_branch() {
    let job = Job::new(Pipeline::MergeRequest { fork: false }).await;
    let before = job.gitlab.bare().rev("refs/heads/fix-sub").unwrap();
    let r = job.run(&[("SANDCRAB_MODE", "resolve")]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let bare = job.gitlab.bare();
    let after = bare.rev("refs/heads/fix-sub").unwrap();
    assert_ne!(after, before);
    assert_eq!(
        bare.rev("refs/heads/fix-sub~1").unwrap(),
        before,
        "a fast-forward"
    );
    let calc = bare.git(&["show", "fix-sub:calc.sh"]).unwrap();
    assert!(
        calc.contains("sub) echo $((a - b))") && calc.contains("# Usage"),
        "{calc}"
    );
    let requests = job.api_requests();
    assert!(
        !requests
            .iter()
            .any(|r| r.path.ends_with("/merge_requests") && r.method == "POST"),
        "no new merge request: {requests:?}"
    );
    assert_eq!(job.env_value("SANDCRAB_BRANCH"), "fix-sub");
    assert_no_secret_anywhere(&job, &r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_request_from_a_fork_gets_no_push() {
    let job = Job::new(Pipeline::MergeRequest { fork: true }).await;
    let before = job.gitlab.bare().for_each_ref();
    let r = job.run(&[("SANDCRAB_MODE", "resolve")]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(job.gitlab.bare().for_each_ref(), before, "no ref moved");
    assert!(job
        .gitlab
        .requests()
        .iter()
        .all(|r| !r.path.ends_with("/git-receive-pack")));
    let note_url = job.env_value("SANDCRAB_NOTE_URL");
    let id: u64 = note_url.rsplit("#note_").next().unwrap().parse().unwrap();
    let note = job.gitlab.note("42", "merge_requests", 7, id).unwrap();
    assert!(
        note.contains("comes from a fork, so sandcrab does not push to `fix-sub`"),
        "{note}"
    );
    assert_eq!(job.env_value("SANDCRAB_BRANCH"), "");
    assert_no_secret_anywhere(&job, &r);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_push_fails_the_job_in_one_line() {
    // A token that reads the API but is not the one git takes for a push (the fake's git
    // accepts only the access token): the push is refused, the job fails and says why.
    let job = Job::new(Pipeline::Branch("web")).await;
    job.gitlab
        .bare()
        .git(&["config", "http.receivepack", "false"]);
    let r = job.run(&[("SANDCRAB_ISSUE_IID", "5")]).await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    let said: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("cannot push the branch"))
        .collect();
    assert_eq!(said.len(), 1, "said once: {}", r.stderr);
    assert!(said[0].contains("write_repository"), "{}", said[0]);
    assert_eq!(job.env_value("SANDCRAB_CONCLUSION"), "failure");
    assert!(
        job.gitlab.merge_requests().iter().all(|m| m.iid == 7),
        "no merge request opened"
    );
    assert_no_secret_anywhere(&job, &r);
}
