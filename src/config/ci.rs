//! The CI side of `sandcrab run`: which platform the job runs on (`--ci-platform`), the CI
//! flag group (mode, triggers, who may run it, branches), GitHub Actions inputs (`INPUT_*`)
//! and the `GITHUB_*` / `ACTIONS_*` variables the runner sets. Like the rest of `config`, the
//! only reader of the environment for these; everything after it takes `CiConfig`.
//!
//! Action inputs arrive as `INPUT_<NAME>` with hyphens kept (`INPUT_GITHUB-TOKEN`); the
//! underscore spelling (`INPUT_GITHUB_TOKEN`) is accepted too. An input only fills what a
//! flag or a `SANDCRAB_*` variable did not set; empty inputs count as unset.

use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, ValueEnum};

use super::RunArgs;
use crate::error::BadInput;

/// The CI system the job runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Platform {
    Github,
    Gitlab,
    None,
}

/// What the run does with an issue or pull request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// resolve on issues and on a trigger phrase, review on pull-request events without one.
    Auto,
    /// Change the code: a branch and a pull request (or commits on the PR's branch).
    Resolve,
    /// Review a pull request: a review with inline comments, no code changes.
    Review,
    /// Answer in a comment, no code changes.
    Ask,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Auto => "auto",
            Mode::Resolve => "resolve",
            Mode::Review => "review",
            Mode::Ask => "ask",
        }
    }
}

/// CI flags of `sandcrab run` (also GitHub Action inputs of the same name).
#[derive(Debug, Clone, Default, Args)]
pub struct CiArgs {
    /// CI platform [default: github when GITHUB_ACTIONS=true, gitlab when GITLAB_CI=true, else none]
    /// (named --ci-platform because --platform is the Docker image platform)
    #[arg(long, value_enum, env = "SANDCRAB_CI_PLATFORM")]
    pub ci_platform: Option<Platform>,

    /// What to do: auto, resolve, review, ask [default: auto]
    #[arg(long, value_enum, env = "SANDCRAB_MODE")]
    pub mode: Option<Mode>,

    /// The phrase that triggers a run in a comment or issue [default: @sandcrab]
    #[arg(long, env = "SANDCRAB_TRIGGER_PHRASE")]
    pub trigger_phrase: Option<String>,

    /// The issue/PR label that triggers a run (action input `label`) [default: sandcrab]
    #[arg(long, env = "SANDCRAB_TRIGGER_LABEL")]
    pub trigger_label: Option<String>,

    /// The issue a workflow_dispatch, repository_dispatch or schedule run resolves (action input
    /// issue-number; one job per issue in a matrix fans a label's issues out).
    #[arg(long, env = "SANDCRAB_ISSUE_NUMBER")]
    pub issue_number: Option<String>,

    /// Only these users may trigger a run (comma-separated; they still need write access).
    #[arg(long, env = "SANDCRAB_ALLOWED_USERS")]
    pub allowed_users: Option<String>,

    /// Bots that may trigger a run: true (any), false, or comma-separated names [default: false]
    #[arg(long, env = "SANDCRAB_ALLOW_BOTS")]
    pub allow_bots: Option<String>,

    /// Open pull requests as drafts: true or false [default: true]
    #[arg(long, env = "SANDCRAB_DRAFT_PR")]
    pub draft_pr: Option<String>,

    /// Prefix of the branches the runner pushes [default: sandcrab/]
    #[arg(long, env = "SANDCRAB_BRANCH_PREFIX")]
    pub branch_prefix: Option<String>,

    /// Wall-clock limit of the agent run in minutes; the partial result is still posted.
    #[arg(long, env = "SANDCRAB_TIMEOUT_MINUTES")]
    pub timeout_minutes: Option<f64>,

    /// The GitHub token (action input github-token); never enters the sandbox.
    #[arg(long, env = "GITHUB_TOKEN", hide_env_values = true)]
    pub github_token: Option<String>,

    /// A GitHub App's ID or client ID (action input app-id). With --github-app-private-key the
    /// run mints an installation token for this repository and uses it instead of the
    /// github-token, so its pushes start the repository's workflows.
    #[arg(long, env = "SANDCRAB_GITHUB_APP_ID")]
    pub github_app_id: Option<String>,

