//! `sandcrab run` on GitHub Actions: mask secrets → read the event → decide (or skip) →
//! check the sender → progress comment → the run (agent log grouped, workflow commands
//! stopped) → publish → artifacts → final comment → outputs and step summary.
//!
//! Skips and refusals print one line, set `conclusion` (`skipped` / `refused`) and exit 0.

pub mod api;
pub mod app_token;
pub mod checkout;
pub mod commands;
pub mod comment;
pub mod event;
pub mod outputs;
pub mod pr_checkout;
pub mod prompt;
pub mod publish;
pub mod results;
pub mod review;
pub mod trigger;
pub mod trust;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use async_trait::async_trait;

use crate::ci::feedback::{Feedback, ProgressPump};
use crate::ci::render::{self, Progress};
use crate::config::ci::{CiSettings, GithubEnv};
use crate::config::{RunArgs, RunConfig};
use crate::error::{BadInput, ExitCode};
use crate::redact::Redactor;
use crate::run::{RunHooks, RunOutcome};

use api::GithubApi;
use event::{GithubEvent, PullRequest};
use trigger::{ActorCheck, Decision, Plan, Target};

/// Least time between two progress edits (task-list changes are posted at once).
const EDIT_INTERVAL: Duration = Duration::from_secs(3);

pub async fn run(args: RunArgs, settings: CiSettings, mut gh: GithubEnv) -> Result<ExitCode> {
    let secrets = crate::config::ci::secrets_of(&args);
    commands::add_masks(&secrets.to_vec());
    let mut redactor = secrets.redactor();
    let event = GithubEvent::load(&gh.event_name, gh.event_path.as_deref())
        .map_err(|e| BadInput::new(e.to_string()))?;
    let has_prompt = args.prompt.is_some() || args.prompt_file.is_some();
    let plan = match trigger::decide(&event, &settings, has_prompt) {
        Decision::Run(plan) => plan,
        Decision::Skip(why) => return results::stop(&gh, outputs::Conclusion::Skipped, &why),
    };
    let Some(app) = gh.app.clone() else {
        return run_decided(args, settings, &gh, redactor, event, plan).await;
    };
    let permissions = app_token::permissions_for(plan.mode);
    let minted = app_token::mint(&gh.api_url, &gh.repository, &app, permissions, &redactor)
        .await
        .map_err(|e| BadInput::new(e.to_string()))?;
    commands::add_masks(std::slice::from_ref(&minted.token));
    redactor.add([minted.token.clone()]);
    eprintln!(
        "sandcrab: using GitHub App {}'s installation token for {} (expires {})",
        app.id, gh.repository, minted.expires_at
    );
    gh.token = Some(minted.token.clone());
    let result = run_decided(args, settings, &gh, redactor.clone(), event, plan).await;
    app_token::revoke(&gh.api_url, &gh.repository, &minted.token, &redactor).await;
    result
}

/// The run once it is decided: the sender's check, the PR's checkout, the agent, the results.
async fn run_decided(
    mut args: RunArgs,
    settings: CiSettings,
    gh: &GithubEnv,
    redactor: Redactor,
    event: GithubEvent,
    plan: Plan,
) -> Result<ExitCode> {
    let api = Arc::new(GithubApi::new(
        &gh.api_url,
        &gh.repository,
        gh.token.clone(),
        redactor.clone(),
    )?);
    if gh.token.is_none() {
        return Err(BadInput::new("github-token is not set: pass the github-token input (e.g. ${{ github.token }}) or GITHUB_TOKEN, or app-id and app-private-key").into());
    }
    if let Some(why) = refusal(&api, &event, &settings, &gh.repository).await? {
        return results::stop(gh, outputs::Conclusion::Refused, &why);
    }
    let event = with_requested_issue(&api, event, &plan).await?;
    eprintln!(
        "sandcrab: running in {} mode: {}",
        plan.mode.as_str(),
        plan.reason
    );
    let mut pr = pull_request(&api, &event, &plan).await?;
    if let Some(pr) = pr.as_mut() {
        check_out_pr(gh, &args, &redactor, pr).await?;
    }
    let instruction = instruction(&args)?;
    args.prompt = Some(prompt::build(
        instruction.as_deref(),
        plan.mode,
        &event,
        &gh.repository,
        pr.as_ref(),
    ));
    args.prompt_file = None;
    let asked = args
        .instructions_from
        .unwrap_or(crate::agent::skills::load::InstructionsFrom::Base);
    let mut config = RunConfig::from_args(args)?;
    let trust = trust::decide(asked, event.sender.as_ref(), pr.as_ref(), &gh.repository);
    if let Some(warning) = &trust.warning {
        eprintln!("sandcrab: warning: {warning}");
    }
    config.instructions_from = trust.from;
    config.instructions_rev = trust.rev;
    config.secrets.extend(gh.token.iter().cloned());
    if config.workspace == Some(crate::config::WorkspaceChoice::Local) {
        eprintln!("sandcrab: warning: the local workspace is not isolated: the agent runs in the checkout and can read what actions/checkout persisted there; use workspace: docker (or persist-credentials: false)");
    }
    run_planned(config, gh, &settings, api, redactor, &event, &plan, pr).await
}

