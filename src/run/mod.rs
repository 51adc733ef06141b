//! `sandcrab run`: config → workspace → conversation → outputs. Prints progress as the agent
//! works and returns the exit code of the run; `run_with` also takes the CI runner's hooks
//! (an event listener, a time limit) and returns the result, patch and output paths.

mod docker;
pub mod instructions;
mod remote;
mod sandboxes;
pub mod secret_scan;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::agent::condenser::Condenser;
use crate::agent::prompt::system_prompt;
use crate::agent::tools::{default_tools, ToolContext};
use crate::agent::Agent;
use crate::cancel::RunStop;
use crate::config::{PromptSource, RunConfig, WorkspaceChoice};
use crate::conversation::local::last_observation;
use crate::conversation::{Conversation, ConversationOptions, LocalConversation, RunEnd};
use crate::demo::{self, DemoRepo};
use crate::error::{BadInput, ExitCode};
use crate::event_log::Listener;
use crate::llm::relay::Relay;
use crate::llm::{self, LlmClient};
use crate::protocol::event::Event;
use crate::protocol::state::ExecutionStatus;
use crate::redact::Redactor;
use crate::report::{
    self, diffstat, ms_since, progress::Progress, RunResult, RunStatus, Timings, Tokens,
    WorkspaceSummary,
};
use crate::workspace::{git, release, DockerWorkspace, LocalWorkspace, Workspace};

/// What a run works with: the workspace, its conversation, and what must live as long as the
/// run (a relay, the Docker sandbox to keep when a run fails and --keep-on-failure says so).
struct Session {
    workspace: Arc<dyn Workspace>,
    conversation: Box<dyn Conversation>,
    _relay: Option<Relay>,
    docker: Option<Arc<DockerWorkspace>>,
    /// Secrets learnt while opening the workspace (redacted from the outputs too).
    secrets: Vec<String>,
    /// The model used, when not the configured one (a Cloud account's).
    model: Option<String>,
}

/// Extras a caller (the CI runner) plugs into a run.
#[derive(Default)]
pub struct RunHooks {
    /// Called with every event (already redacted), after the console printer.
    pub listener: Option<Listener>,
    /// Wall-clock limit of the run, from its start: past it the run stops (the current step
    /// is cut off after [`crate::cancel::STOP_GRACE`], a running command too) and its partial
    /// results are written.
    pub timeout: Option<Duration>,
    /// Any other stop of the run (a caller's limit): `request` it with the reason.
    pub stop: Option<crate::cancel::RunStop>,
}

/// What a run produced, for the caller to publish.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub exit_code: ExitCode,
    pub result: RunResult,
    /// The patch (unredacted: it is applied, never printed; `changes.patch` is redacted).
    pub patch: String,
    pub outputs: report::Outputs,
    /// The commit the run started from (`None` outside a git repository).
    pub base: Option<String>,
    /// The task tracker's last `task_list`, if the agent kept one.
    pub task_list: Option<serde_json::Value>,
}

/// Runs the agent as configured; returns the process exit code.
pub async fn run(config: RunConfig) -> Result<ExitCode> {
    Ok(run_with(config, RunHooks::default()).await?.exit_code)
}

