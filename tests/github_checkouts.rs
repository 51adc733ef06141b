//! The GitHub flow on the checkouts actions/checkout@v4 really leaves (`common::checkout`),
//! judged by the strict fake GitHub (`common::strict_github`): every REST request on-schema,
//! git over smart HTTP behind the token. The real binary, the local workspace, the scripted
//! model, and sandcrab's outputs at their default place inside the checkout.
//!
//! The served repository: `master` (several commits, one made after the PR branched), PR #2's
//! branch `changes` (adds `pr-only.txt`), `refs/pull/2/head` and the merge commit
//! `refs/pull/2/merge`, as GitHub keeps them.

mod common;

use std::path::Path;

use common::checkout::{actions_checkout, Options, Ref};
use common::strict_github::{StrictGithub, DEFAULT_BRANCH, LLM_KEY, REPO, TOKEN};
use common::{git, run, sandcrab, Run};
use serde_json::Value;

const PR_FILE: &str = "pr-only.txt";
const PR_TEXT: &str = "written on the pull request's branch\n";

/// The bare repository GitHub would hold; returns it with the merge base of PR #2.
fn served_repo() -> (tempfile::TempDir, String) {
    let work = common::git_repo(&[("README.md", "hello\n"), ("a.txt", "one\n")]);
    let w = work.path();
    git(w, &["branch", "-m", DEFAULT_BRANCH]);
    for i in 0..3 {
        std::fs::write(w.join("a.txt"), format!("one {i}\n")).unwrap();
        git(w, &["commit", "-q", "-am", &format!("master {i}")]);
    }
    let merge_base = git(w, &["rev-parse", "HEAD"]).trim().to_string();
    git(w, &["checkout", "-q", "-b", "changes"]);
    std::fs::write(w.join(PR_FILE), PR_TEXT).unwrap();
    git(w, &["add", PR_FILE]);
    git(w, &["commit", "-q", "-m", "add the PR's file"]);
    git(w, &["checkout", "-q", DEFAULT_BRANCH]);
    std::fs::write(w.join("README.md"), "hello again\n").unwrap();
    git(w, &["commit", "-q", "-am", "master moves on"]);
    git(w, &["checkout", "-q", "--detach"]);
    git(w, &["merge", "-q", "--no-ff", "-m", "merge", "changes"]);
    let merge = git(w, &["rev-parse", "HEAD"]).trim().to_string();
    let bare = tempfile::tempdir().unwrap();
    git(
        bare.path(),
        &["clone", "-q", "--bare", w.to_str().unwrap(), "."],
    );
    git(bare.path(), &["update-ref", "refs/pull/2/merge", &merge]);
    git(bare.path(), &["update-ref", "refs/pull/2/head", "changes"]);
    git(bare.path(), &["symbolic-ref", "HEAD", "refs/heads/master"]);
    (bare, merge_base)
}

struct Job {
    gh: StrictGithub,
    checkout: tempfile::TempDir,
    tmp: tempfile::TempDir,
    merge_base: String,
}

impl Job {
    fn start(what: Ref<'_>, depth: u32, persist_credentials: bool) -> Option<Job> {
        let (bare, merge_base) = served_repo();
        let gh = StrictGithub::start(bare.path(), &["Codertocat=write"])?;
        let checkout = tempfile::tempdir().unwrap();
        let opts = Options {
            what,
            depth,
            persist_credentials,
        };
        actions_checkout(
            checkout.path(),
            &gh.server_url(),
            &gh.clone_url(),
            TOKEN,
            opts,
        );
        Some(Job {
            gh,
            checkout,
            tmp: tempfile::tempdir().unwrap(),
            merge_base,
        })
    }