/// From the progress comment to the outputs.
#[allow(clippy::too_many_arguments)]
async fn run_planned(
    config: RunConfig,
    gh: &GithubEnv,
    settings: &CiSettings,
    api: Arc<GithubApi>,
    redactor: Redactor,
    event: &GithubEvent,
    plan: &Plan,
    pr: Option<PullRequest>,
) -> Result<ExitCode> {
    let progress = Progress {
        run_url: results::run_url(gh),
        mode: plan.mode.as_str().to_string(),
        ..Progress::default()
    };
    let mut feedback: Box<dyn Feedback> = match plan.target {
        Target::Issue(n) | Target::PullRequest(n) => {
            Box::new(comment::GithubComment::new(api.clone(), n))
        }
        Target::Repository => Box::new(NoComment),
    };
    if let Err(e) = feedback.create(&render::progress(&progress)).await {
        eprintln!("sandcrab: warning: {e:#}");
    }
    let pump = ProgressPump::start(feedback, progress, EDIT_INTERVAL);
    let hooks = RunHooks {
        listener: Some(pump.listener()),
        timeout: settings.timeout,
        stop: None,
    };
    commands::group("sandcrab: agent log");
    let guard = commands::StopCommands::start();
    let outcome = crate::run::run_with(config.clone(), hooks).await;
    guard.resume();
    commands::end_group();
    let mut feedback = pump.stop().await?;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => return results::failed_run(gh, feedback.as_mut(), &redactor, &e).await,
    };
    let workspace = gh
        .workspace
        .clone()
        .unwrap_or_else(|| config.repo_dir.clone());
    let checkout = checkout::Checkout::new(&workspace, gh.token.clone(), redactor.clone());
    let ctx = publish::Context {
        api: &api,
        checkout: &checkout,
        settings,
        server_url: &gh.server_url,
        repository: &gh.repository,
        title: title_of(event, pr.as_ref()),
    };
    let published = publish::publish(&ctx, plan, pr.as_ref(), &outcome).await;
    results::finish(gh, feedback.as_mut(), &config, &outcome, published).await
}

/// Why the sender may not run sandcrab, if they may not.
async fn refusal(
    api: &GithubApi,
    event: &GithubEvent,
    settings: &CiSettings,
    repo: &str,
) -> Result<Option<String>> {
    let Some(actor) = &event.sender else {
        return Ok(None); // schedule: no sender, started by the workflow itself
    };
    match trigger::check_actor(actor, settings) {
        ActorCheck::Refuse(why) => Ok(Some(why)),
        ActorCheck::AllowedBot => Ok(None),
        ActorCheck::NeedsPermission => {
            let permission = api.permission(&actor.login).await.context(
                "cannot check the sender's permission (does the token have metadata: read?)",
            )?;
            Ok(match permission {
                Some((p, role)) if trigger::permission_allows(&p, role.as_deref()) => None,
                Some((p, _)) => Some(format!(
                    "{} has {p} access to {repo}; sandcrab runs for write, maintain or admin",
                    actor.login
                )),
                None => Some(format!("{} is not a collaborator of {repo}", actor.login)),
            })
        }
    }
}

