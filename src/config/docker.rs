//! `DockerArgs`: the options of the Docker workspace (`--image`, limits, network, labels...),
//! flattened into `sandcrab run`.

use std::path::PathBuf;

use clap::Args;

/// Options of the Docker workspace.
#[derive(Debug, Clone, Args)]
pub struct DockerArgs {
    /// The sandbox image (any local image: the agent-server is copied in, nothing is built).
    #[arg(
        long,
        default_value = "buildpack-deps:bookworm-scm",
        env = "SANDCRAB_IMAGE"
    )]
    pub image: String,

    /// The static sandcrab binary copied into the sandbox [default: this binary]
    #[arg(long, env = "SANDCRAB_SANDBOX_BINARY")]
    pub sandbox_binary: Option<PathBuf>,

    /// Environment variables passed into the sandbox, by name (repeat, or comma-separate).
    #[arg(
        long = "forward-env",
        env = "SANDCRAB_FORWARD_ENV",
        value_delimiter = ','
    )]
    pub forward_env: Vec<String>,

    /// Memory limit of the sandbox, e.g. 2g, 512m.
    #[arg(long, env = "SANDCRAB_MEMORY")]
    pub memory: Option<String>,

    /// CPUs of the sandbox, e.g. 1.5.
    #[arg(long, env = "SANDCRAB_CPUS")]
    pub cpus: Option<f64>,

    /// Most processes the sandbox may run.
    #[arg(long, env = "SANDCRAB_PIDS_LIMIT")]
    pub pids_limit: Option<i64>,

    /// User inside the sandbox (name or uid[:gid]).
    #[arg(long, env = "SANDCRAB_SANDBOX_USER")]
    pub sandbox_user: Option<String>,

    /// Docker network mode of the sandbox (default: a per-run internal network, no route out;
    /// an explicit mode publishes its server on 127.0.0.1 instead).
    #[arg(long, env = "SANDCRAB_NETWORK")]
    pub network: Option<String>,

    /// Image platform, e.g. linux/amd64.
    #[arg(long, env = "SANDCRAB_PLATFORM")]
    pub platform: Option<String>,

    /// Extra container labels KEY=VALUE (repeat).
    #[arg(long = "label", value_delimiter = ',')]
    pub labels: Vec<String>,

    /// Keep the sandbox of a failed run for debugging (its id is printed).
    #[arg(long, env = "SANDCRAB_KEEP_ON_FAILURE")]
    pub keep_on_failure: bool,
}
