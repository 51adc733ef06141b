//! `RunConfig`: every input of a run, from flags and `SANDCRAB_*` / `LLM_*` environment
//! variables. This module is the only place that reads the environment; everything after it
//! takes plain configuration.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use crate::error::BadInput;
use crate::llm::LlmConfig;
use crate::redact::Secrets;

pub mod ci;
mod condenser;
mod docker;
pub mod gitlab;
mod llm;
mod mcp;
mod sandboxes;
mod security;
mod serve;

pub use condenser::CondenserArgs;
pub use docker::DockerArgs;
pub use llm::LlmTuningArgs;
pub use mcp::McpArgs;
pub use sandboxes::SandboxArgs;
pub use security::SecurityArgs;
pub use serve::ServeArgs;

/// Where the agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WorkspaceChoice {
    /// The repository directory on this machine, no isolation.
    Local,
    /// A running agent-server (sandcrab's or OpenHands'): --server-url, --session-api-key.
    Remote,
    /// A container on a Docker engine (`DOCKER_HOST` honoured), from any local image.
    Docker,
    /// An OpenHands Cloud sandbox: --cloud-api-key (and --cloud-url).
    Cloud,
    /// A runtime from a Runtime API: --runtime-api-url, --runtime-api-key, --runtime-api-image.
    RuntimeApi,
    /// An Apptainer container: --apptainer-sif or --apptainer-image.
    Apptainer,
}

/// What the CI runner offers (`runner-requirements`): where the agent may run when
/// `--workspace` is not given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunnerRequirements {
    /// Docker when an engine answers, else a cloud sandbox when configured.
    Auto,
    /// A Docker engine on the runner.
    Docker,
    /// Nothing on the runner: a cloud sandbox.
    None,
}