/// Runs the agent as configured with the caller's hooks; returns what it produced.
pub async fn run_with(mut config: RunConfig, hooks: RunHooks) -> Result<RunOutcome> {
    let started = Instant::now();
    remove_sandboxes_on_panic();
    let stop = hooks.stop.clone().unwrap_or_default();
    stop.follow_signals();
    if let Some(limit) = hooks.timeout {
        stop.after(limit);
    }
    let demo_repo = if config.demo {
        Some(DemoRepo::create()?)
    } else {
        None
    };
    let repo_dir = demo_repo
        .as_ref()
        .map_or(config.repo_dir.clone(), |d| d.path().to_path_buf());
    let prompt = read_prompt(&config.prompt)?;
    config.repo_context = Arc::new(instructions::prepare(&config, &repo_dir)?);
    instructions::add_repository_mcp_servers(&mut config)?;
    let mut session =
        crate::cancel::unless_stopped(&stop, release::cleanup_all, open(&config, &repo_dir))
            .await?;
    let base = crate::cancel::unless_stopped(&stop, release::cleanup_all, async {
        Ok(git::workspace_base(session.workspace.as_ref()).await?)
    })
    .await?;
    announce(
        &config,
        session.model.as_deref().unwrap_or(&config.llm.model),
        session.conversation.as_ref(),
        session.workspace.as_ref(),
    );
    let mut printer = Progress::new();
    session
        .conversation
        .add_listener(Box::new(move |e| printer.print(e)));
    if let Some(listener) = hooks.listener {
        session.conversation.add_listener(listener);
    }
    if should_send_prompt(session.conversation.as_ref(), &prompt) {
        session.conversation.send_message(&prompt).await?;
    }
    let setup_ms = ms_since(started);
    let run_started = Instant::now();
    let end = run_until_stopped(session.conversation.as_mut(), &stop).await;
    let run_ms = ms_since(run_started);
    if let Err(e) = session.conversation.close().await {
        eprintln!("sandcrab: warning: closing the conversation: {e:#}");
    }
    let (mut result, mut patch) = report_run(&config, &session, &end, base.as_deref()).await?;
    result.instructions = config.repo_context.summary.clone();
    result.timings.setup_ms = setup_ms;
    result.timings.run_ms = run_ms;
    result.timings.total_ms = ms_since(started);
    if let (RunEnd::Paused, Some(reason)) = (&end, stop.reason()) {
        result.error = Some(reason);
    }
    withhold_secrets(&config, &session, &mut result, &mut patch);
    let outputs = write_outputs(&config, &session, &result, &patch)?;
    if let (Some(docker), false) = (&session.docker, end == RunEnd::Finished) {
        docker.mark_failed();
    }
    session.workspace.close().await?;
    print_summary(&result, &outputs.result, &config.out_dir);
    Ok(RunOutcome {
        exit_code: result.status.exit_code(),
        task_list: task_list(session.conversation.events()),
        result,
        patch,
        outputs,
        base,
    })
}

/// Runs the conversation to its end; once `stop` is requested, it stops after the current
/// step, or is cut off (a running command too) when that step does not end within
/// [`crate::cancel::STOP_GRACE`].
async fn run_until_stopped(conversation: &mut dyn Conversation, stop: &RunStop) -> RunEnd {
    let pause = conversation.pause_handle();
    let cut_off = async {
        stop.requested().await;
        pause.store(true, Ordering::SeqCst);
        tokio::time::sleep(crate::cancel::STOP_GRACE).await;
    };
    tokio::select! {
        end = run_to_end(conversation) => end,
        () = cut_off => {
            eprintln!("sandcrab: the current step did not end in time; cutting it off");
            RunEnd::Paused
        }
    }
}

/// The run's end; a conversation that fails for good (its agent-server died or vanished, the
/// event store cannot be written) becomes an `Error` end, so the outputs are still written.
async fn run_to_end(conversation: &mut dyn Conversation) -> RunEnd {
    match conversation.run().await {
        Ok(end) => end,
        Err(e) => RunEnd::Error(format!("{e:#}")),
    }
}

/// What every remote conversation of a run is created with: the run's limits, repository
/// context, MCP servers and security settings; its secrets (redacted by the agent-server) are
/// the run's plus `extra_secrets` (a relay token, the model's key).
pub(crate) fn remote_options(
    config: &RunConfig,
    extra_secrets: impl Iterator<Item = String>,
) -> crate::conversation::remote::RemoteOptions {
    crate::conversation::remote::RemoteOptions {
        conversation_id: config.conversation_id.clone(),
        max_iterations: config.max_iterations,
        max_budget_usd: config.max_budget_usd,
        stuck_detection: config.stuck_detection,
        condenser: config.condenser.clone(),
        agent_context: config.repo_context.agent_context_json(),
        hook_config: config.repo_context.hook_config_json(),
        mcp_config: config.mcp.clone(),
        mcp_secrets: config.mcp_secrets(),
        security: config.security.clone(),
        headless: Some(config.headless),
        secrets: config
            .secrets
            .iter()
            .cloned()
            .chain(extra_secrets)
            .collect(),
    }
}

/// A panic anywhere still removes the sandboxes this process started.
fn remove_sandboxes_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        crate::workspace::release::release_all_blocking();
        default(info);
    }));
}

/// The run's result, with the patch computed in the workspace.
async fn report_run(
    config: &RunConfig,
    session: &Session,
    end: &RunEnd,
    base: Option<&str>,
) -> Result<(RunResult, String)> {
    let started = Instant::now();
    let conversation = session.conversation.as_ref();
    let patch = patch(session.workspace.as_ref(), base, &outputs_in_repo(config)).await;
    let mut result = run_result(
        conversation,
        end,
        session.workspace.as_ref(),
        &patch,
        session.model.as_deref().unwrap_or(&config.llm.model),
    );
    result.timings = Timings {
        llm_ms: (conversation.stats().total_latency() * 1e6).round() / 1e3,
        report_ms: ms_since(started),
        ..Timings::default()
    };
    Ok((result, patch))
}