    /// The GitHub App's private key, PEM (action input app-private-key); never enters the
    /// sandbox.
    #[arg(long, env = "SANDCRAB_GITHUB_APP_PRIVATE_KEY", hide_env_values = true)]
    pub github_app_private_key: Option<String>,
}

/// A GitHub App whose installation token the run uses (see `ci::github::app_token`).
#[derive(Clone)]
pub struct GithubApp {
    pub id: String,
    pub private_key: String,
}

impl std::fmt::Debug for GithubApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubApp")
            .field("id", &self.id)
            .field("private_key", &"<redacted>")
            .finish()
    }
}

/// Who counts as an allowed bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BotPolicy {
    Refuse,
    Any,
    /// Logins, compared without case and without the `[bot]` suffix.
    Named(Vec<String>),
}

/// CI settings, resolved.
#[derive(Debug, Clone)]
pub struct CiSettings {
    pub mode: Mode,
    pub trigger_phrase: String,
    pub label: String,
    pub allowed_users: Vec<String>,
    pub allow_bots: BotPolicy,
    pub draft_pr: bool,
    pub branch_prefix: String,
    pub timeout: Option<Duration>,
    /// The issue a dispatch or schedule run works on (`issue-number`).
    pub issue_number: Option<u64>,
}

/// What GitHub Actions tells the job (the `GITHUB_*` and `ACTIONS_*` variables).
#[derive(Debug, Clone)]
pub struct GithubEnv {
    pub api_url: String,
    pub server_url: String,
    /// `owner/name`.
    pub repository: String,
    pub event_name: String,
    pub event_path: Option<PathBuf>,
    pub run_id: Option<String>,
    pub token: Option<String>,
    /// The App whose installation token replaces `token`, when app-id and app-private-key are set.
    pub app: Option<GithubApp>,
    /// The runner's checkout (`GITHUB_WORKSPACE`).
    pub workspace: Option<PathBuf>,
    pub output_file: Option<PathBuf>,
    pub step_summary: Option<PathBuf>,
    pub runtime_token: Option<String>,
    pub results_url: Option<String>,
    pub retention_days: Option<u32>,
}

/// The CI side of a run.
#[derive(Debug, Clone)]
pub struct CiConfig {
    pub platform: Platform,
    pub settings: CiSettings,
    pub github: Option<GithubEnv>,
    /// The GitLab CI job, when the platform is GitLab.
    pub gitlab: Option<super::gitlab::GitlabJob>,
}

impl CiConfig {
    /// Resolves the platform and CI settings; on GitHub, also fills unset run flags from
    /// action inputs. `matches` are the parsed arguments of `sandcrab run`.
    pub fn resolve(args: &mut RunArgs, matches: &ArgMatches) -> Result<Self, BadInput> {
        // The bundled demo is a local dry run, also inside a CI job.
        let platform = match (args.ci.ci_platform, args.demo) {
            (Some(platform), _) => platform,
            (None, true) => Platform::None,
            (None, false) => detect_platform(),
        };
        if platform == Platform::Github {
            apply_action_inputs(args, matches)?;
        }
        let settings = settings(&args.ci)?;
        let github = (platform == Platform::Github)
            .then(|| github_env(&args.ci))
            .transpose()?;
        let gitlab = match platform {
            Platform::Gitlab => Some(gitlab_job(args, matches)?),
            _ => None,
        };
        Ok(CiConfig {
            platform,
            settings,
            github,
            gitlab,
        })
    }
}

/// The GitLab job from the `CI_*` variables, with its defaults applied to unset run flags.
fn gitlab_job(
    args: &mut RunArgs,
    matches: &ArgMatches,
) -> Result<super::gitlab::GitlabJob, BadInput> {
    let job = super::gitlab::gitlab_job(|name| std::env::var(name).ok())?;
    let (out_given, repo_given) = (!unset(matches, "out"), !unset(matches, "repo_dir"));
    super::gitlab::apply_job_defaults(args, &job, out_given, repo_given);
    Ok(job)
}

