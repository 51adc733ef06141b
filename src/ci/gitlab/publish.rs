//! Results on GitLab, by mode (the GitLab side of `ci::github::publish`):
//! - resolve for an issue (or a job with `--mode resolve` and no merge request): the patch
//!   committed onto the run's base commit, pushed as a new branch `branch-prefix + iid + short
//!   id`, and a merge request to the default branch that says `Closes #N` (a draft: `Draft:`
//!   title). A 409 (one exists for the branch) is the existing merge request.
//! - resolve in a merge request pipeline: the patch committed onto the source branch's tip and
//!   pushed to it (a fast-forward, never forced). From a fork: no push, said so.
//! - review: a diff thread per finding on a changed line; the others, and any whose position
//!   GitLab refuses, in the note.
//!
//! Only a finished run with a non-empty patch is pushed.

use crate::ci::github::checkout::Checkout;
use crate::ci::github::review as findings;
use crate::config::ci::{CiSettings, Mode};
use crate::config::gitlab::GitlabJob;
use crate::error::ExitCode;
use crate::redact::Redactor;
use crate::report::inert::{host_of_url, inert};
use crate::run::RunOutcome;

use super::api::{GitlabError, Issue, MergeRequestInfo, NewMergeRequest};
use super::plan::{Plan, Target};
use super::{review, GitlabClient, MergeRequest};

/// Where things are.
pub struct Context<'a> {
    pub client: Option<&'a GitlabClient>,
    pub checkout: Option<&'a Checkout>,
    pub settings: &'a CiSettings,
    pub job: &'a GitlabJob,
    /// `https://gitlab.example` (links to branches).
    pub server_url: String,
    pub issue: Option<&'a Issue>,
    pub merge_request: Option<&'a MergeRequestInfo>,
    /// The run's secrets, redacted from every text sent to GitLab.
    pub redactor: &'a Redactor,
}

/// What was published, and what went wrong.
#[derive(Debug, Default)]
pub struct Published {
    pub branch: Option<(String, String)>,
    pub merge_request: Option<String>,
    /// The review's summary (inert), shown in the note instead of the agent's raw JSON.
    pub review_summary: Option<String>,
    pub threads: usize,
    /// One line each, for the note.
    pub notes: Vec<String>,
    /// A publishing failure (the job fails with it).
    pub error: Option<String>,
}

impl Published {
    fn fail(&mut self, message: String) {
        eprintln!("sandcrab: {message}");
        self.notes.push(format!("⚠️ {message}"));
        self.error = Some(message);
    }
}

pub async fn publish(ctx: &Context<'_>, plan: &Plan, outcome: &RunOutcome) -> Published {
    let mut out = Published::default();
    let finished = outcome.exit_code == ExitCode::Finished;
    match (plan.mode, plan.target) {
        (Mode::Review, Target::MergeRequest(iid)) if finished => {
            post_review(ctx, iid, outcome, &mut out).await
        }
        (Mode::Resolve, _) | (Mode::Auto, Target::Issue(_) | Target::MergeRequest(_)) => {
            if outcome.exit_code == ExitCode::SecretInChanges {
                out.notes.push(
                    "The changes hold a secret of this run, so nothing was committed or pushed."
                        .into(),
                );
            } else if !finished {
                out.notes.push("The agent did not finish, so nothing was pushed; the patch is `changes.patch` in the job's artifacts.".into());
            } else if outcome.patch.trim().is_empty() {
                out.notes
                    .push("The agent changed no files; nothing to push.".into());
            } else {
                resolve(ctx, plan, outcome, &mut out).await
            }
        }
        (Mode::Auto, Target::Project) if !outcome.patch.trim().is_empty() => {
            out.notes.push("The change is `changes.patch` in the job's artifacts (`sandcrab-out/`); set mode resolve to push it as a branch with a merge request.".into());
        }
        _ => {}
    }
    out
}

