//! The fan-out recipe's job: a `workflow_dispatch` run with `issue-number` resolves that issue
//! (one matrix job per issue), judged by the strict fake GitHub: the issue is read through the
//! API, its text reaches the model as untrusted data, the progress comment lands on it, the
//! branch is pushed and the pull request closes it. A pull request's number is refused.

mod common;

use common::action_env::{action_run, default_branch_checkout, one_commit_bare, write_event};
use common::strict_github::{StrictGithub, TOKEN};
use common::{run, Run};

struct Job {
    gh: StrictGithub,
    checkout: tempfile::TempDir,
    tmp: tempfile::TempDir,
}

impl Job {
    fn start() -> Option<Job> {
        let bare = one_commit_bare();
        // The fixture's sender (who dispatched the workflow) has write access.
        let gh = StrictGithub::start(bare.path(), &["Codertocat=write"])?;
        let checkout = default_branch_checkout(&gh, TOKEN, false);
        Some(Job {
            gh,
            checkout,
            tmp: tempfile::tempdir().unwrap(),
        })
    }

    fn dispatch(&self, issue_number: &str, script: &str) -> Run {
        write_event(&self.gh, self.tmp.path(), "workflow_dispatch", |_| {});
        let mut cmd = action_run(
            &self.gh,
            self.checkout.path(),
            self.tmp.path(),
            "workflow_dispatch",
            script,
        );
        cmd.env("INPUT_GITHUB-TOKEN", TOKEN)
            .env("INPUT_ISSUE-NUMBER", issue_number);
        run(&mut cmd)
    }
}

const ADD_NOTES: &str = "- tool: file_editor\n  args: {command: create, path: \"${WORKSPACE}/NOTES.md\", file_text: \"notes\\n\"}\n- tool: finish\n  args: {message: \"Added NOTES.md.\"}\n";

#[test]
fn a_dispatch_with_issue_number_resolves_that_issue() {
    let Some(job) = Job::start() else {
        return;
    };
    let r = job.dispatch("1", ADD_NOTES);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("workflow_dispatch for issue #1"),
        "{}",
        r.stderr
    );
    let calls = job.gh.api_calls();
    let path = |suffix: &str| format!("/repos/Codertocat/Hello-World{suffix}");
    assert!(calls
        .iter()
        .any(|(m, p, _)| m == "GET" && *p == path("/issues/1")));
    assert!(calls
        .iter()
        .any(|(m, p, _)| m == "POST" && *p == path("/issues/1/comments")));
    let (_, _, pr) = calls
        .iter()
        .find(|(m, p, _)| m == "POST" && *p == path("/pulls"))
        .expect("a pull request");
    assert!(pr.contains("Fixes #1"), "{pr}");
    let pushes = job.gh.pushes();
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    // The issue's text (the fixture's title) reached the model inside the untrusted block.
    let prompt =
        std::fs::read_to_string(job.checkout.path().join("sandcrab-out/trajectory.jsonl")).unwrap();
    let title = "Spelling error in the README file";
    let block = prompt
        .split("BEGIN UNTRUSTED GITHUB DATA")
        .nth(1)
        .expect("the untrusted block");
    assert!(block.contains(title), "{prompt}");
}

#[test]
fn issue_number_of_a_pull_request_is_refused_in_one_line() {
    let Some(job) = Job::start() else {
        return;
    };
    let r = job.dispatch("2", ADD_NOTES);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("issue-number 2 is a pull request"),
        "{}",
        r.stderr
    );
    assert!(job.gh.pushes().is_empty());
    let bad = job.dispatch("two", ADD_NOTES);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("issue-number is 'two'"),
        "{}",
        bad.stderr
    );
}
