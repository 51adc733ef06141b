//! `sandcrab run` in a GitLab CI job: the plan (review a merge request, resolve an issue, or
//! the job's prompt, see `plan`) → the origin's URL without the job token, the merge
//! request's head fetched → the prompt (the merge request or issue quoted as untrusted data)
//! → a note on the merge request or issue with a link to the job → the run, the note edited
//! as the agent moves → results published (`publish`: a branch and a merge request, a push to
//! the merge request's branch, diff threads) → the final report in the note → the outputs and
//! `sandcrab.env` (a `dotenv` report) in the output folder.
//!
//! Notes are feedback, never a reason to fail the job: without a merge request or issue,
//! without a token, or with a token GitLab refuses, the run goes on and says so in one line.
//! A failed push or merge request fails the job (exit 1) after the note says why.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::ci::feedback::{Feedback, ProgressPump};
use crate::ci::github::checkout::Checkout;
use crate::ci::github::prompt::clean;
use crate::ci::render::{self, Links, Progress};
use crate::config::ci::{CiSettings, Mode};
use crate::config::gitlab::GitlabJob;
use crate::config::{RunArgs, RunConfig};
use crate::error::{BadInput, ExitCode};
use crate::redact::Redactor;
use crate::run::{RunHooks, RunOutcome};
use anyhow::Result;

use super::api::{Issue, MergeRequestInfo};
use super::note::{GitlabNote, NoNote};
use super::plan::{self, Plan, Target};
use super::{checkout, prompt, publish, GitlabClient, GitlabContext, NoteTarget};

/// GitLab's limit on a note body (1,000,000 characters); kept in bytes, which is stricter.
pub const GITLAB_NOTE_LIMIT: usize = 1_000_000;

/// Least time between two progress edits (task-list changes are posted at once).
const EDIT_INTERVAL: Duration = Duration::from_secs(3);

/// The `dotenv` report written next to the outputs.
pub const ENV_FILE: &str = "sandcrab.env";

/// GitLab runs default to `instructions-from: base`. In a merge request pipeline the checkout
/// is the merge request's code, so `base` is the target branch as the job fetched it
/// (`origin/<target>`); when the job did not fetch it, the agent gets no repository
/// instructions, skills or hooks rather than the merge request's. `head` is honoured as asked
/// (GitLab runs are started by the project's own pipeline rules).
fn trusted_instructions(
    config: &mut RunConfig,
    asked: Option<crate::agent::skills::load::InstructionsFrom>,
    ctx: &GitlabContext,
) {
    use crate::agent::skills::load::InstructionsFrom;
    config.instructions_from = asked.unwrap_or(InstructionsFrom::Base);
    let Some(mr) = ctx.merge_request.as_ref() else {
        return;
    };
    if config.instructions_from != InstructionsFrom::Base {
        return;
    }
    let target = format!("refs/remotes/origin/{}", mr.target_branch);
    let found = crate::runner_git::command(&config.repo_dir)
        .args([
            "rev-parse",
            "--verify",
            "-q",
            &format!("{target}^{{commit}}"),
        ])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match found {
        Some(sha) if !mr.target_branch.is_empty() && !mr.target_branch.starts_with('-') => {
            config.instructions_rev = Some(sha);
        }
        _ => {
            eprintln!("sandcrab: warning: the merge request's target branch '{}' is not in the checkout, so there is no trusted version of the repository's instructions, skills and hooks; the agent gets none (fetch the target branch, e.g. GIT_DEPTH: 0, or set instructions-from: head)", mr.target_branch);
            config.instructions_from = InstructionsFrom::None;
        }
    }
}