fn detect_platform() -> Platform {
    if env("GITHUB_ACTIONS").as_deref() == Some("true") {
        Platform::Github
    } else if env("GITLAB_CI").as_deref() == Some("true") {
        Platform::Gitlab
    } else {
        Platform::None
    }
}

/// Every action input the binary reads, as action.yml declares them (tests/action_manifest.rs
/// checks the two agree both ways; reading an input not listed here panics in debug builds).
pub const ACTION_INPUTS: &[&str] = &[
    "prompt",
    "trigger-phrase",
    "label",
    "issue-number",
    "mode",
    "runner-requirements",
    "workspace",
    "image",
    "model",
    "llm-api-key",
    "llm-base-url",
    "github-token",
    "app-id",
    "app-private-key",
    "max-iterations",
    "condenser",
    "context-window",
    "timeout-minutes",
    "max-budget-usd",
    "instructions-from",
    "verify-command",
    "mcp-config",
    "confirmation-policy",
    "on-confirmation",
    "allowed-users",
    "allow-bots",
    "draft-pr",
    "branch-prefix",
    "cloud-api-key",
    "cloud-url",
];

/// An action input by its name as declared (`github-token`), in either spelling.
pub fn input(name: &str) -> Option<String> {
    debug_assert!(ACTION_INPUTS.contains(&name), "undeclared input {name}");
    let upper = name.to_uppercase();
    env(&format!("INPUT_{upper}")).or_else(|| env(&format!("INPUT_{}", upper.replace('-', "_"))))
}

/// Whether the run argument `id` was left to its default (no flag, no env variable).
fn unset(matches: &ArgMatches, id: &str) -> bool {
    match matches.try_get_raw(id) {
        Err(_) => true,
        Ok(_) => matches!(
            matches.value_source(id),
            None | Some(ValueSource::DefaultValue)
        ),
    }
}

fn parse_enum<T: ValueEnum>(name: &str, value: &str) -> Result<T, BadInput> {
    T::from_str(value.trim(), true).map_err(|_| {
        let allowed: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value().map(|p| p.get_name().to_string()))
            .collect();
        BadInput::new(format!(
            "input {name} is '{value}': use one of {}",
            allowed.join(", ")
        ))
    })
}

