//! What a run leaves: the progress and final comments, the pushed branch and the PR, commits
//! on a PR's branch, reviews, outputs and summary, API retries and errors.

use serde_json::{json, Value};

use crate::common::fake_github::Fault;
use crate::common::*;
use crate::job::*;

#[test]
fn a_writer_comment_on_an_issue_pushes_a_branch_and_opens_a_draft_pr() {
    let job = Job::writer();
    job.event("issue_comment.created", with_phrase);
    let script = format!(
        "- tool: terminal\n  args: {{command: \"env | sort\"}}\n{}",
        calc_fix()
    );
    let r = job.run("issue_comment", &job.script(&script), &[]);
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);

    // Masks come first, then the agent log inside a group with workflow commands stopped.
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert!(lines[0].starts_with("::add-mask::"), "{}", r.stderr);
    let stop = lines
        .iter()
        .find_map(|l| l.strip_prefix("::stop-commands::"))
        .expect("stop-commands");
    let group = lines
        .iter()
        .position(|l| l.starts_with("::group::"))
        .unwrap();
    let resume = lines
        .iter()
        .position(|l| *l == format!("::{stop}::"))
        .expect("commands resumed");
    let end = lines.iter().position(|l| *l == "::endgroup::").unwrap();
    assert!(group < resume && resume < end);

    // The permission was checked with the token, for the sender.
    let perm = job
        .gh
        .matching("GET", "/collaborators/Codertocat/permission");
    assert_eq!(perm.len(), 1);
    assert_eq!(
        auth_header(&perm[0]),
        Some(format!("Bearer {TOKEN}").as_str())
    );

    // One progress comment, edited in place, then the final report.
    let created = job.gh.matching("POST", "/issues/1/comments");
    assert_eq!(created.len(), 1, "one comment only");
    let first = created[0].body["body"].as_str().unwrap();
    assert!(first.contains("sandcrab is working (resolve)"), "{first}");
    assert!(
        first.contains("https://github.example/Codertocat/Hello-World/actions/runs/4242"),
        "{first}"
    );
    let edits: Vec<String> = job
        .gh
        .matching("PATCH", "/issues/comments/1001")
        .iter()
        .map(|r| r.body["body"].as_str().unwrap().to_string())
        .collect();
    assert!(
        edits.len() >= 2,
        "progress edits and the final one: {edits:?}"
    );
    assert!(
        edits
            .iter()
            .any(|b| b.contains("- [x] Reproduce the bug with the tests")),
        "task list as checkboxes: {edits:?}"
    );
    let last = edits.last().unwrap();
    assert!(
        last.contains("sandcrab: ✅ finished") && last.contains("calc.sh"),
        "{last}"
    );
    assert!(
        last.contains("[Pull request](https://github.example/Codertocat/Hello-World/pull/77)"),
        "{last}"
    );

    // The branch is on origin with the fix, on top of main.
    let outputs = job.outputs();
    let branch = &outputs["branch"];
    assert!(branch.starts_with("sandcrab/1-"), "{branch}");
    let fixed = job.origin_git(&["show", &format!("{branch}:calc.sh")]);
    assert!(fixed.contains("sub) echo $((a - b))"), "{fixed}");
    let parent = job.origin_git(&["rev-parse", &format!("{branch}^")]);
    assert_eq!(parent, job.origin_git(&["rev-parse", "main"]));

    // The pull request.
    let pulls = job
        .gh
        .matching("POST", "/repos/Codertocat/Hello-World/pulls");
    assert_eq!(pulls.len(), 1);
    let pr = &pulls[0].body;
    assert_eq!(pr["head"], branch.as_str());
    assert_eq!(pr["base"], "main");
    assert_eq!(pr["draft"], true);
    assert!(pr["body"].as_str().unwrap().starts_with("Fixes #1"), "{pr}");
    assert_eq!(pr["title"], "Fix #1: Spelling error in the README file");

    // Outputs and the step summary.
    assert_eq!(outputs["conclusion"], "success");
    assert_eq!(
        outputs["pr-url"],
        "https://github.example/Codertocat/Hello-World/pull/77"
    );
    assert!(
        outputs["comment-url"].contains("issuecomment-1001"),
        "{outputs:?}"
    );
    assert!(outputs["result-file"].ends_with("result.json"));
    assert!(outputs.contains_key("cost"));
    let summary = std::fs::read_to_string(job.path("summary")).unwrap();
    assert!(summary.contains("sandcrab: ✅ finished"));
    assert_no_secrets(&job, &r);
}