/// Flags of `sandcrab run`; each can also come from the environment variable shown.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Run the bundled example (a tiny shell project with a bug) with the bundled scripted
    /// model in a temporary git repository: no API key, no network.
    #[arg(long)]
    pub demo: bool,

    /// Where the agent runs [default: local, or what --runner-requirements picks]
    #[arg(long, value_enum, env = "SANDCRAB_WORKSPACE")]
    pub workspace: Option<WorkspaceChoice>,

    /// What the CI runner offers, when --workspace is not given: auto (Docker when an engine
    /// answers), docker, or none (a cloud sandbox).
    #[arg(long, value_enum, env = "SANDCRAB_RUNNER_REQUIREMENTS")]
    pub runner_requirements: Option<RunnerRequirements>,

    #[command(flatten)]
    pub docker: DockerArgs,

    #[command(flatten)]
    pub sandboxes: SandboxArgs,

    /// The repository the agent works on.
    #[arg(long, default_value = ".", env = "SANDCRAB_REPO_DIR")]
    pub repo_dir: PathBuf,

    /// With --workspace remote: the agent-server's URL.
    #[arg(long, env = "SANDCRAB_SERVER_URL")]
    pub server_url: Option<String>,

    /// With --workspace remote: the agent-server's session key (sent as X-Session-API-Key).
    #[arg(long, env = "SANDCRAB_SESSION_API_KEY", hide_env_values = true)]
    pub session_api_key: Option<String>,

    /// The repository's path inside a sandbox or on the agent-server.
    #[arg(long, default_value = "/workspace", env = "SANDCRAB_SANDBOX_WORKDIR")]
    pub sandbox_workdir: String,

    /// The task, as text.
    #[arg(long, env = "SANDCRAB_PROMPT", conflicts_with = "prompt_file")]
    pub prompt: Option<String>,

    /// The task, from a file.
    #[arg(long, env = "SANDCRAB_PROMPT_FILE")]
    pub prompt_file: Option<PathBuf>,

    /// anthropic/NAME, openai/NAME, openrouter/NAME, ollama/NAME, scripted:FILE.yaml, or any
    /// name with --llm-base-url [env: SANDCRAB_MODEL, LLM_MODEL]
    #[arg(long, env = "SANDCRAB_MODEL")]
    pub model: Option<String>,

    /// Base URL of an OpenAI-compatible or Anthropic API [env: SANDCRAB_LLM_BASE_URL, LLM_BASE_URL]
    #[arg(long, env = "SANDCRAB_LLM_BASE_URL")]
    pub llm_base_url: Option<String>,

    /// The model provider's API key.
    #[arg(long, env = "LLM_API_KEY", hide_env_values = true)]
    pub llm_api_key: Option<String>,

    /// Model calls before the run stops as failed.
    #[arg(long, default_value_t = 100, env = "SANDCRAB_MAX_ITERATIONS")]
    pub max_iterations: u32,

    /// Folder for result.json, trajectory.jsonl, changes.patch and report.md.
    #[arg(long, default_value = "sandcrab-out", env = "SANDCRAB_OUT")]
    pub out: PathBuf,

    /// Resume (or start) the conversation with this id; see --persistence-dir.
    #[arg(long, env = "SANDCRAB_CONVERSATION_ID")]
    pub conversation_id: Option<String>,

    /// Where conversations are persisted [default: OUT/conversations]
    #[arg(long, env = "SANDCRAB_PERSISTENCE_DIR")]
    pub persistence_dir: Option<PathBuf>,

    /// Retries of a model call on 429, 5xx and timeouts.
    #[arg(long, default_value_t = 5, env = "SANDCRAB_LLM_NUM_RETRIES")]
    pub llm_num_retries: u32,

    /// First retry wait in seconds (doubles each retry; Retry-After wins when sent).
    #[arg(long, default_value_t = 2.0, env = "SANDCRAB_LLM_RETRY_MIN_WAIT")]
    pub llm_retry_min_wait: f64,

    /// Timeout of one model call, in seconds.
    #[arg(long, default_value_t = 300.0, env = "SANDCRAB_LLM_TIMEOUT")]
    pub llm_timeout: f64,

    /// USD per million input tokens, for cost when the provider does not report it.
    #[arg(long, env = "SANDCRAB_INPUT_COST_PER_MTOK")]
    pub input_cost_per_mtok: Option<f64>,

    /// USD per million output tokens.
    #[arg(long, env = "SANDCRAB_OUTPUT_COST_PER_MTOK")]
    pub output_cost_per_mtok: Option<f64>,

    #[command(flatten)]
    pub llm_tuning: LlmTuningArgs,

    /// Turn off stuck detection (for tasks that legitimately repeat a command).
    #[arg(long, env = "SANDCRAB_NO_STUCK_DETECTION")]
    pub no_stuck_detection: bool,

    #[command(flatten)]
    pub condenser: CondenserArgs,

    /// Where repository instructions (AGENTS.md ...), skills and hooks come from: head (the
    /// working tree), base (a trusted commit: a pull request's base on GitHub, else HEAD) or
    /// none [default: head; on GitHub Actions base]
    #[arg(long, value_enum, env = "SANDCRAB_INSTRUCTIONS_FROM")]
    pub instructions_from: Option<crate::agent::skills::load::InstructionsFrom>,

    /// A command the agent cannot finish while it fails (run as a Stop hook where the agent
    /// runs; after 3 failed attempts the run fails with its output), e.g. "cargo test".
    #[arg(long, env = "SANDCRAB_VERIFY_COMMAND")]
    pub verify_command: Option<String>,
    #[command(flatten)]
    pub mcp: McpArgs,

    #[command(flatten)]
    pub security: SecurityArgs,

    /// CI platform, mode, triggers and GitHub settings (see config::ci).
    #[command(flatten)]
    pub ci: ci::CiArgs,
}

/// Where the task text comes from.
#[derive(Debug, Clone)]
pub enum PromptSource {
    Text(String),
    File(PathBuf),
    /// The bundled example's task.
    Demo,
}