pub async fn run(mut args: RunArgs, settings: CiSettings, job: GitlabJob) -> Result<ExitCode> {
    let plan = plan::decide(&job, settings.mode)?;
    let mut secrets: Vec<String> = job.token.iter().cloned().collect();
    secrets.extend(job.job_token.iter().cloned());
    let redactor = Redactor::new(secrets.iter().cloned());
    let client = client(&job, plan);
    let server = server_url(&job.context);
    let remote = checkout::scrub_origin(&args.repo_dir, &redactor).await;
    let git = remote.as_deref().map(|remote| {
        checkout::checkout(
            &args.repo_dir,
            remote,
            job.token.clone(),
            redactor.clone(),
            &server,
        )
    });
    let subject = subject_of(&job, plan, client.as_deref(), git.as_ref(), &redactor).await?;
    let instruction = instruction(&args)?;
    eprintln!(
        "sandcrab: GitLab CI: running in {} mode ({})",
        plan.mode.as_str(),
        source_name(&job.context)
    );
    args.prompt = Some(prompt::build(
        instruction.as_deref(),
        plan.mode,
        &job,
        prompt::Subject {
            merge_request: subject.merge_request.as_ref(),
            issue: subject.issue.as_ref(),
        },
    ));
    args.prompt_file = None;
    let asked = args.instructions_from;
    let mut config = RunConfig::from_args(args)?;
    trusted_instructions(&mut config, asked, &job.context);
    config.secrets.extend(secrets);
    // Every secret of the run from here on (the model key too), not only the GitLab tokens.
    let redactor = Redactor::new(config.secrets.iter().cloned());
    keep_out_of_the_patch(&config);
    let mut feedback = feedback(&job, client.clone());
    let progress = Progress {
        run_url: job.context.job_url.clone(),
        mode: subject_name(&job.context, plan),
        ..Progress::default()
    };
    if let Err(e) = feedback.create(&render::progress(&progress)).await {
        eprintln!(
            "sandcrab: warning: {}; the run goes on without a note",
            redactor.redact(&format!("{e:#}"))
        );
    }
    let pump = ProgressPump::start(feedback, progress, EDIT_INTERVAL);
    let hooks = RunHooks {
        listener: Some(pump.listener()),
        timeout: settings.timeout,
        stop: None,
    };
    let outcome = crate::run::run_with(config.clone(), hooks).await;
    let mut feedback = pump.stop().await?;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => return failed_run(&job, feedback.as_mut(), &config, &redactor, &e).await,
    };
    let ctx = publish::Context {
        client: client.as_deref(),
        checkout: git.as_ref(),
        settings: &settings,
        job: &job,
        server_url: server,
        issue: subject.issue.as_ref(),
        merge_request: subject.merge_request.as_ref(),
        redactor: &redactor,
    };
    let published = publish::publish(&ctx, &plan, &outcome).await;
    finish(
        &job,
        feedback.as_mut(),
        &config,
        &redactor,
        &outcome,
        published,
    )
    .await
}

/// The API client, when there is a token (else one line saying what is missing, when the
/// plan needs one).
fn client(job: &GitlabJob, plan: Plan) -> Option<Arc<GitlabClient>> {
    match GitlabClient::new(&job.context.api_url, job.token.as_deref()) {
        Ok(client) => Some(Arc::new(client)),
        Err(e) => {
            if plan.target != Target::Project || plan.mode == Mode::Resolve {
                eprintln!("sandcrab: warning: {e}; the run goes on without a note");
            }
            None
        }
    }
}

/// What GitLab says about the merge request or issue; the merge request's head checked out.
#[derive(Default)]
struct Subject {
    merge_request: Option<MergeRequestInfo>,
    issue: Option<Issue>,
}