async fn resolve(ctx: &Context<'_>, plan: &Plan, outcome: &RunOutcome, out: &mut Published) {
    let (Some(checkout), Some(client)) = (ctx.checkout, ctx.client) else {
        return out.fail("cannot push: no API token or no git checkout; add SANDCRAB_GITLAB_TOKEN (a project access token with the api scope, Developer role) and run in the project's checkout".into());
    };
    match (plan.target, &ctx.job.context.merge_request) {
        (Target::MergeRequest(_), Some(mr)) => {
            push_to_merge_request(ctx, checkout, mr, outcome, out).await
        }
        _ => open_merge_request(ctx, checkout, client, plan, outcome, out).await,
    }
}

fn commit_message(plan: &Plan, outcome: &RunOutcome) -> String {
    let reference = match plan.target {
        Target::Issue(n) => Some(format!("#{n}")),
        Target::MergeRequest(n) => Some(format!("!{n}")),
        Target::Project => None,
    };
    crate::ci::github::checkout::commit_message(outcome.result.summary.as_deref(), reference)
}

async fn push_to_merge_request(
    ctx: &Context<'_>,
    checkout: &Checkout,
    mr: &MergeRequest,
    outcome: &RunOutcome,
    out: &mut Published,
) {
    let branch = &mr.source_branch;
    if !mr.same_project() {
        out.notes.push(format!(
            "This merge request comes from a fork, so sandcrab does not push to `{branch}`; apply `changes.patch` from the job's artifacts."
        ));
        return;
    }
    let plan = Plan {
        mode: Mode::Resolve,
        target: Target::MergeRequest(mr.iid),
    };
    let pushed = async {
        let tip = checkout.fetch_branch(branch).await?;
        let sha = checkout
            .commit_patch(&tip, &outcome.patch, &commit_message(&plan, outcome))
            .await?;
        checkout.push(&sha, branch).await
    };
    match pushed.await {
        Ok(()) => {
            out.branch = Some((branch.clone(), branch_url(ctx, branch)));
            out.notes.push(format!("Pushed the changes to `{branch}`."));
        }
        Err(e) => out.fail(format!(
            "cannot push to the merge request's branch {branch}: {e}; the token needs the api (or write_repository) scope and the Developer role"
        )),
    }
}

async fn open_merge_request(
    ctx: &Context<'_>,
    checkout: &Checkout,
    client: &GitlabClient,
    plan: &Plan,
    outcome: &RunOutcome,
    out: &mut Published,
) {
    let Some(base) = outcome.base.as_deref() else {
        return out.fail("cannot commit: the workspace is not a git repository".into());
    };
    let Some(target_branch) = ctx.job.default_branch.clone() else {
        return out.fail("cannot open a merge request: CI_DEFAULT_BRANCH is not set; run sandcrab as a GitLab CI job, which sets it".into());
    };
    let number = match plan.target {
        Target::Issue(n) => Some(n),
        _ => None,
    };
    let branch = crate::ci::github::checkout::work_branch(
        &ctx.settings.branch_prefix,
        number,
        &outcome.result.conversation_id,
    );
    if !checkout.valid_branch(&branch).await {
        return out.fail(format!(
            "'{branch}' is not a valid branch name: check branch-prefix"
        ));
    }
    let pushed = async {
        let sha = checkout
            .commit_patch(base, &outcome.patch, &commit_message(plan, outcome))
            .await?;
        checkout.push(&sha, &branch).await
    };
    if let Err(e) = pushed.await {
        return out.fail(format!(
            "cannot push the branch {branch}: {e}; the token needs the api (or write_repository) scope and the Developer role"
        ));
    }
    out.branch = Some((branch.clone(), branch_url(ctx, &branch)));
    let own = host_of_url(&ctx.server_url);
    let summary = inert(
        outcome.result.summary.as_deref().unwrap_or("").trim(),
        own.as_deref(),
    );
    let (title, closes) = match (plan.target, ctx.issue) {
        (Target::Issue(n), Some(issue)) => (
            format!(
                "Resolve #{n}: {}",
                issue.title.chars().take(200).collect::<String>()
            ),
            format!("Closes #{n}\n\n"),
        ),
        (Target::Issue(n), None) => (format!("Resolve #{n}"), format!("Closes #{n}\n\n")),
        _ => (
            summary
                .lines()
                .next()
                .unwrap_or("Changes by sandcrab")
                .chars()
                .take(200)
                .collect(),
            String::new(),
        ),
    };
    // A title is plain text, but a mention in it still notifies.
    let mut title = inert(&title, own.as_deref()).replace(['\n', '\r'], " ");
    if ctx.settings.draft_pr {
        title = format!("Draft: {title}");
    }
    let request = NewMergeRequest {
        source_branch: branch.clone(),
        target_branch,
        title: ctx.redactor.redact(&title),
        description: ctx.redactor.redact(&format!(
            "{closes}{summary}\n\n<sub>Opened by sandcrab; review before merging.</sub>"
        )),
        remove_source_branch: true,
    };
    match client
        .create_merge_request(&ctx.job.context.project_id, &request)
        .await
    {
        Ok(mr) => {
            out.notes.push(format!("Opened merge request !{}.", mr.iid));
            out.merge_request = Some(mr.web_url);
        }
        Err(e) => out.fail(format!("pushed {branch}, but {e}")),
    }
}

