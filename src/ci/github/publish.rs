//! Results on GitHub, by mode.
//! - resolve on an issue (or a dispatch): the patch committed onto the run's base commit, on a
//!   new branch `branch-prefix + number + short id`, pushed to the checkout's `origin`, and a
//!   (draft) PR "Fixes #N" (a 422 on the draft retries as a ready PR).
//! - resolve on a PR from this repository: the patch committed onto the PR head's tip and
//!   pushed to its branch (a fast-forward, never forced). Fork PRs: no push, said so.
//! - review: a COMMENT review with inline comments from the agent's findings (a 422 on the
//!   inline comments retries with them folded into the body).
//! - ask: nothing here; the answer is the final comment.
//!
//! Only a finished run with a non-empty patch is pushed.

use crate::config::ci::{CiSettings, Mode};
use crate::error::ExitCode;
use crate::report::inert::inert;
use crate::run::RunOutcome;

use super::api::GithubApi;
use super::checkout::Checkout;
use super::event::PullRequest;
use super::review;
use super::trigger::{Plan, Target};

/// Where things are.
pub struct Context<'a> {
    pub api: &'a GithubApi,
    pub checkout: &'a Checkout,
    pub settings: &'a CiSettings,
    pub server_url: &'a str,
    pub repository: &'a str,
    /// The issue or PR title (untrusted: only ever sent back to GitHub as text).
    pub title: String,
}

/// What was published, and what went wrong.
#[derive(Debug, Default)]
pub struct Published {
    pub branch: Option<(String, String)>,
    pub pull_request: Option<String>,
    pub review: Option<String>,
    /// The review's summary, shown in the final comment instead of the agent's raw JSON.
    pub review_summary: Option<String>,
    /// One line each, for the final comment.
    pub notes: Vec<String>,
    /// A publishing failure (the run fails with it).
    pub error: Option<String>,
}

impl Context<'_> {
    /// The repository's own server (`github.com`, or the GHES host): its links stay live.
    fn own_host(&self) -> Option<String> {
        crate::report::inert::host_of_url(self.server_url)
    }
}

impl Published {
    fn fail(&mut self, message: String) {
        eprintln!("sandcrab: {message}");
        self.notes.push(format!("⚠️ {message}"));
        self.error = Some(message);
    }
}

pub async fn publish(
    ctx: &Context<'_>,
    plan: &Plan,
    pr: Option<&PullRequest>,
    outcome: &RunOutcome,
) -> Published {
    let mut out = Published::default();
    let finished = outcome.exit_code == ExitCode::Finished;
    match plan.mode {
        Mode::Review => {
            if let (true, Some(pr)) = (finished, pr) {
                post_review(ctx, pr, outcome, &mut out).await;
            }
        }
        Mode::Resolve | Mode::Auto => {
            if outcome.exit_code == ExitCode::SecretInChanges {
                out.notes.push("The changes hold a secret of this run, so nothing was committed, pushed or uploaded.".into());
            } else if !finished {
                out.notes.push("The agent did not finish, so nothing was pushed; the patch is in the run's outputs.".into());
            } else if outcome.patch.trim().is_empty() {
                out.notes
                    .push("The agent changed no files; nothing to push.".into());
            } else if let Target::PullRequest(_) = plan.target {
                match pr {
                    Some(pr) => push_to_pr(ctx, pr, outcome, &mut out).await,
                    None => out.fail("cannot push: the pull request's details are missing".into()),
                }
            } else {
                open_pr(ctx, plan, outcome, &mut out).await;
            }
        }
        Mode::Ask => {}
    }
    out
}

fn commit_message(plan: &Plan, outcome: &RunOutcome) -> String {
    let reference = match plan.target {
        Target::Issue(n) | Target::PullRequest(n) => Some(format!("#{n}")),
        Target::Repository => None,
    };
    super::checkout::commit_message(outcome.result.summary.as_deref(), reference)
}

async fn push_to_pr(
    ctx: &Context<'_>,
    pr: &PullRequest,
    outcome: &RunOutcome,
    out: &mut Published,
) {
    if !pr.same_repo(ctx.repository) {
        out.notes.push(format!(
            "This pull request comes from a fork, so sandcrab cannot push to `{}`; apply `changes.patch` from the run's outputs.",
            pr.head.name
        ));
        return;
    }
    let branch = &pr.head.name;
    let plan = Plan {
        mode: Mode::Resolve,
        target: Target::PullRequest(pr.number),
        reason: String::new(),
    };
    let pushed = async {
        let tip = ctx.checkout.fetch_branch(branch).await?;
        let sha = ctx
            .checkout
            .commit_patch(&tip, &outcome.patch, &commit_message(&plan, outcome))
            .await?;
        ctx.checkout.push(&sha, branch).await
    };
    match pushed.await {
        Ok(()) => {
            out.branch = Some((branch.clone(), branch_url(ctx, branch)));
            out.notes.push(format!("Pushed the changes to `{branch}`."));
        }
        Err(e) => out.fail(format!(
            "cannot push to the pull request's branch {branch}: {e}"
        )),
    }
}