async fn subject_of(
    job: &GitlabJob,
    plan: Plan,
    client: Option<&GitlabClient>,
    git: Option<&Checkout>,
    redactor: &Redactor,
) -> Result<Subject> {
    let mut subject = Subject::default();
    let Some(client) = client else {
        return Ok(subject);
    };
    match plan.target {
        Target::Issue(iid) => {
            let issue = client
                .issue(&job.context.project_id, iid)
                .await
                .map_err(|e| anyhow::anyhow!("cannot read issue #{iid}: {e}"))?;
            subject.issue = Some(issue);
        }
        Target::MergeRequest(iid) if matches!(plan.mode, Mode::Review | Mode::Resolve) => {
            let mr = job
                .context
                .merge_request
                .as_ref()
                .expect("a merge request target");
            match client.merge_request(&mr.project_id, iid).await {
                Ok(info) => subject.merge_request = Some(info),
                Err(e) => eprintln!(
                    "sandcrab: warning: {}; the review's comments go into the note",
                    redactor.redact(&e.to_string())
                ),
            }
            let Some(git) = git else {
                return Err(BadInput::new("GitLab CI: the project directory is not a git checkout with an http(s) origin; keep GIT_STRATEGY fetch or clone").into());
            };
            let as_branch = plan.mode == Mode::Resolve && mr.same_project();
            let (head, base) = checkout::check_out_merge_request(git, mr, as_branch)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot check out merge request !{iid}'s head ({e}); check that the token can read the repository (api or read_repository scope)"
                    )
                })?;
            eprintln!("sandcrab: checked out merge request !{iid} at {head} (merge base {base})");
        }
        _ => {}
    }
    Ok(subject)
}

/// The output folder defaults to one inside the checkout, where the run's patch (`git add -A`)
/// would pick up its own outputs and persisted conversation: a `.gitignore` of `*` in it
/// keeps git out of it (GitLab's `artifacts: paths:` does not read `.gitignore`).
fn keep_out_of_the_patch(config: &RunConfig) {
    let (out, repo) = (absolute(&config.out_dir), absolute(&config.repo_dir));
    if !out.starts_with(&repo) || out == repo {
        return;
    }
    let ignore = out.join(".gitignore");
    if ignore.exists() {
        return;
    }
    let written = std::fs::create_dir_all(&out)
        .and_then(|_| std::fs::write(&ignore, "# sandcrab's outputs: not part of the change\n*\n"));
    if let Err(e) = written {
        eprintln!(
            "sandcrab: warning: cannot write {}: {e}; the patch may include the output folder",
            ignore.display()
        );
    }
}

/// Where GitLab serves `report.html` from the job's artifacts (`CI_JOB_URL/artifacts/file/PATH`,
/// PATH under `CI_PROJECT_DIR`, as `artifacts: paths:` collects it); `None` when the page was
/// not written or lies outside the checkout (no artifact can hold it then).
fn report_page_url(job: &GitlabJob, page: &Path) -> Option<String> {
    let job_url = job.context.job_url.as_deref()?;
    if !page.is_file() {
        return None;
    }
    let project = absolute(&job.context.project_dir);
    let relative = absolute(page).strip_prefix(&project).ok()?.to_path_buf();
    let parts: Vec<String> = relative
        .components()
        .map(|c| {
            url::form_urlencoded::byte_serialize(c.as_os_str().to_string_lossy().as_bytes())
                .collect::<String>()
                .replace('+', "%20")
        })
        .collect();
    Some(format!(
        "{}/artifacts/file/{}",
        job_url.trim_end_matches('/'),
        parts.join("/")
    ))
}

fn absolute(path: &Path) -> std::path::PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The note on the merge request or issue, or none (said in one line).
fn feedback(job: &GitlabJob, client: Option<Arc<GitlabClient>>) -> Box<dyn Feedback> {
    let ctx = &job.context;
    let Some((project, target)) = super::note_target(ctx, job.issue_iid) else {
        eprintln!(
            "sandcrab: GitLab CI: no merge request in this pipeline ({}), so no note; the results are in the output folder",
            source_name(ctx)
        );
        return Box::new(NoNote);
    };
    let Some(client) = client else {
        return Box::new(NoNote);
    };
    let what = match target {
        NoteTarget::MergeRequest(iid) => format!("merge request !{iid}"),
        NoteTarget::Issue(iid) => format!("issue #{iid}"),
    };
    eprintln!(
        "sandcrab: GitLab CI: progress in a note on {what} of {}",
        ctx.project_path
    );
    let page = merge_request_page(ctx, target);
    Box::new(GitlabNote::new(client, project, target, page))
}