/// When the agent's changes hold a secret of the run (plain or encoded), the run refuses
/// them: one line naming the files, status `secret_in_changes` (exit 4), and an empty patch,
/// so nothing is committed, pushed or written to `changes.patch`.
fn withhold_secrets(
    config: &RunConfig,
    session: &Session,
    result: &mut RunResult,
    patch: &mut String,
) {
    let redactor = Redactor::new(config.secrets.iter().chain(&session.secrets).cloned());
    let files = secret_scan::files_with_secrets(patch, &redactor);
    if files.is_empty() {
        return;
    }
    let message = format!(
        "the agent's changes hold a secret of this run in {}: nothing is committed, pushed or uploaded; look at the run's trajectory for how it got there",
        files.join(", ")
    );
    eprintln!("sandcrab: refused: {message}");
    result.status = RunStatus::SecretInChanges;
    result.error = Some(message);
    patch.clear();
}

/// Writes result.json, trajectory.jsonl, changes.patch and report.md, secrets redacted.
fn write_outputs(
    config: &RunConfig,
    session: &Session,
    result: &RunResult,
    patch: &str,
) -> Result<report::Outputs> {
    let redactor = Redactor::new(config.secrets.iter().chain(&session.secrets).cloned());
    let events = session.conversation.events();
    let tasks = task_list(events);
    report::write_outputs(
        &config.out_dir,
        result,
        events,
        patch,
        tasks.as_ref(),
        &|s| redactor.redact(s),
    )
}

/// The workspace `--workspace` names and its conversation, by the factory rule: a Local
/// workspace gets a Local conversation, every other kind a Remote one.
async fn open(config: &RunConfig, repo_dir: &Path) -> Result<Session> {
    let plain = |(workspace, conversation): (Arc<dyn Workspace>, Box<dyn Conversation>)| Session {
        workspace,
        conversation,
        _relay: None,
        docker: None,
        secrets: Vec::new(),
        model: None,
    };
    match choose_workspace(config).await? {
        WorkspaceChoice::Local => {
            let ws = LocalWorkspace::new(repo_dir)
                .map_err(|e| BadInput::new(format!("--repo-dir {}: {e}", repo_dir.display())))?;
            let conversation = local_conversation(config, &ws).await?;
            Ok(plain((Arc::new(ws), Box::new(conversation))))
        }
        WorkspaceChoice::Remote => remote::open(config).await.map(plain),
        WorkspaceChoice::Docker => {
            let d = docker::open(config, repo_dir).await?;
            Ok(Session {
                workspace: d.workspace.clone(),
                conversation: d.conversation,
                _relay: d.relay,
                docker: Some(d.workspace),
                secrets: Vec::new(),
                model: None,
            })
        }
        kind @ (WorkspaceChoice::Cloud
        | WorkspaceChoice::RuntimeApi
        | WorkspaceChoice::Apptainer) => {
            let s = sandboxes::open(config, repo_dir, kind).await?;
            Ok(Session {
                workspace: s.workspace,
                conversation: s.conversation,
                _relay: s.relay,
                docker: None,
                secrets: s.secrets,
                model: s.model,
            })
        }
    }
}

/// `--workspace`, or what `--runner-requirements auto` finds: Docker when an engine answers,
/// else a Cloud sandbox when one is configured.
async fn choose_workspace(config: &RunConfig) -> Result<WorkspaceChoice> {
    if let Some(choice) = config.workspace {
        return Ok(choice);
    }
    if docker_engine_answers().await {
        return Ok(WorkspaceChoice::Docker);
    }
    if config.sandboxes.cloud_configured() {
        eprintln!("sandcrab: no Docker engine answers; using an OpenHands Cloud sandbox");
        return Ok(WorkspaceChoice::Cloud);
    }
    Err(BadInput::new(
        "runner-requirements auto: no Docker engine answers (check DOCKER_HOST or the socket) and no cloud sandbox is configured; set --cloud-api-key or use a runner with Docker",
    )
    .into())
}

async fn docker_engine_answers() -> bool {
    let probe = async {
        crate::workspace::docker::engine::connect()
            .await
            .ok()?
            .ping()
            .await
            .ok()
    };
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(5), probe).await,
        Ok(Some(_))
    )
}

fn read_prompt(source: &PromptSource) -> Result<String, BadInput> {
    match source {
        PromptSource::Text(text) => Ok(text.clone()),
        PromptSource::Demo => Ok(demo::TASK.to_string()),
        PromptSource::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                BadInput::new(format!("cannot read --prompt-file {}: {e}", path.display()))
            })?;
            if text.trim().is_empty() {
                return Err(BadInput::new(format!(
                    "--prompt-file {} is empty: give the agent a task",
                    path.display()
                )));
            }
            Ok(text)
        }
    }
}