async fn open_pr(ctx: &Context<'_>, plan: &Plan, outcome: &RunOutcome, out: &mut Published) {
    let Some(base) = outcome.base.as_deref() else {
        return out.fail("cannot commit: the workspace is not a git repository".into());
    };
    let number = match plan.target {
        Target::Issue(n) | Target::PullRequest(n) => Some(n),
        Target::Repository => None,
    };
    let branch = super::checkout::work_branch(
        &ctx.settings.branch_prefix,
        number,
        &outcome.result.conversation_id,
    );
    if !ctx.checkout.valid_branch(&branch).await {
        return out.fail(format!(
            "'{branch}' is not a valid branch name: check branch-prefix"
        ));
    }
    let pushed = async {
        let sha = ctx
            .checkout
            .commit_patch(base, &outcome.patch, &commit_message(plan, outcome))
            .await?;
        ctx.checkout.push(&sha, &branch).await
    };
    if let Err(e) = pushed.await {
        return out.fail(format!("cannot push the branch {branch}: {e}"));
    }
    out.branch = Some((branch.clone(), branch_url(ctx, &branch)));
    let default = match ctx.api.default_branch().await {
        Ok(b) => b,
        Err(e) => return out.fail(format!("pushed {branch}, but {e}")),
    };
    let body = pr_body(plan, outcome, ctx.own_host().as_deref());
    let title = match plan.target {
        Target::Issue(n) => format!(
            "Fix #{n}: {}",
            ctx.title.chars().take(200).collect::<String>()
        ),
        _ => outcome
            .result
            .summary
            .as_deref()
            .and_then(|s| s.lines().next())
            .unwrap_or("Changes by sandcrab")
            .chars()
            .take(200)
            .collect(),
    };
    // The title is plain text on GitHub, but mentions in it still notify.
    let title = inert(&title, None);
    let mut request = serde_json::json!({"title": title, "head": branch, "base": default, "body": body, "draft": ctx.settings.draft_pr});
    let mut created = ctx.api.create_pull(&request).await;
    if matches!(&created, Err(e) if e.status() == Some(422) && ctx.settings.draft_pr && e.to_string().to_lowercase().contains("draft"))
    {
        request["draft"] = false.into();
        created = ctx.api.create_pull(&request).await;
    }
    match created {
        Ok(pr) => out.pull_request = Some(pr.html_url),
        Err(e) => out.fail(format!("pushed {branch}, but {e}")),
    }
}

fn pr_body(plan: &Plan, outcome: &RunOutcome, own_host: Option<&str>) -> String {
    let summary = inert(
        outcome.result.summary.as_deref().unwrap_or("").trim(),
        own_host,
    );
    let fixes = match plan.target {
        Target::Issue(n) => format!("Fixes #{n}\n\n"),
        _ => String::new(),
    };
    format!("{fixes}{summary}\n\n<sub>Opened by sandcrab; review before merging.</sub>")
}

async fn post_review(
    ctx: &Context<'_>,
    pr: &PullRequest,
    outcome: &RunOutcome,
    out: &mut Published,
) {
    let mut findings = review::parse(outcome.result.summary.as_deref().unwrap_or(""));
    if findings.summary.is_empty() {
        findings.summary = "sandcrab reviewed this pull request.".into();
    }
    let args = [
        "diff",
        "--no-ext-diff",
        "--no-textconv",
        "--no-color",
        "--no-renames",
        "-U3",
    ];
    let range = [pr.base.sha.as_str(), pr.head.sha.as_str()];
    let all: Vec<&str> = args.iter().chain(&range).copied().collect();
    match ctx.checkout.git(&all, &[], "diff").await {
        Ok(diff) => {
            let off = review::off_diff(&mut findings, &review::diff_lines(&diff));
            if !off.is_empty() {
                let moved = review::Findings {
                    summary: findings.summary.clone(),
                    comments: off,
                };
                findings.summary = review::as_body(&moved);
                out.notes.push(format!(
                    "{} comment(s) on lines outside the pull request's diff are in the review's body.",
                    moved.comments.len()
                ));
            }
        }
        Err(e) => eprintln!("sandcrab: warning: cannot read the pull request's diff: {e}"),
    }
    let own = ctx.own_host();
    findings.summary = inert(&findings.summary, own.as_deref());
    for c in &mut findings.comments {
        c.body = inert(&c.body, own.as_deref());
    }
    let summary = findings.summary.as_str();
    out.review_summary = Some(summary.to_string());
    let sha = Some(pr.head.sha.as_str());
    let mut inline = findings.comments.len();
    let mut posted = ctx
        .api
        .create_review(pr.number, sha, summary, &findings.comments)
        .await;
    if matches!(&posted, Err(e) if e.status() == Some(422)) && inline > 0 {
        inline = 0;
        let error = posted
            .as_ref()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        eprintln!("sandcrab: {error}; posting the comments in the review's body instead");
        out.notes.push("GitHub refused the inline comments (a line outside the diff?); they are in the review's body.".into());
        posted = ctx
            .api
            .create_review(pr.number, sha, &review::as_body(&findings), &[])
            .await;
    }
    match posted {
        Ok(r) => {
            out.review = Some(r.html_url);
            out.notes
                .push(format!("Posted a review with {inline} inline comment(s)."));
        }
        Err(e) => out.fail(e.to_string()),
    }
}

fn branch_url(ctx: &Context<'_>, branch: &str) -> String {
    format!(
        "{}/{}/tree/{branch}",
        ctx.server_url.trim_end_matches('/'),
        ctx.repository
    )
}