/// The PR the fake's `GET /pulls/1` answers: head `changes` in `head_repo`.
fn pr_json(head_sha: &str, head_repo: &str) -> Value {
    json!({"number": 1, "title": "Update calc", "body": "b",
           "head": {"ref": "changes", "sha": head_sha, "repo": {"full_name": head_repo}},
           "base": {"ref": "main", "sha": "0000000000000000000000000000000000000000", "repo": {"full_name": REPO}}})
}

/// A job whose origin has a `changes` branch one commit ahead of main; returns its tip.
fn job_with_pr_branch(head_repo: &str) -> (Job, String) {
    let job = Job::writer();
    let co = job.checkout.path();
    git(co, &["checkout", "-q", "-b", "changes", "origin/changes"]);
    std::fs::write(co.join("NOTES.md"), "notes\n").unwrap();
    git(co, &["add", "NOTES.md"]);
    git(co, &["commit", "-q", "-m", "notes"]);
    git(co, &["push", "-q", "origin", "changes"]);
    git(co, &["checkout", "-q", "main"]);
    let tip = job.origin_git(&["rev-parse", "changes"]).trim().to_string();
    // GitHub keeps every PR's head at refs/pull/N/head, forks' included.
    job.origin_git(&["update-ref", "refs/pull/1/head", &tip]);
    job.gh.config.lock().unwrap().pull_request = Some(pr_json(&tip, head_repo));
    job.event("issue_comment.created", |v| {
        with_phrase(v);
        v["issue"]["pull_request"] = json!({"url": "x"});
    });
    (job, tip)
}