/// Fills run flags from `INPUT_*` where neither a flag nor its variable set them.
fn apply_action_inputs(args: &mut RunArgs, m: &ArgMatches) -> Result<(), BadInput> {
    let fill = |id: &str, name: &str| unset(m, id).then(|| input(name)).flatten();
    if let Some(v) = fill("prompt", "prompt").filter(|_| args.prompt_file.is_none()) {
        args.prompt = Some(v);
    }
    if let Some(v) = fill("model", "model") {
        args.model = Some(v);
    }
    if let Some(v) = fill("llm_api_key", "llm-api-key") {
        args.llm_api_key = Some(v);
    }
    if let Some(v) = fill("llm_base_url", "llm-base-url") {
        args.llm_base_url = Some(v);
    }
    if let Some(v) = fill("image", "image") {
        args.docker.image = v;
    }
    if let Some(v) = fill("workspace", "workspace") {
        args.workspace = Some(parse_enum("workspace", &v)?);
    }
    if let Some(v) = fill("runner_requirements", "runner-requirements") {
        args.runner_requirements = Some(parse_enum("runner-requirements", &v)?);
    }
    if let Some(v) = fill("max_iterations", "max-iterations") {
        args.max_iterations = v.trim().parse().map_err(|_| {
            BadInput::new(format!("input max-iterations is '{v}': use a whole number"))
        })?;
    }
    if let Some(v) = fill("max_budget_usd", "max-budget-usd").filter(|v| !v.trim().is_empty()) {
        args.llm_tuning.max_budget_usd = Some(v.trim().parse().map_err(|_| {
            BadInput::new(format!(
                "input max-budget-usd is '{v}': use an amount in USD, e.g. 5"
            ))
        })?);
    }
    if let Some(v) = fill("no_condenser", "condenser") {
        args.condenser.no_condenser = match v.trim().to_ascii_lowercase().as_str() {
            "true" | "" => false,
            "false" => true,
            _ => {
                return Err(BadInput::new(format!(
                    "input condenser is '{v}': use true or false"
                )))
            }
        };
    }
    if let Some(v) = fill("context_window", "context-window").filter(|v| !v.trim().is_empty()) {
        args.condenser.context_window = Some(v.trim().parse().map_err(|_| {
            BadInput::new(format!(
                "input context-window is '{v}': use a number of tokens"
            ))
        })?);
    }
    if let Some(v) = fill("instructions_from", "instructions-from").filter(|v| !v.trim().is_empty())
    {
        args.instructions_from = Some(parse_enum("instructions-from", &v)?);
    }
    if let Some(v) = fill("verify_command", "verify-command").filter(|v| !v.trim().is_empty()) {
        args.verify_command = Some(v);
    }
    if let Some(v) = fill("mcp_config", "mcp-config").filter(|v| !v.trim().is_empty()) {
        args.mcp.mcp_config = Some(v);
    }
    if let Some(v) =
        fill("confirmation_policy", "confirmation-policy").filter(|v| !v.trim().is_empty())
    {
        args.security.confirmation_policy = parse_enum("confirmation-policy", &v)?;
    }
    if let Some(v) = fill("on_confirmation", "on-confirmation").filter(|v| !v.trim().is_empty()) {
        args.security.on_confirmation = parse_enum("on-confirmation", &v)?;
    }
    if let Some(v) = fill("cloud_api_key", "cloud-api-key") {
        args.sandboxes.cloud_api_key = Some(v);
    }
    if let Some(v) = fill("cloud_url", "cloud-url") {
        args.sandboxes.cloud_url = v;
    }
    if unset(m, "repo_dir") {
        if let Some(dir) = env("GITHUB_WORKSPACE") {
            args.repo_dir = PathBuf::from(dir);
        }
    }
    apply_ci_inputs(&mut args.ci, m)
}

fn apply_ci_inputs(ci: &mut CiArgs, m: &ArgMatches) -> Result<(), BadInput> {
    let fill = |id: &str, name: &str| unset(m, id).then(|| input(name)).flatten();
    if let Some(v) = fill("mode", "mode") {
        ci.mode = Some(parse_enum("mode", &v)?);
    }
    ci.trigger_phrase = ci
        .trigger_phrase
        .take()
        .or(fill("trigger_phrase", "trigger-phrase"));
    ci.trigger_label = ci.trigger_label.take().or(fill("trigger_label", "label"));
    ci.issue_number = ci
        .issue_number
        .take()
        .or(fill("issue_number", "issue-number"));
    ci.allowed_users = ci
        .allowed_users
        .take()
        .or(fill("allowed_users", "allowed-users"));
    ci.allow_bots = ci.allow_bots.take().or(fill("allow_bots", "allow-bots"));
    ci.draft_pr = ci.draft_pr.take().or(fill("draft_pr", "draft-pr"));
    ci.branch_prefix = ci
        .branch_prefix
        .take()
        .or(fill("branch_prefix", "branch-prefix"));
    ci.github_token = ci
        .github_token
        .take()
        .or(fill("github_token", "github-token"));
    ci.github_app_id = ci.github_app_id.take().or(fill("github_app_id", "app-id"));
    ci.github_app_private_key = ci
        .github_app_private_key
        .take()
        .or(fill("github_app_private_key", "app-private-key"));
    if let Some(v) = fill("timeout_minutes", "timeout-minutes") {
        ci.timeout_minutes = Some(v.trim().parse().map_err(|_| {
            BadInput::new(format!(
                "input timeout-minutes is '{v}': use a number of minutes"
            ))
        })?);
    }
    Ok(())
}