fn build_llm(config: &RunConfig, workspace: &Path) -> Result<Arc<dyn LlmClient>, BadInput> {
    if config.demo && config.llm.model == demo::MODEL {
        let model = llm::scripted::ScriptedModel::from_yaml(
            demo::MODEL,
            demo::SCRIPT,
            Some(workspace.to_path_buf()),
        )
        .map_err(|e| BadInput::new(format!("the bundled demo script is invalid: {e}")))?;
        return Ok(Arc::new(model));
    }
    llm::build_client_for_workspace(&config.llm, Some(workspace))
        .map_err(|e| BadInput::new(e.to_string()))
}

async fn local_conversation(
    config: &RunConfig,
    workspace: &dyn Workspace,
) -> Result<LocalConversation> {
    let root = Path::new(workspace.working_dir());
    let llm = build_llm(config, root)?;
    let mut ctx = ToolContext::new(root);
    ctx.env_remove = config.env_remove.clone();
    let prices = config.llm.prices();
    let mut tools = default_tools(&ctx);
    tools.extend(mcp_tools(config, root).await?);
    let mut agent = Agent::new(
        llm.clone(),
        tools,
        system_prompt(workspace.working_dir()),
        prices,
    );
    if let Some(condenser) = &config.condenser {
        agent = agent.with_condenser(Condenser::new(llm, prices, condenser.clone()));
    }
    let repo = &config.repo_context;
    let agent = agent
        .with_context(repo.agent_context.clone(), root)
        .with_hooks(crate::agent::hooks::run::HookRunner::new(
            repo.hooks.clone(),
            root.to_path_buf(),
            config.env_remove.clone(),
        ))
        .with_security(config.security.clone());
    let mut options = ConversationOptions::new(workspace.working_dir());
    options.headless = Some(config.headless);
    options.id = config.conversation_id.clone();
    options.persistence_dir = Some(config.persistence_dir.clone());
    options.max_iterations = config.max_iterations;
    options.max_budget_usd = config.max_budget_usd;
    options.stuck_detection = config.stuck_detection;
    options.secrets = config.secrets.to_vec();
    LocalConversation::open(agent, options).with_context(|| {
        format!(
            "cannot open the conversation under {}",
            config.persistence_dir.display()
        )
    })
}

/// The tools of the run's MCP servers, started in `root`; a required server that cannot start
/// fails the run (one line), any other is skipped with a warning.
async fn mcp_tools(
    config: &RunConfig,
    root: &Path,
) -> Result<Vec<Arc<dyn crate::agent::tools::Tool>>, BadInput> {
    if config.mcp.is_empty() {
        return Ok(Vec::new());
    }
    let secrets = config.mcp_secrets().into_iter().collect();
    let taken = ["terminal", "file_editor", "task_tracker", "finish", "think"];
    let started = crate::mcp::start(&config.mcp, root, &secrets, &taken)
        .await
        .map_err(BadInput::new)?;
    for warning in &started.warnings {
        eprintln!("sandcrab: warning: {warning}");
    }
    Ok(started.tools)
}

/// A new conversation gets the task. A resumed one that was cut off (error, stuck, paused,
/// killed) continues without it; a finished one takes a prompt that differs from its last
/// task as a follow-up.
fn should_send_prompt(conversation: &dyn Conversation, prompt: &str) -> bool {
    if prompt.trim().is_empty() {
        return false;
    }
    if !conversation.resumed() {
        return true;
    }
    conversation.status() == ExecutionStatus::Finished
        && conversation.last_user_message().as_deref() != Some(prompt)
}

/// sandcrab's outputs (`--out`, `--persistence-dir`) that lie inside the repository, relative
/// to it: never copied into a sandbox, never in the patch (so never committed or pushed).
pub(crate) fn outputs_in_repo(config: &RunConfig) -> Vec<PathBuf> {
    crate::workspace::snapshot::outputs_inside(
        &config.repo_dir,
        &[&config.out_dir, &config.persistence_dir],
    )
}

/// The patch of the run; empty (with a warning) outside a git repository or when git fails.
async fn patch(workspace: &dyn Workspace, base: Option<&str>, exclude: &[PathBuf]) -> String {
    let Some(base) = base else {
        eprintln!(
            "sandcrab: warning: {} is not in a git repository; changes.patch will be empty",
            workspace.working_dir()
        );
        return String::new();
    };
    match git::workspace_patch(workspace, base, exclude).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sandcrab: warning: {e}");
            String::new()
        }
    }
}

