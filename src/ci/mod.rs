//! The CI runner: `sandcrab run` on GitHub Actions (decide → progress comment → run →
//! publish → final comment → outputs and artifacts), and the plain run elsewhere.
//!
//! `feedback` (the forge comment as a trait) and `render` (its Markdown) are shared by the
//! platforms; `github/` is GitHub's side; `artifacts` is the Actions artifact client;
//! `gitlab/` is GitLab's notes client and job context; `retry` the HTTP retry policy both use.

pub mod artifacts;
pub mod feedback;
pub mod github;
pub mod gitlab;
pub mod render;
pub mod retry;

use anyhow::Result;

use crate::config::ci::{CiConfig, Platform};
use crate::config::{RunArgs, RunConfig};
use crate::error::ExitCode;

/// Runs `sandcrab run` for the platform the job is on.
pub async fn run(args: RunArgs, ci: CiConfig) -> Result<ExitCode> {
    match (ci.platform, ci.github) {
        (Platform::Github, Some(github)) => github::run(args, ci.settings, github).await,
        (Platform::Gitlab, _) => {
            eprintln!("sandcrab: GitLab CI detected; merge-request notes are not wired yet, so this is a plain run (results in the output folder)");
            crate::run::run(RunConfig::from_args(args)?).await
        }
        _ => crate::run::run(RunConfig::from_args(args)?).await,
    }
}