fn settings(ci: &CiArgs) -> Result<CiSettings, BadInput> {
    let list = |v: &Option<String>| -> Vec<String> {
        v.as_deref()
            .unwrap_or("")
            .split([',', '\n', ' '])
            .map(|s| s.trim().trim_start_matches('@').to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let allow_bots = match ci.allow_bots.as_deref().map(str::trim) {
        None | Some("") | Some("false") => BotPolicy::Refuse,
        Some("true") | Some("*") => BotPolicy::Any,
        Some(_) => BotPolicy::Named(list(&ci.allow_bots)),
    };
    let draft_pr = match ci.draft_pr.as_deref().map(str::trim) {
        None | Some("") | Some("true") => true,
        Some("false") => false,
        Some(other) => {
            return Err(BadInput::new(format!(
                "draft-pr is '{other}': use true or false"
            )))
        }
    };
    let timeout = match ci.timeout_minutes {
        Some(0.0) | None => None,
        Some(m) => Some(crate::duration::minutes("timeout-minutes", m).map_err(BadInput::new)?),
    };
    let issue_number = match ci.issue_number.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(n) => Some(
            n.trim_start_matches('#')
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    BadInput::new(format!(
                        "issue-number is '{n}': use the number of an issue of this repository"
                    ))
                })?,
        ),
    };
    let phrase = ci.trigger_phrase.clone().filter(|p| !p.trim().is_empty());
    Ok(CiSettings {
        mode: ci.mode.unwrap_or(Mode::Auto),
        trigger_phrase: phrase.unwrap_or_else(|| "@sandcrab".to_string()),
        label: ci
            .trigger_label
            .clone()
            .unwrap_or_else(|| "sandcrab".to_string()),
        allowed_users: list(&ci.allowed_users),
        allow_bots,
        draft_pr,
        branch_prefix: ci
            .branch_prefix
            .clone()
            .unwrap_or_else(|| "sandcrab/".to_string()),
        timeout,
        issue_number,
    })
}

fn github_env(ci: &CiArgs) -> Result<GithubEnv, BadInput> {
    let repository = env("GITHUB_REPOSITORY").ok_or_else(|| {
        BadInput::new("GITHUB_REPOSITORY is not set: sandcrab --ci-platform github runs inside GitHub Actions (or set it to owner/name)")
    })?;
    let event_name = env("GITHUB_EVENT_NAME").ok_or_else(|| {
        BadInput::new("GITHUB_EVENT_NAME is not set: sandcrab --ci-platform github runs inside GitHub Actions")
    })?;
    let retention_days = env("GITHUB_RETENTION_DAYS").and_then(|d| d.trim().parse().ok());
    Ok(GithubEnv {
        api_url: env("GITHUB_API_URL").unwrap_or_else(|| "https://api.github.com".into()),
        server_url: env("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".into()),
        repository,
        event_name,
        event_path: env("GITHUB_EVENT_PATH").map(PathBuf::from),
        run_id: env("GITHUB_RUN_ID"),
        token: ci.github_token.clone().filter(|t| !t.is_empty()),
        app: github_app(ci)?,
        workspace: env("GITHUB_WORKSPACE").map(PathBuf::from),
        output_file: env("GITHUB_OUTPUT").map(PathBuf::from),
        step_summary: env("GITHUB_STEP_SUMMARY").map(PathBuf::from),
        runtime_token: env("ACTIONS_RUNTIME_TOKEN"),
        results_url: env("ACTIONS_RESULTS_URL"),
        retention_days,
    })
}

/// The App of app-id and app-private-key: both or neither.
fn github_app(ci: &CiArgs) -> Result<Option<GithubApp>, BadInput> {
    let given = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
    match (given(&ci.github_app_id), given(&ci.github_app_private_key)) {
        (None, None) => Ok(None),
        (Some(id), Some(private_key)) => Ok(Some(GithubApp {
            id: id.trim().to_string(),
            private_key,
        })),
        (Some(_), None) => Err(BadInput::new(
            "app-id is set but app-private-key is not: pass both (the App's ID and its .pem key) or neither",
        )),
        (None, Some(_)) => Err(BadInput::new(
            "app-private-key is set but app-id is not: pass both (the App's ID and its .pem key) or neither",
        )),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// Every secret value the run knows before its config is built, masked in the log first
/// thing: the same set the run's config holds ([`super::secrets_of`]).
pub fn secrets_of(args: &RunArgs) -> crate::redact::Secrets {
    super::secrets_of(args)
}