fn run_status(end: &RunEnd) -> RunStatus {
    match end {
        RunEnd::Finished => RunStatus::Finished,
        RunEnd::Stuck(_) => RunStatus::Stuck,
        RunEnd::MaxIterations(_) => RunStatus::MaxIterations,
        RunEnd::Error(_) => RunStatus::Error,
        RunEnd::Paused => RunStatus::Interrupted,
        RunEnd::MaxBudget(_) => RunStatus::MaxBudget,
        RunEnd::ConfirmationRequired(_) | RunEnd::WaitingForConfirmation => {
            RunStatus::ConfirmationRequired
        }
    }
}

fn run_result(
    conversation: &dyn Conversation,
    end: &RunEnd,
    workspace: &dyn Workspace,
    patch: &str,
    model: &str,
) -> RunResult {
    let stats = conversation.stats();
    let (total, cost) = stats.totals();
    // Every model the run used (the agent's and the condenser's summary calls), so the
    // breakdown adds up to `total`.
    let usage = stats.usage_to_metrics.values().fold(
        crate::protocol::metrics::TokenUsage::default(),
        |mut sum, m| {
            let u = &m.accumulated_token_usage;
            sum.prompt_tokens += u.prompt_tokens;
            sum.completion_tokens += u.completion_tokens;
            sum.cache_read_tokens += u.cache_read_tokens;
            sum.cache_write_tokens += u.cache_write_tokens;
            sum
        },
    );
    let error = match end {
        RunEnd::Stuck(reason) => Some(format!("the agent got stuck: {reason}")),
        RunEnd::MaxIterations(n) => Some(format!(
            "the agent used all {n} iterations without finishing"
        )),
        RunEnd::Error(e) => Some(e.clone()),
        RunEnd::Paused => Some("the run was interrupted".to_string()),
        RunEnd::MaxBudget(detail) => Some(format!(
            "{detail} Raise --max-budget-usd to let the agent go further; the partial work is in the outputs."
        )),
        RunEnd::ConfirmationRequired(detail) => Some(detail.clone()),
        RunEnd::WaitingForConfirmation => Some(
            "the agent's next action waits for a confirmation nobody can give in this run".into(),
        ),
        RunEnd::Finished => None,
    };
    RunResult {
        status: run_status(end),
        conversation_id: conversation.id().to_string(),
        summary: conversation.final_response(),
        error,
        model: model.to_string(),
        iterations: conversation.iterations(),
        actions: conversation
            .events()
            .iter()
            .filter(|e| e.kind() == "ActionEvent")
            .count(),
        tokens: Tokens {
            prompt: usage.prompt_tokens,
            completion: usage.completion_tokens,
            cache_read: usage.cache_read_tokens,
            cache_write: usage.cache_write_tokens,
            total,
            cache_hit_ratio: stats.cache_hit_ratio().map(|r| (r * 1e4).round() / 1e4),
        },
        cost,
        changed_files: diffstat::diffstat(patch),
        workspace: WorkspaceSummary {
            kind: workspace.kind().as_str().to_string(),
            working_dir: workspace.working_dir().to_string(),
        },
        timings: Timings::default(),
        instructions: None,
        sandcrab_version: env!("CARGO_PKG_VERSION"),
    }
}

fn task_list(events: &[Event]) -> Option<serde_json::Value> {
    last_observation(events, "task_tracker").map(|o| o["task_list"].clone())
}

fn announce(
    config: &RunConfig,
    model: &str,
    conversation: &dyn Conversation,
    workspace: &dyn Workspace,
) {
    let verb = if conversation.resumed() {
        "resuming"
    } else {
        "starting"
    };
    eprintln!(
        "sandcrab: {verb} conversation {} · {} workspace {} · model {} · up to {} iterations",
        conversation.id(),
        workspace.kind().as_str(),
        workspace.working_dir(),
        model,
        config.max_iterations
    );
}

fn print_summary(result: &RunResult, result_path: &Path, out_dir: &Path) {
    let cost = result
        .cost
        .map_or("cost unknown".into(), |c| format!("${c:.4}"));
    let files = result.changed_files.len();
    eprintln!(
        "sandcrab: {} after {} iterations · {} tokens · {cost} · {files} file{} changed · outputs in {}",
        result.status.as_str(),
        result.iterations,
        result.tokens.total,
        if files == 1 { "" } else { "s" },
        out_dir.display()
    );
    if let Some(error) = &result.error {
        eprintln!("sandcrab: {error}");
    }
    println!("{}", result_path.display());
}