/// The report into the note, the outputs into `sandcrab.env`; the run's exit code (1 when
/// publishing failed).
async fn finish(
    job: &GitlabJob,
    feedback: &mut dyn Feedback,
    config: &RunConfig,
    redactor: &Redactor,
    outcome: &RunOutcome,
    published: publish::Published,
) -> Result<ExitCode> {
    let mut report = std::fs::read_to_string(&outcome.outputs.report).unwrap_or_default();
    if let (Some(raw), Some(summary)) = (&outcome.result.summary, &published.review_summary) {
        let shown = crate::report::markdown::summary_markdown(raw);
        report = report.replacen(&shown, summary, 1);
    }
    let mut notes = published.notes.clone();
    if let Some(url) = &published.merge_request {
        notes.push(format!("[Merge request]({url})"));
    }
    let links = Links {
        run: job.context.job_url.clone(),
        report_page: report_page_url(job, &outcome.outputs.html),
        branch: published.branch.clone(),
        ..Links::default()
    };
    let body = redactor.redact(&render::final_body(
        &report,
        &links,
        &notes,
        GITLAB_NOTE_LIMIT,
    ));
    let note_url = final_note(feedback, &body, redactor).await;
    let failed = outcome.exit_code != ExitCode::Finished || published.error.is_some();
    let conclusion = if failed { "failure" } else { "success" };
    let changed = outcome.result.changed_files.len().to_string();
    let cost = outcome
        .result
        .cost
        .map_or(String::new(), |c| format!("{c:.4}"));
    let branch = published.branch.map(|b| b.0).unwrap_or_default();
    write_env(
        &config.out_dir,
        redactor,
        &[
            ("SANDCRAB_CONCLUSION", conclusion),
            ("SANDCRAB_COST", &cost),
            ("SANDCRAB_CHANGED_FILES", &changed),
            ("SANDCRAB_NOTE_URL", &note_url),
            ("SANDCRAB_BRANCH", &branch),
            (
                "SANDCRAB_MR_URL",
                published.merge_request.as_deref().unwrap_or(""),
            ),
        ],
    );
    Ok(match (&published.error, outcome.exit_code) {
        (Some(_), ExitCode::Finished) => ExitCode::AgentFailed,
        (_, code) => code,
    })
}

/// The run could not start or broke: say so in the note, the env file and the log.
async fn failed_run(
    job: &GitlabJob,
    feedback: &mut dyn Feedback,
    config: &RunConfig,
    redactor: &Redactor,
    error: &anyhow::Error,
) -> Result<ExitCode> {
    let message = redactor.redact(&format!("{error:#}")).replace('\n', " ");
    let links = Links {
        run: job.context.job_url.clone(),
        ..Links::default()
    };
    let body = render::final_body(
        &format!("## sandcrab: ❌ could not run\n\n{message}\n"),
        &links,
        &[],
        GITLAB_NOTE_LIMIT,
    );
    let note_url = final_note(feedback, &body, redactor).await;
    write_env(
        &config.out_dir,
        redactor,
        &[
            ("SANDCRAB_CONCLUSION", "failure"),
            ("SANDCRAB_NOTE_URL", &note_url),
        ],
    );
    match error.downcast_ref::<BadInput>() {
        Some(_) => Err(anyhow::Error::new(BadInput::new(message))),
        None => Err(anyhow::anyhow!(message)),
    }
}