/// Everything a run needs, resolved and checked.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub demo: bool,
    /// `None`: decided at run time from `runner_requirements` (needs a Docker probe).
    pub workspace: Option<WorkspaceChoice>,
    pub runner_requirements: Option<RunnerRequirements>,
    pub docker: DockerArgs,
    /// Options of the Cloud, Runtime API and Apptainer workspaces.
    pub sandboxes: SandboxArgs,
    /// No model was given and the workspace is Cloud: the account's LLM settings are used.
    pub llm_from_cloud: bool,
    pub repo_dir: PathBuf,
    /// The agent-server of a remote workspace, and its session key.
    pub server_url: Option<String>,
    pub session_api_key: Option<String>,
    pub sandbox_workdir: String,
    pub prompt: PromptSource,
    pub llm: LlmConfig,
    pub max_iterations: u32,
    /// Stop once the model calls cost this many USD (`--max-budget-usd`).
    pub max_budget_usd: Option<f64>,
    pub out_dir: PathBuf,
    pub persistence_dir: PathBuf,
    pub conversation_id: Option<String>,
    pub stuck_detection: bool,
    /// Context condensation; `None` when turned off.
    pub condenser: Option<crate::agent::condenser::CondenserConfig>,
    /// Where repository instructions, skills and hooks come from.
    pub instructions_from: crate::agent::skills::load::InstructionsFrom,
    /// With `instructions_from` base: the trusted commit (a pull request's base); `None`:
    /// the commit checked out.
    pub instructions_rev: Option<String>,
    /// The Stop hook command the agent must pass before it may finish.
    pub verify_command: Option<String>,
    /// What the agent gets from the repository; loaded by `run` from the source above.
    pub repo_context: std::sync::Arc<crate::agent::repo_context::RepoContext>,
    /// The run's secrets, redacted everywhere and looked for in the agent's changes.
    pub secrets: Secrets,
    /// Environment variable names removed from the agent's shell.
    pub env_remove: Vec<String>,
    /// Confirmation policy and analyser of the agent (`--confirmation-policy`...).
    pub security: crate::agent::security::SecuritySettings,
    /// What the run answers when an action waits for a yes (`--on-confirmation`).
    pub headless: crate::agent::security::Headless,
    /// MCP servers of the agent (`--mcp-config`), normalised.
    pub mcp: crate::mcp::McpConfig,
    /// Variables passed into a sandbox (`--forward-env`), with their values now.
    pub forward_env: Vec<(String, String)>,
    /// `DOCKER_HOST`, when set: the engine of the Docker workspace (tells a remote one).
    pub docker_host: Option<String>,
}