    fn event(&self, file: &str, edit: impl FnOnce(&mut Value)) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/fixtures/github-events/{file}.payload.json"));
        let text = std::fs::read_to_string(path).unwrap();
        let text = text
            .replace("https://api.github.com", &self.gh.api_url())
            .replace("https://github.com", &self.gh.server_url());
        let mut v: Value = serde_json::from_str(&text).unwrap();
        edit(&mut v);
        std::fs::write(self.tmp.path().join("event.json"), v.to_string()).unwrap();
    }

    /// `sandcrab run` as the container action runs it, outputs at the default `sandcrab-out`.
    fn run(&self, event_name: &str, script: &str) -> Run {
        self.run_with(event_name, script, &[])
    }

    fn run_with(&self, event_name: &str, script: &str, extra: &[(&str, &str)]) -> Run {
        let script_path = self.tmp.path().join("script.yaml");
        std::fs::write(&script_path, script).unwrap();
        let mut cmd = sandcrab();
        for (k, _) in std::env::vars() {
            let ci = ["GITHUB_", "INPUT_", "ACTIONS_", "SANDCRAB_", "RUNNER_"];
            if ci.iter().any(|p| k.starts_with(p)) {
                cmd.env_remove(k);
            }
        }
        cmd.arg("run")
            .current_dir(self.checkout.path())
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_EVENT_NAME", event_name)
            .env("GITHUB_EVENT_PATH", self.tmp.path().join("event.json"))
            .env("GITHUB_REPOSITORY", REPO)
            .env("GITHUB_API_URL", self.gh.api_url())
            .env("GITHUB_SERVER_URL", self.gh.server_url())
            .env("GITHUB_RUN_ID", "4242")
            .env("GITHUB_OUTPUT", self.tmp.path().join("output"))
            .env("GITHUB_STEP_SUMMARY", self.tmp.path().join("summary"))
            .env("GITHUB_WORKSPACE", self.checkout.path())
            .env("INPUT_GITHUB-TOKEN", TOKEN)
            .env("INPUT_LLM-API-KEY", LLM_KEY)
            .env("INPUT_WORKSPACE", "local")
            .env("INPUT_MODEL", format!("scripted:{}", script_path.display()));
        cmd.envs(extra.iter().copied());
        run(&mut cmd)
    }

    /// Files the commit `sha` of the served repository changed against `parent`.
    fn changed(&self, parent: &str, sha: &str) -> Vec<String> {
        self.gh
            .git(&["diff", "--name-only", parent, sha])
            .lines()
            .map(String::from)
            .collect()
    }

    fn comment_bodies(&self) -> Vec<String> {
        self.gh
            .requests()
            .into_iter()
            .filter(|r| {
                r["kind"] == "api" && r["path"].as_str().unwrap_or("").contains("/comments")
            })
            .filter_map(|r| r["body"]["body"].as_str().map(String::from))
            .collect()
    }
}

/// The agent reads the PR's file and edits it, then finishes.
fn edit_pr_file() -> String {
    format!(
        "- tool: terminal\n  args: {{command: \"cat {PR_FILE}\"}}\n\
         - tool: file_editor\n  args:\n    command: str_replace\n    path: \"${{WORKSPACE}}/{PR_FILE}\"\n    old_str: \"written\"\n    new_str: \"fixed\"\n\
         - tool: finish\n  args: {{message: \"Fixed the PR's file.\"}}\n"
    )
}

fn on_pr_2(v: &mut Value) {
    v["issue"]["number"] = 2.into();
    v["issue"]["pull_request"] = serde_json::json!({"url": "x"});
    v["comment"]["body"] = "@sandcrab please fix the PR's file".into();
}

fn assert_outputs_stay_outside_the_work(job: &Job) {
    let out = job.checkout.path().join("sandcrab-out");
    assert!(
        out.join("result.json").is_file(),
        "a later step reads the outputs"
    );
    assert!(
        out.join("conversations").is_dir(),
        "the conversation is persisted under the outputs"
    );
}

#[test]
fn a_comment_on_a_same_repository_pr_fast_forwards_its_branch_with_only_the_change() {
    let Some(job) = Job::start(Ref::Default(DEFAULT_BRANCH), 1, true) else {
        return;
    };
    job.event("issue_comment.created", on_pr_2);
    let tip = job.gh.git(&["rev-parse", "changes"]).trim().to_string();
    let r = job.run("issue_comment", &edit_pr_file());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let pushes = job.gh.pushes();
    assert_eq!(pushes.len(), 1, "{pushes:?}\n{}", r.stderr);
    let push = &pushes[0];
    assert_eq!(push["ref"], "refs/heads/changes");
    assert_eq!(push["before"], tip.as_str());
    assert_eq!(push["fast_forward"], true);
    let after = push["after"].as_str().unwrap();
    assert_eq!(job.changed(&tip, after), vec![PR_FILE.to_string()]);
    assert_eq!(
        job.gh.git(&["show", &format!("{after}:{PR_FILE}")]),
        "fixed on the pull request's branch\n"
    );
    assert_outputs_stay_outside_the_work(&job);
    assert!(job
        .comment_bodies()
        .last()
        .unwrap()
        .contains("Pushed the changes to `changes`."));
    for line in r.stdout.lines().chain(r.stderr.lines()) {
        for secret in [LLM_KEY, TOKEN] {
            let masked = line.starts_with("::add-mask::");
            assert!(masked || !line.contains(secret), "secret in {line}");
        }
    }
}

#[test]
fn resolving_an_issue_pushes_a_branch_with_exactly_the_agents_change() {
    let Some(job) = Job::start(Ref::Default(DEFAULT_BRANCH), 1, false) else {
        return;
    };
    job.event("issue_comment.created", |v| {
        v["comment"]["body"] = "@sandcrab please fix a.txt".into();
    });
    let script = "- tool: file_editor\n  args:\n    command: str_replace\n    path: \"${WORKSPACE}/a.txt\"\n    old_str: \"one\"\n    new_str: \"two\"\n\
                  - tool: finish\n  args: {message: \"Fixed a.txt.\"}\n";
    let base = job
        .gh
        .git(&["rev-parse", DEFAULT_BRANCH])
        .trim()
        .to_string();
    let r = job.run("issue_comment", script);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let pushes = job.gh.pushes();
    assert_eq!(pushes.len(), 1, "{pushes:?}");
    let branch = pushes[0]["ref"]
        .as_str()
        .unwrap()
        .trim_start_matches("refs/heads/");
    assert!(branch.starts_with("sandcrab/1-"), "{branch}");
    let after = pushes[0]["after"].as_str().unwrap();
    assert_eq!(job.changed(&base, after), vec!["a.txt".to_string()]);
    let created: Vec<_> = job
        .gh
        .requests()
        .into_iter()
        .filter(|r| {
            r["kind"] == "api"
                && r["method"] == "POST"
                && r["path"].as_str().unwrap_or("").ends_with("/pulls")
        })
        .collect();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0]["body"]["head"], branch);
    assert_eq!(created[0]["body"]["base"], DEFAULT_BRANCH);
    assert!(created[0]["body"]["body"]
        .as_str()
        .unwrap()
        .contains("Fixes #1"));
    assert_outputs_stay_outside_the_work(&job);
}