/// A dispatch or schedule run for `issue-number`: the issue, read from the API, stands in for
/// the event as an `issues` event would carry it, so the prompt and the report hold its text
/// (untrusted data, as always).
async fn with_requested_issue(
    api: &GithubApi,
    mut event: GithubEvent,
    plan: &Plan,
) -> Result<GithubEvent> {
    use event::EventKind;
    let Target::Issue(n) = plan.target else {
        return Ok(event);
    };
    if !matches!(
        event.kind,
        EventKind::WorkflowDispatch { .. }
            | EventKind::RepositoryDispatch { .. }
            | EventKind::Schedule
    ) {
        return Ok(event);
    }
    let issue = api.issue(n).await.map_err(|e| {
        BadInput::new(format!(
            "cannot read issue #{n} given as issue-number ({e}); check the number and that the token can read issues"
        ))
    })?;
    if issue.pull_request.is_some() {
        return Err(BadInput::new(format!(
            "issue-number {n} is a pull request: issue-number takes an issue (review pull requests on pull_request events)"
        ))
        .into());
    }
    event.kind = EventKind::Issues {
        issue,
        label: None,
        assignee: None,
    };
    Ok(event)
}

/// The PR of a PR target: from the payload, or the API (comments on PRs carry none).
async fn pull_request(
    api: &GithubApi,
    event: &GithubEvent,
    plan: &Plan,
) -> Result<Option<PullRequest>> {
    let Target::PullRequest(n) = plan.target else {
        return Ok(None);
    };
    if let Some(pr) = event.pull_request() {
        return Ok(Some(pr.clone()));
    }
    Ok(Some(api.pull_request(n).await?))
}

/// Puts the PR's head in the checkout (see `pr_checkout`); from then on `pr.head.sha` is the
/// commit checked out and `pr.base.sha` the merge base (the diff GitHub shows is between them).
async fn check_out_pr(
    gh: &GithubEnv,
    args: &RunArgs,
    redactor: &Redactor,
    pr: &mut PullRequest,
) -> Result<()> {
    let dir = gh
        .workspace
        .clone()
        .unwrap_or_else(|| args.repo_dir.clone());
    let checkout = checkout::Checkout::new(&dir, gh.token.clone(), redactor.clone());
    let head = pr_checkout::check_out(&checkout, pr, &gh.repository)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot check out pull request #{}'s head ({e}); check that the token can read the repository (contents: read)",
                pr.number
            )
        })?;
    eprintln!(
        "sandcrab: checked out pull request #{} at {} (merge base {})",
        pr.number, head.head, head.merge_base
    );
    pr.head.sha = head.head;
    pr.base.sha = head.merge_base;
    Ok(())
}

/// The workflow's own instruction (the `prompt` input or --prompt / --prompt-file): trusted.
fn instruction(args: &RunArgs) -> Result<Option<String>, BadInput> {
    match (&args.prompt, &args.prompt_file) {
        (Some(text), _) => Ok(Some(text.clone())),
        (None, Some(path)) => std::fs::read_to_string(path).map(Some).map_err(|e| {
            BadInput::new(format!("cannot read --prompt-file {}: {e}", path.display()))
        }),
        (None, None) => Ok(None),
    }
}

fn title_of(event: &GithubEvent, pr: Option<&PullRequest>) -> String {
    use event::EventKind;
    match (&event.kind, pr) {
        (_, Some(pr)) => pr.title.clone(),
        (EventKind::IssueComment { issue, .. } | EventKind::Issues { issue, .. }, _) => {
            issue.title.clone()
        }
        _ => String::new(),
    }
}

/// Feedback for runs with no issue or PR (dispatch, schedule): the step summary only.
struct NoComment;

#[async_trait]
impl Feedback for NoComment {
    async fn create(&mut self, _body: &str) -> Result<String> {
        Ok(String::new())
    }
    async fn update(&mut self, _body: &str) -> Result<()> {
        Ok(())
    }
    async fn finish(&mut self, _body: &str) -> Result<String> {
        Ok(String::new())
    }
}

/// Used by `results` for the run's outcome.
pub(crate) fn cost_of(outcome: &RunOutcome) -> String {
    outcome
        .result
        .cost
        .map_or(String::new(), |c| format!("{c:.4}"))
}