async fn final_note(feedback: &mut dyn Feedback, body: &str, redactor: &Redactor) -> String {
    match feedback.finish(body).await {
        Ok(url) => url,
        Err(e) => {
            eprintln!(
                "sandcrab: warning: {}; the report is in the output folder",
                redactor.redact(&format!("{e:#}"))
            );
            String::new()
        }
    }
}

/// Writes `NAME=value` lines (one line each, secrets redacted) for `artifacts: reports: dotenv:`.
fn write_env(out_dir: &Path, redactor: &Redactor, vars: &[(&str, &str)]) {
    let text: String = vars
        .iter()
        .map(|(name, value)| {
            let value = redactor.redact(value).replace(['\n', '\r'], " ");
            format!("{name}={}\n", value.trim())
        })
        .collect();
    let path = out_dir.join(ENV_FILE);
    let written = std::fs::create_dir_all(out_dir).and_then(|_| std::fs::write(&path, text));
    if let Err(e) = written {
        eprintln!(
            "sandcrab: warning: cannot write {}: {e}; check that the output folder is writable",
            path.display()
        );
    }
}

/// The job's own instruction (`--prompt`, `SANDCRAB_PROMPT`, `--prompt-file`): trusted.
fn instruction(args: &RunArgs) -> Result<Option<String>, BadInput> {
    match (&args.prompt, &args.prompt_file) {
        (Some(text), _) if text.trim().is_empty() => Ok(None),
        (Some(text), _) => Ok(Some(text.clone())),
        (None, Some(path)) => std::fs::read_to_string(path).map(Some).map_err(|e| {
            BadInput::new(format!("cannot read --prompt-file {}: {e}", path.display()))
        }),
        (None, None) => Ok(None),
    }
}

fn subject_name(ctx: &GitlabContext, plan: Plan) -> String {
    match (&ctx.merge_request, plan.target) {
        (Some(mr), _) => format!("{}, merge request !{}", plan.mode.as_str(), mr.iid),
        (None, Target::Issue(iid)) => format!("{}, issue #{iid}", plan.mode.as_str()),
        _ => "GitLab job".to_string(),
    }
}

/// `https://gitlab.example`: the API URL without `/api/v4`.
fn server_url(ctx: &GitlabContext) -> String {
    let server = ctx.api_url.trim_end_matches('/');
    server.strip_suffix("/api/v4").unwrap_or(server).to_string()
}

fn source_name(ctx: &GitlabContext) -> String {
    use super::PipelineSource::*;
    match &ctx.pipeline_source {
        MergeRequestEvent => "merge_request_event".into(),
        Push => "push".into(),
        Web => "web".into(),
        Schedule => "schedule".into(),
        Trigger => "trigger".into(),
        Api => "api".into(),
        Other(s) if s.is_empty() => "pipeline source unknown".into(),
        Other(s) => clean(s),
    }
}

fn iid(target: NoteTarget) -> u64 {
    match target {
        NoteTarget::MergeRequest(iid) | NoteTarget::Issue(iid) => iid,
    }
}

/// The merge request's web page: the API URL without `/api/v4`, the project path, the iid.
fn merge_request_page(ctx: &GitlabContext, target: NoteTarget) -> String {
    let server = server_url(ctx);
    let kind = match target {
        NoteTarget::MergeRequest(_) => "merge_requests",
        NoteTarget::Issue(_) => "issues",
    };
    format!("{server}/{}/-/{kind}/{}", ctx.project_path, iid(target))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ci::gitlab::PipelineSource;

    fn job(title: Option<&str>) -> GitlabJob {
        let mut job = crate::ci::gitlab::test_job(PipelineSource::MergeRequestEvent, true, None);
        job.merge_request_title = title.map(String::from);
        job.default_branch = None;
        job
    }

    #[test]
    fn the_note_links_into_the_merge_request_page() {
        let ctx = job(None).context;
        assert_eq!(
            merge_request_page(&ctx, NoteTarget::MergeRequest(7)),
            "https://gitlab.example/group/app/-/merge_requests/7"
        );
    }
}