fn review_at_depth(depth: u32) {
    let Some(job) = Job::start(Ref::Merge(2), depth, true) else {
        return;
    };
    let head = job.gh.git(&["rev-parse", "changes"]).trim().to_string();
    let base = job
        .gh
        .git(&["rev-parse", DEFAULT_BRANCH])
        .trim()
        .to_string();
    job.event("pull_request.opened", |v| {
        v["pull_request"]["head"]["sha"] = head.into();
        v["pull_request"]["base"]["sha"] = base.into();
    });
    let findings = serde_json::json!({"summary": "One note.", "comments": [
        {"path": PR_FILE, "line": 1, "body": "Say what it is for."},
        {"path": "README.md", "line": 1, "body": "Not in this PR's diff."}]});
    let script = format!(
        "- tool: terminal\n  args: {{command: \"git diff --stat {mb} HEAD\"}}\n\
         - tool: finish\n  args:\n    message: {msg}\n",
        mb = job.merge_base,
        msg = serde_json::to_string(&findings.to_string()).unwrap()
    );
    let r = job.run("pull_request", &script);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(job.gh.pushes().is_empty(), "a review pushes nothing");
    let trajectory =
        std::fs::read_to_string(job.checkout.path().join("sandcrab-out/trajectory.jsonl")).unwrap();
    let prompt = trajectory
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["kind"] == "MessageEvent" && e["source"] == "user")
        .expect("the prompt")
        .to_string();
    assert!(
        prompt.contains(&job.merge_base),
        "the prompt names the merge base: {prompt}"
    );
    assert!(
        trajectory.contains(&format!("{PR_FILE} | 1 +")),
        "the agent sees the PR's diff in the workspace:\n{trajectory}"
    );
    let reviews: Vec<_> = job
        .gh
        .requests()
        .into_iter()
        .filter(|r| r["kind"] == "api" && r["path"].as_str().unwrap_or("").ends_with("/reviews"))
        .collect();
    assert_eq!(reviews.len(), 1, "{reviews:?}\n{}", r.stderr);
    assert_eq!(reviews[0]["status"], 200);
    let posted = &reviews[0]["body"];
    assert_eq!(
        posted["comments"],
        serde_json::json!([{"path": PR_FILE, "line": 1, "body": "Say what it is for."}]),
        "only lines of the PR's diff get inline comments"
    );
    assert!(
        posted["body"].as_str().unwrap().contains("README.md"),
        "the other comment is in the body: {posted}"
    );
}

#[test]
fn a_review_at_depth_1_sees_the_prs_diff() {
    review_at_depth(1);
}

#[test]
fn a_review_with_full_history_sees_the_prs_diff() {
    review_at_depth(0);
}

#[test]
fn a_fork_pr_is_worked_on_at_its_head_and_never_pushed() {
    let Some(job) = Job::start(Ref::Merge(2), 1, false) else {
        return;
    };
    let head = job.gh.git(&["rev-parse", "changes"]).trim().to_string();
    job.event("pull_request.opened", |v| {
        v["pull_request"]["head"]["sha"] = head.clone().into();
        v["pull_request"]["head"]["repo"]["full_name"] = "someone/Hello-World".into();
    });
    let r = job.run_with(
        "pull_request",
        &format!(
            "- tool: terminal\n  args: {{command: \"cat README.md\"}}\n{}",
            edit_pr_file()
        ),
        &[("INPUT_MODE", "resolve")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(job.gh.pushes().is_empty(), "nothing is pushed to a fork");
    let patch =
        std::fs::read_to_string(job.checkout.path().join("sandcrab-out/changes.patch")).unwrap();
    assert!(
        patch.contains("+fixed on the pull request's branch"),
        "the agent worked on the PR's head: {patch}"
    );
    // The merge commit actions/checkout left has master's newer README; the head has not.
    let trajectory =
        std::fs::read_to_string(job.checkout.path().join("sandcrab-out/trajectory.jsonl")).unwrap();
    assert!(
        trajectory.contains("hello\\n") && !trajectory.contains("hello again"),
        "the agent saw the head's README, not the merge commit's"
    );
    let last = job.comment_bodies().pop().unwrap();
    assert!(last.contains("comes from a fork"), "{last}");
}