async fn post_review(ctx: &Context<'_>, iid: u64, outcome: &RunOutcome, out: &mut Published) {
    let mut found = findings::parse(outcome.result.summary.as_deref().unwrap_or(""));
    if found.summary.is_empty() {
        found.summary = "sandcrab reviewed this merge request.".into();
    }
    let own = host_of_url(&ctx.server_url);
    found.summary = inert(&found.summary, own.as_deref());
    for c in &mut found.comments {
        c.body = ctx.redactor.redact(&inert(&c.body, own.as_deref()));
    }
    let (Some(client), Some(checkout), Some(info)) = (ctx.client, ctx.checkout, ctx.merge_request)
    else {
        out.review_summary = Some(review::summary_with(&found.summary, &found.comments));
        return;
    };
    let Some(refs) = &info.diff_refs else {
        out.notes.push(
            "GitLab had no diff of this merge request yet, so the comments are in this note."
                .into(),
        );
        out.review_summary = Some(review::summary_with(&found.summary, &found.comments));
        return;
    };
    let args = [
        "diff",
        "--no-ext-diff",
        "--no-textconv",
        "--no-color",
        "--no-renames",
        "-U3",
        refs.base_sha.as_str(),
        refs.head_sha.as_str(),
    ];
    let lines = match checkout.git(&args, &[], "diff").await {
        Ok(diff) => review::new_lines(&diff),
        Err(e) => {
            eprintln!("sandcrab: warning: cannot read the merge request's diff: {e}");
            Default::default()
        }
    };
    // The merge request's own project (the target project of a merge request from a fork).
    let ctx_mr = ctx.job.context.merge_request.as_ref();
    let project = &ctx_mr.map_or(ctx.job.context.project_id.clone(), |mr| {
        mr.project_id.clone()
    });
    let mut folded = Vec::new();
    let (mut refused, mut off, mut broken) = (0, 0, false);
    for comment in std::mem::take(&mut found.comments) {
        let position = review::position(&comment, &lines, refs);
        let (Some(position), false) = (position, broken) else {
            off += usize::from(!broken);
            folded.push(comment);
            continue;
        };
        match client
            .create_discussion(project, iid, &comment.body, &position)
            .await
        {
            Ok(_) => out.threads += 1,
            Err(GitlabError::Api {
                status: 400,
                message,
                ..
            }) => {
                eprintln!(
                    "sandcrab: GitLab refused a thread on {} line {} ({message}); it goes into the note",
                    comment.path, comment.line
                );
                refused += 1;
                folded.push(comment);
            }
            Err(e) => {
                // The next thread would meet the same answer: the rest go into the note.
                out.fail(e.to_string());
                broken = true;
                folded.push(comment);
            }
        }
    }
    if refused > 0 {
        out.notes.push(format!(
            "GitLab refused {refused} thread position(s); those comments are in this note."
        ));
    }
    if off > 0 {
        out.notes.push(format!(
            "{off} comment(s) on lines outside the merge request's diff are in this note."
        ));
    }
    out.notes.push(format!(
        "Started {} thread(s) on changed lines.",
        out.threads
    ));
    out.review_summary = Some(review::summary_with(&found.summary, &folded));
}

fn branch_url(ctx: &Context<'_>, branch: &str) -> String {
    format!(
        "{}/{}/-/tree/{branch}",
        ctx.server_url.trim_end_matches('/'),
        ctx.job.context.project_path
    )
}