impl RunConfig {
    /// Resolves flags and environment into a config, or says what input is wrong.
    pub fn from_args(args: RunArgs) -> Result<Self, BadInput> {
        let prompt = prompt_source(&args)?;
        let workspace = workspace_choice(&args)?;
        let model = match (args.model.clone().or_else(|| env_nonempty("LLM_MODEL")), args.demo) {
            (Some(model), _) => model,
            (None, true) => crate::demo::MODEL.to_string(),
            (None, false) if workspace == Some(WorkspaceChoice::Cloud) => String::new(),
            (None, false) => {
                return Err(BadInput::new(
                    "no model given: pass --model (e.g. anthropic/claude-sonnet-4-5, openai/gpt-4o, scripted:FILE.yaml) or set SANDCRAB_MODEL",
                ))
            }
        };
        let llm = llm_config(&args, model)?;
        let condenser = args.condenser.resolve(&llm.model)?;
        let persistence_dir = args
            .persistence_dir
            .clone()
            .unwrap_or_else(|| args.out.join("conversations"));
        if args.workspace == Some(WorkspaceChoice::Remote) && args.server_url.is_none() {
            return Err(BadInput::new("--workspace remote needs --server-url URL (and --session-api-key if the server has one)"));
        }
        let session_api_key = args.session_api_key.clone().filter(|k| !k.is_empty());
        let mcp = args.mcp.resolve()?;
        let forward_env = forwarded(&args.docker.forward_env);
        let mcp_names = crate::mcp::config::secret_names(&mcp);
        // A forwarded value an MCP server takes is a secret: redacted like the others.
        let secrets = Secrets::new(
            secrets_of(&args).iter().cloned().chain(
                forward_env
                    .iter()
                    .filter(|(n, _)| mcp_names.contains(n))
                    .map(|(_, v)| v.clone()),
            ),
        );
        check_sandbox_args(workspace, &args.sandboxes)?;
        Ok(RunConfig {
            demo: args.demo,
            llm_from_cloud: llm.model.is_empty(),
            workspace,
            runner_requirements: args.runner_requirements,
            repo_dir: args.repo_dir,
            server_url: args.server_url,
            session_api_key,
            sandbox_workdir: args.sandbox_workdir,
            prompt,
            llm,
            max_iterations: args.max_iterations,
            max_budget_usd: args.llm_tuning.max_budget_usd()?,
            out_dir: args.out,
            persistence_dir,
            conversation_id: args.conversation_id,
            stuck_detection: !args.no_stuck_detection,
            condenser,
            instructions_from: args
                .instructions_from
                .unwrap_or(crate::agent::skills::load::InstructionsFrom::Head),
            instructions_rev: None,
            repo_context: Default::default(),
            verify_command: args.verify_command.filter(|c| !c.trim().is_empty()),
            secrets,
            env_remove: crate::secret_env::names_to_remove(),
            mcp,
            security: args.security.resolve().0,
            headless: args.security.resolve().1,
            forward_env,
            docker_host: env_nonempty("DOCKER_HOST"),
            docker: args.docker,
            sandboxes: args.sandboxes,
        })
    }
}

/// `--workspace`, or what `--runner-requirements` implies (`None`: decided at run time).
fn workspace_choice(args: &RunArgs) -> Result<Option<WorkspaceChoice>, BadInput> {
    Ok(match (args.workspace, args.runner_requirements) {
        (Some(w), _) => Some(w),
        (None, None) => Some(WorkspaceChoice::Local),
        (None, Some(RunnerRequirements::Docker)) => Some(WorkspaceChoice::Docker),
        (None, Some(RunnerRequirements::None)) if args.sandboxes.cloud_configured() => {
            Some(WorkspaceChoice::Cloud)
        }
        (None, Some(RunnerRequirements::None)) => {
            return Err(BadInput::new(
                "runner-requirements none needs a cloud sandbox: set --cloud-api-key (SANDCRAB_CLOUD_API_KEY) and, if not OpenHands' own, --cloud-url; or use a runner with Docker (runner-requirements docker)",
            ))
        }
        (None, Some(RunnerRequirements::Auto)) => None,
    })
}

/// The flags each sandbox kind cannot do without.
fn check_sandbox_args(workspace: Option<WorkspaceChoice>, s: &SandboxArgs) -> Result<(), BadInput> {
    let missing = match workspace {
        Some(WorkspaceChoice::Cloud) if !s.cloud_configured() => {
            "--workspace cloud needs --cloud-api-key (SANDCRAB_CLOUD_API_KEY)"
        }
        Some(WorkspaceChoice::RuntimeApi)
            if s.runtime_api_url.is_none()
                || s.runtime_api_key.is_none()
                || s.runtime_api_image.is_none() =>
        {
            "--workspace runtime-api needs --runtime-api-url, --runtime-api-key and --runtime-api-image"
        }
        Some(WorkspaceChoice::Apptainer)
            if s.apptainer_sif.is_none() && s.apptainer_image.is_none() =>
        {
            "--workspace apptainer needs --apptainer-sif FILE or --apptainer-image IMAGE"
        }
        _ if ![1, 2, 4, 8].contains(&s.runtime_api_resource_factor) => {
            "--runtime-api-resource-factor must be 1, 2, 4 or 8"
        }
        _ => return Ok(()),
    };
    Err(BadInput::new(missing))
}