#[test]
fn a_comment_on_a_pull_request_pushes_to_its_branch() {
    let (job, tip) = job_with_pr_branch(REPO);
    let r = job.run("issue_comment", &job.script(&calc_fix()), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(job.gh.matching("GET", "/pulls/1").len(), 1);
    assert_eq!(
        job.origin_git(&["rev-parse", "changes^"]).trim(),
        tip,
        "a fast-forward on the PR's head"
    );
    assert!(job
        .origin_git(&["show", "changes:calc.sh"])
        .contains("sub) echo $((a - b))"));
    assert_eq!(job.origin_git(&["show", "changes:NOTES.md"]), "notes\n");
    assert!(job.gh.matching("POST", "/pulls").is_empty(), "no new PR");
    let outputs = job.outputs();
    assert_eq!(outputs["branch"], "changes");
    assert!(job
        .comment_bodies()
        .pop()
        .unwrap()
        .contains("Pushed the changes to `changes`."));
    assert_no_secrets(&job, &r);
}

#[test]
fn a_fork_pull_request_is_not_pushed() {
    let (job, tip) = job_with_pr_branch("someone/fork");
    let r = job.run("issue_comment", &job.script(&calc_fix()), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(job.origin_git(&["rev-parse", "changes"]).trim(), tip);
    let last = job.comment_bodies().pop().unwrap();
    assert!(last.contains("comes from a fork"), "{last}");
    assert_eq!(job.outputs()["branch"], "");
}

#[test]
fn an_opened_pull_request_gets_a_review_with_inline_comments() {
    let job = Job::writer();
    job.event("pull_request.opened", |_| {});
    let findings = json!({"summary": "Two notes.", "comments": [
        {"path": "calc.sh", "line": 3, "body": "`sub` adds."},
        {"path": "../../etc/passwd", "line": 1, "body": "dropped"}]});
    let r = job.run(
        "pull_request",
        &job.script(&answer(&findings.to_string())),
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let reviews = job.gh.matching("POST", "/pulls/2/reviews");
    assert_eq!(reviews.len(), 1);
    let review = &reviews[0].body;
    assert_eq!(review["event"], "COMMENT");
    let body = review["body"].as_str().unwrap();
    assert!(
        body.starts_with("Two notes.\n<!-- sandcrab:post "),
        "the summary and a hidden marker to find it by: {body}"
    );
    assert_eq!(
        review["commit_id"],
        job.origin_git(&["rev-parse", "changes"]).trim(),
        "the head sandcrab checked out"
    );
    assert_eq!(
        review["comments"],
        json!([{"path": "calc.sh", "line": 3, "body": "`sub` adds."}])
    );
    assert!(job.gh.matching("POST", "/pulls").is_empty());
    let last = job.comment_bodies().pop().unwrap();
    assert!(last.contains("[Review](https://github.example/"), "{last}");
    assert!(
        last.contains("Two notes.") && !last.contains("\"comments\""),
        "the summary, not the JSON: {last}"
    );
}

#[test]
fn server_errors_are_retried_on_reads_but_a_new_comment_is_not_posted_again() {
    let job = Job::writer();
    let bad_gateway = |method, path_suffix: &str| Fault {
        method,
        path_suffix: path_suffix.into(),
        status: 502,
        headers: vec![("retry-after".into(), "0".into())],
        body: json!({"message": "Bad Gateway"}),
        times: 2,
    };
    let mut config = job.gh.config.lock().unwrap();
    config.faults.push(bad_gateway("GET", "/permission"));
    config.faults.push(Fault {
        times: 1,
        ..bad_gateway("POST", "/issues/1/comments")
    });
    drop(config);
    job.event("issue_comment.created", with_phrase);
    let r = job.run(
        "issue_comment",
        &job.script(&answer("ok")),
        &[("INPUT_MODE", "ask")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        job.gh.matching("GET", "/permission").len(),
        3,
        "two 502s, then read"
    );
    let posts = job.gh.matching("POST", "/issues/1/comments");
    let bodies: Vec<&str> = posts
        .iter()
        .map(|p| p.body["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert!(
        bodies[0].contains("is working") && bodies[1].contains("finished"),
        "the progress comment that met a 502 is not posted again: {bodies:?}"
    );
    assert!(
        r.stderr
            .contains("cannot post the progress comment: GitHub answered 502"),
        "{}",
        r.stderr
    );
    assert!(job.comment_bodies().pop().unwrap().contains("ok"));
}

#[test]
fn a_secondary_rate_limit_is_waited_out() {
    let job = Job::writer();
    job.gh.config.lock().unwrap().faults.push(Fault {
        method: "GET",
        path_suffix: "/permission".into(),
        status: 403,
        headers: vec![("retry-after".into(), "1".into())],
        body: json!({"message": "You have exceeded a secondary rate limit."}),
        times: 1,
    });
    job.event("issue_comment.created", with_phrase);
    let r = job.run(
        "issue_comment",
        &job.script(&answer("ok")),
        &[("INPUT_MODE", "ask")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(job.gh.matching("GET", "/permission").len(), 2);
    assert!(r.stderr.contains("retrying in 1.0 s"), "{}", r.stderr);
}

#[test]
fn flags_win_over_inputs_and_underscore_inputs_work() {
    let job = Job::writer();
    job.event("issue_comment.created", with_phrase);
    let flag_model = job.script(&answer("from the flag's model"));
    let mut cmd = job.command(
        "issue_comment",
        "scripted:/nonexistent.yaml",
        &[
            ("INPUT_MODE", "review"),
            ("INPUT_GITHUB_TOKEN", "ghs_underscoreSPELLING"),
        ],
    );
    cmd.env_remove("INPUT_GITHUB-TOKEN")
        .args(["--model", &flag_model, "--mode", "ask"]);
    let r = run(&mut cmd);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("running in ask mode"),
        "--mode beats INPUT_MODE: {}",
        r.stderr
    );
    assert!(job
        .comment_bodies()
        .pop()
        .unwrap()
        .contains("from the flag's model"));
    assert!(job
        .gh
        .requests()
        .iter()
        .all(|q| auth_header(q) == Some("Bearer ghs_underscoreSPELLING")));
}

#[test]
fn a_422_is_reported_in_one_clear_line() {
    let job = Job::writer();
    job.gh.config.lock().unwrap().faults.push(Fault {
        method: "POST",
        path_suffix: "/Hello-World/pulls".into(),
        status: 422,
        headers: vec![],
        body: json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest", "code": "custom", "message": "A pull request already exists for Codertocat:x."}]}),
        times: 5,
    });
    job.event("issue_comment.created", with_phrase);
    let r = job.run("issue_comment", &job.script(&calc_fix()), &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("but GitHub refused to create the pull request (422 Unprocessable Entity): Validation Failed: A pull request already exists for Codertocat:x."), "{}", r.stderr);
    assert!(
        r.stderr
            .lines()
            .any(|l| l.starts_with("::error title=sandcrab::") && l.contains("422")),
        "{}",
        r.stderr
    );
    assert_eq!(
        job.gh.matching("POST", "/pulls").len(),
        1,
        "a 422 is not retried"
    );
    assert_eq!(job.outputs()["conclusion"], "failure");
    assert!(job
        .comment_bodies()
        .pop()
        .unwrap()
        .contains("A pull request already exists"));
}

/// A CI checkout is cloned seconds (or less) before the agent edits it: a same-size edit in
/// the second the index was written must still be in the patch (git's racy-clean check).
#[test]
fn a_same_size_edit_right_after_the_clone_is_in_the_patch() {
    use sandcrab::workspace::{git as wgit, LocalWorkspace};
    let rt = tokio::runtime::Runtime::new().unwrap();
    for _ in 0..20 {
        let seed = git_repo(&[("f.txt", "a + b\n")]);
        let repo = tempfile::tempdir().unwrap();
        git(
            repo.path(),
            &["clone", "-q", seed.path().to_str().unwrap(), "."],
        );
        let ws = LocalWorkspace::new(repo.path()).unwrap();
        let base = rt.block_on(wgit::workspace_base(&ws)).unwrap().unwrap();
        std::fs::write(repo.path().join("f.txt"), "a - b\n").unwrap();
        let patch = rt.block_on(wgit::workspace_patch(&ws, &base, &[])).unwrap();
        assert!(patch.contains("+a - b"), "{patch:?}");
    }
}

#[test]
fn the_time_limit_stops_the_run_and_still_posts_the_partial_report() {
    let job = Job::writer();
    job.event("issue_comment.created", with_phrase);
    let script = "- tool: terminal\n  args: {command: \"sleep 2\"}\n- tool: terminal\n  args: {command: \"echo never\"}\n- tool: finish\n  args: {message: never}\n";
    // 0.005 minutes = 0.3 s: well inside the first step.
    let r = job.run(
        "issue_comment",
        &job.script(script),
        &[("INPUT_TIMEOUT-MINUTES", "0.005")],
    );
    assert_eq!(r.code, 130, "{}", r.stderr);
    assert!(r.stderr.contains("the time limit"), "{}", r.stderr);
    assert!(
        !r.stderr.contains("echo never"),
        "stopped after the current step"
    );
    let last = job.comment_bodies().pop().unwrap();
    assert!(
        last.contains("interrupted") && last.contains("nothing was pushed"),
        "{last}"
    );
    assert_eq!(job.outputs()["conclusion"], "failure");
    assert!(job.gh.matching("POST", "/pulls").is_empty());
}

#[test]
fn the_budget_stops_the_run_and_still_posts_the_partial_report() {
    let job = Job::writer();
    job.event("issue_comment.created", with_phrase);
    // gpt-4o list prices: 120k input tokens = $0.30 a call; the 4th call passes $1.
    let llm = FakeLlm::start(std::sync::Arc::new(|_, body: &Value| {
        let n = tool_results(body);
        let args = json!({"command": format!("echo line-{n} >> budget.txt")});
        let mut answer = openai_call(n, "terminal", &args.to_string());
        answer["usage"] = json!({"prompt_tokens": 120_000, "completion_tokens": 10});
        Reply::ok(answer)
    }));
    let extra = [
        ("INPUT_MAX-BUDGET-USD", "1"),
        ("INPUT_LLM-BASE-URL", &llm.openai_url()),
    ];
    let r = job.run("issue_comment", "openai/gpt-4o", &extra);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(llm.recorded().len(), 4);
    let last = job.comment_bodies().pop().unwrap();
    assert!(
        last.contains("budget spent")
            && last.contains("maximum budget limit ($1.0000)")
            && last.contains("budget.txt")
            && last.contains("nothing was pushed"),
        "{last}"
    );
    assert_eq!(job.outputs()["conclusion"], "failure");
    assert_eq!(job.outputs()["cost"], "1.2004");
    assert!(job.gh.matching("POST", "/pulls").is_empty());
}

#[test]
fn a_refused_draft_is_opened_as_a_ready_pull_request() {
    let job = Job::writer();
    job.gh.config.lock().unwrap().faults.push(Fault {
        method: "POST",
        path_suffix: "/Hello-World/pulls".into(),
        status: 422,
        headers: vec![],
        body: json!({"message": "Validation Failed", "errors": [{"resource": "PullRequest", "code": "custom", "message": "Draft pull requests are not supported in this repository."}]}),
        times: 1,
    });
    job.event("issue_comment.created", with_phrase);
    let r = job.run("issue_comment", &job.script(&calc_fix()), &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let pulls = job.gh.matching("POST", "/pulls");
    let drafts: Vec<&Value> = pulls.iter().map(|p| &p.body["draft"]).collect();
    assert_eq!(drafts, vec![&json!(true), &json!(false)]);
    assert_eq!(
        job.outputs()["pr-url"],
        "https://github.example/Codertocat/Hello-World/pull/77"
    );
}

#[test]
fn the_artifact_holds_report_html_and_the_comment_and_step_summary_link_it() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let artifacts = rt.block_on(crate::fake_artifacts::FakeArtifactService::start());
    let job = Job::writer();
    job.event("issue_comment.created", with_phrase);
    let token = crate::fake_artifacts::token();
    let r = job.run(
        "issue_comment",
        &job.script(&calc_fix()),
        &[
            ("ACTIONS_RUNTIME_TOKEN", token.as_str()),
            ("ACTIONS_RESULTS_URL", artifacts.results_url.as_str()),
        ],
    );
    assert_eq!(r.code, 0, "stderr: {}", r.stderr);
    let blobs = artifacts.book.lock().unwrap().blobs.clone();
    assert_eq!(blobs.len(), 1, "one artifact");
    let zip = blobs.values().next().unwrap().clone();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let mut page = String::new();
    std::io::Read::read_to_string(&mut zip.by_name("report.html").unwrap(), &mut page).unwrap();
    assert!(page.contains("<!doctype html>") && page.contains("calc.sh"));
    assert_eq!(
        page,
        std::fs::read_to_string(job.path("out").join("report.html")).unwrap()
    );
    let link = "[Artifact: report.html, trajectory](https://github.example/Codertocat/Hello-World/actions/runs/4242/artifacts/";
    let last = job.comment_bodies().pop().unwrap();
    assert!(last.contains(link), "{last}");
    let summary = std::fs::read_to_string(job.path("summary")).unwrap();
    assert!(summary.contains(link), "{summary}");
    assert_no_secrets(&job, &r);
}
