//! `SandboxArgs`: the options of the Cloud, Runtime API and Apptainer workspaces, flattened
//! into `sandcrab run`. The two API keys are secrets: hidden in `--help`, redacted from every
//! output, never passed into a sandbox.

use std::path::PathBuf;

use clap::Args;

/// Options of the Cloud, Runtime API and Apptainer workspaces.
#[derive(Debug, Clone, Args)]
pub struct SandboxArgs {
    /// OpenHands Cloud API URL (--workspace cloud).
    #[arg(
        long,
        env = "SANDCRAB_CLOUD_URL",
        default_value = "https://app.all-hands.dev"
    )]
    pub cloud_url: String,

    /// OpenHands Cloud API key (sent as `Authorization: Bearer`).
    #[arg(long, env = "SANDCRAB_CLOUD_API_KEY", hide_env_values = true)]
    pub cloud_api_key: Option<String>,

    /// Sandbox spec (image) to start [default: the account's]
    #[arg(long, env = "SANDCRAB_CLOUD_SANDBOX_SPEC")]
    pub cloud_sandbox_spec: Option<String>,

    /// Attach to (and resume) this existing sandbox instead of creating one.
    #[arg(long, env = "SANDCRAB_CLOUD_SANDBOX_ID")]
    pub cloud_sandbox_id: Option<String>,

    /// Keep the Cloud sandbox when the run ends (resume it later with --cloud-sandbox-id).
    #[arg(long, env = "SANDCRAB_CLOUD_KEEP_ALIVE")]
    pub cloud_keep_alive: bool,

    /// Seconds a Cloud sandbox may take to be ready.
    #[arg(long, env = "SANDCRAB_CLOUD_START_TIMEOUT", default_value_t = 300)]
    pub cloud_start_timeout: u64,

    /// Account secrets given to the agent, by name (default: all); resolved in the sandbox.
    #[arg(long, env = "SANDCRAB_CLOUD_SECRETS", value_delimiter = ',')]
    pub cloud_secrets: Option<Vec<String>>,

    /// Runtime API URL (--workspace runtime-api).
    #[arg(long, env = "SANDCRAB_RUNTIME_API_URL")]
    pub runtime_api_url: Option<String>,

    /// Runtime API key (sent as `X-API-Key`).
    #[arg(long, env = "SANDCRAB_RUNTIME_API_KEY", hide_env_values = true)]
    pub runtime_api_key: Option<String>,

    /// Image of the runtime; it must hold sandcrab (or another agent-server, see --runtime-api-command).
    #[arg(long, env = "SANDCRAB_RUNTIME_API_IMAGE")]
    pub runtime_api_image: Option<String>,

    /// The agent-server's command line in the runtime image.
    #[arg(long, env = "SANDCRAB_RUNTIME_API_COMMAND", default_value = crate::workspace::runtime_api::DEFAULT_COMMAND)]
    pub runtime_api_command: String,

    /// Session id; an existing running or paused session with this id is resumed [default: new]
    #[arg(long, env = "SANDCRAB_RUNTIME_API_SESSION_ID")]
    pub runtime_api_session_id: Option<String>,

    /// Resources of the runtime: 1, 2, 4 or 8.
    #[arg(
        long,
        env = "SANDCRAB_RUNTIME_API_RESOURCE_FACTOR",
        default_value_t = 1
    )]
    pub runtime_api_resource_factor: u32,

    /// Runtime class (`none` for the service's default).
    #[arg(
        long,
        env = "SANDCRAB_RUNTIME_API_RUNTIME_CLASS",
        default_value = "sysbox-runc"
    )]
    pub runtime_api_runtime_class: String,

    /// Pause the runtime when the run ends instead of stopping it (resume it with the same
    /// --runtime-api-session-id).
    #[arg(long, env = "SANDCRAB_RUNTIME_API_PAUSE_ON_CLOSE")]
    pub runtime_api_pause_on_close: bool,

    /// Seconds a runtime may take to be ready.
    #[arg(
        long,
        env = "SANDCRAB_RUNTIME_API_START_TIMEOUT",
        default_value_t = 300
    )]
    pub runtime_api_start_timeout: u64,

    /// Apptainer: an existing .sif image (--workspace apptainer).
    #[arg(
        long,
        env = "SANDCRAB_APPTAINER_SIF",
        conflicts_with = "apptainer_image"
    )]
    pub apptainer_sif: Option<PathBuf>,

    /// Apptainer: a Docker image to build a .sif from once (docker:// implied; docker-daemon://IMG for a local one).
    #[arg(long, env = "SANDCRAB_APPTAINER_IMAGE")]
    pub apptainer_image: Option<String>,

    /// Apptainer: where built .sif files are cached, a private (0700) directory [default: $XDG_CACHE_HOME/sandcrab/apptainer]
    #[arg(long, env = "SANDCRAB_APPTAINER_CACHE")]
    pub apptainer_cache: Option<PathBuf>,

    /// Apptainer: the program to run (apptainer or singularity).
    #[arg(long, env = "SANDCRAB_APPTAINER_PROGRAM", default_value = "apptainer")]
    pub apptainer_program: PathBuf,

    /// Apptainer: extra bind specs src[:dest[:opts]] (repeat, or comma-separate).
    #[arg(
        long = "apptainer-bind",
        env = "SANDCRAB_APPTAINER_BINDS",
        value_delimiter = ','
    )]
    pub apptainer_binds: Vec<String>,

    /// Apptainer: run with --fakeroot.
    #[arg(long, env = "SANDCRAB_APPTAINER_FAKEROOT")]
    pub apptainer_fakeroot: bool,

    /// Apptainer: GPU support (--nv).
    #[arg(long, env = "SANDCRAB_APPTAINER_GPU")]
    pub apptainer_gpu: bool,
}

impl SandboxArgs {
    /// Whether a Cloud sandbox is configured (an API key is given).
    pub fn cloud_configured(&self) -> bool {
        self.cloud_api_key.as_deref().is_some_and(|k| !k.is_empty())
    }

    /// The API keys given, to redact everywhere.
    pub fn secrets(&self) -> impl Iterator<Item = String> + '_ {
        [&self.cloud_api_key, &self.runtime_api_key]
            .into_iter()
            .flatten()
            .filter(|k| !k.is_empty())
            .cloned()
    }
}