fn prompt_source(args: &RunArgs) -> Result<PromptSource, BadInput> {
    match (&args.prompt, &args.prompt_file) {
        (Some(text), _) if text.trim().is_empty() => Err(BadInput::new("--prompt is empty: give the agent a task")),
        (Some(text), _) => Ok(PromptSource::Text(text.clone())),
        (None, Some(path)) => Ok(PromptSource::File(path.clone())),
        (None, None) if args.demo => Ok(PromptSource::Demo),
        (None, None) if args.conversation_id.is_some() => Ok(PromptSource::Text(String::new())),
        (None, None) => Err(BadInput::new(
            "no task given: pass --prompt TEXT or --prompt-file FILE (or --demo to run the bundled example)",
        )),
    }
}

fn llm_config(args: &RunArgs, model: String) -> Result<LlmConfig, BadInput> {
    let positive = |name: &str, v: f64| crate::duration::seconds(name, v).map_err(BadInput::new);
    let mut llm = LlmConfig::new(model);
    llm.base_url = args
        .llm_base_url
        .clone()
        .or_else(|| env_nonempty("LLM_BASE_URL"));
    llm.api_key = args.llm_api_key.clone().filter(|k| !k.is_empty());
    llm.num_retries = args.llm_num_retries;
    llm.retry_min_wait = positive("--llm-retry-min-wait", args.llm_retry_min_wait)?;
    llm.retry_max_wait = llm.retry_max_wait.max(llm.retry_min_wait);
    llm.timeout = positive("--llm-timeout", args.llm_timeout)?;
    llm.input_cost_per_token = args.input_cost_per_mtok.map(|c| c / 1e6);
    llm.output_cost_per_token = args.output_cost_per_mtok.map(|c| c / 1e6);
    args.llm_tuning.apply(&mut llm)?;
    Ok(llm)
}

/// The named variables that are set, with their values (names the user chose to pass in).
fn forwarded(names: &[String]) -> Vec<(String, String)> {
    names
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .filter_map(|n| std::env::var(n).ok().map(|v| (n.to_string(), v)))
        .collect()
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Every secret the run's flags and environment hold (the model key, the GitHub and session
/// tokens, the sandbox services' keys, the secret variables): the one set the masks, the
/// redactors and the patch scan start from.
pub fn secrets_of(args: &RunArgs) -> Secrets {
    let given = [
        &args.llm_api_key,
        &args.ci.github_token,
        &args.session_api_key,
    ];
    Secrets::new(
        given
            .into_iter()
            .flatten()
            .cloned()
            .chain(args.sandboxes.secrets())
            .chain(
                args.ci
                    .github_app_private_key
                    .iter()
                    .flat_map(|k| crate::redact::with_lines(k)),
            )
            .chain(secret_env_values()),
    )
}

/// Values of the secret variables set in this process, to redact wherever they show up.
fn secret_env_values() -> impl Iterator<Item = String> {
    crate::secret_env::NAMES
        .iter()
        .filter_map(|name| env_nonempty(name))
}

/// The setup stage a test holds a run at (hidden: `SANDCRAB_TEST_HOLD_AT`, see
/// `crate::cancel::stage`).
pub fn test_hold_at() -> Option<String> {
    env_nonempty("SANDCRAB_TEST_HOLD_AT")
}

/// The log filter for `tracing` (warnings and up unless `SANDCRAB_LOG` says otherwise). The
/// MCP SDK's own lines are off: every failure of it reaches sandcrab as an error, reported once
/// in one line (its log repeats it, with Rust type names).
pub fn log_filter() -> String {
    env_nonempty("SANDCRAB_LOG").unwrap_or_else(|| "warn,rmcp=off".to_string())
}
