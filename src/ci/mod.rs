//! The CI runner: `sandcrab run` on GitHub Actions (decide → progress comment → run →
//! publish → final comment → outputs and artifacts), in GitLab CI (merge request note → run →
//! final note → outputs and `sandcrab.env`), and the plain run elsewhere.
//!
//! `feedback` (the forge comment as a trait) and `render` (its Markdown) are shared by the
//! platforms; `github/` is GitHub's side; `artifacts` is the Actions artifact client;
//! `gitlab/` is GitLab's side (notes client, job context, flow). HTTP retries are
//! `crate::http::retry`.

pub mod artifacts;
pub mod feedback;
pub mod github;
pub mod gitlab;
pub mod render;

use anyhow::Result;

use crate::config::ci::{CiConfig, Platform};
use crate::config::{RunArgs, RunConfig};
use crate::error::ExitCode;

/// Runs `sandcrab run` for the platform the job is on.
pub async fn run(args: RunArgs, ci: CiConfig) -> Result<ExitCode> {
    match (ci.platform, ci.github, ci.gitlab) {
        (Platform::Github, Some(github), _) => github::run(args, ci.settings, github).await,
        (Platform::Gitlab, _, Some(job)) => gitlab::flow::run(args, ci.settings, job).await,
        _ => {
            let hooks = crate::run::RunHooks {
                timeout: ci.settings.timeout,
                ..Default::default()
            };
            let outcome = crate::run::run_with(RunConfig::from_args(args)?, hooks).await?;
            Ok(outcome.exit_code)
        }
    }
}
