//! The end of a GitHub run: artifacts, the final comment, the job's outputs
//! (`GITHUB_OUTPUT`, see [`super::outputs`]) and the step
//! summary; and the short ends (skip, refusal, a run that could not start).

use std::path::PathBuf;

use anyhow::Result;

use crate::ci::artifacts::ArtifactService;
use crate::ci::feedback::Feedback;
use crate::ci::render::{self, Links, GITHUB_COMMENT_LIMIT};
use crate::config::ci::GithubEnv;
use crate::config::RunConfig;
use crate::error::ExitCode;
use crate::redact::Redactor;
use crate::run::RunOutcome;

use super::commands;
use super::outputs::{self, Conclusion, Output};
use super::publish::Published;

/// `GITHUB_SERVER_URL/REPO/actions/runs/RUN_ID`.
pub fn run_url(gh: &GithubEnv) -> Option<String> {
    let id = gh.run_id.as_ref()?;
    Some(format!(
        "{}/{}/actions/runs/{id}",
        gh.server_url.trim_end_matches('/'),
        gh.repository
    ))
}

/// A skip or a refusal: one line, `conclusion`, exit 0.
pub fn stop(gh: &GithubEnv, conclusion: Conclusion, why: &str) -> Result<ExitCode> {
    eprintln!("sandcrab: {}: {why}", conclusion.as_str());
    write_outputs(
        gh,
        &[
            (Output::Conclusion, conclusion.as_str().to_string()),
            (Output::Reason, why.to_string()),
        ],
    );
    Ok(ExitCode::Finished)
}

/// The run could not start or broke: say so in the comment, the log and the outputs.
pub async fn failed_run(
    gh: &GithubEnv,
    feedback: &mut dyn Feedback,
    redactor: &Redactor,
    error: &anyhow::Error,
) -> Result<ExitCode> {
    let message = redactor.redact(&format!("{error:#}")).replace('\n', " ");
    commands::error(&message);
    let links = Links {
        run: run_url(gh),
        ..Links::default()
    };
    let body = render::final_body(
        &format!("## sandcrab: ❌ could not run\n\n{message}\n"),
        &links,
        &[],
        GITHUB_COMMENT_LIMIT - super::api::MARKER_ROOM,
    );
    let comment_url = feedback.finish(&body).await.unwrap_or_default();
    write_outputs(
        gh,
        &[
            (Output::Conclusion, Conclusion::Failure.as_str().into()),
            (Output::CommentUrl, comment_url),
        ],
    );
    Err(anyhow::anyhow!(message))
}

pub async fn finish(
    gh: &GithubEnv,
    feedback: &mut dyn Feedback,
    config: &RunConfig,
    outcome: &RunOutcome,
    published: Published,
) -> Result<ExitCode> {
    let artifact = upload(gh, outcome).await;
    let mut report = std::fs::read_to_string(&outcome.outputs.report).unwrap_or_default();
    if let (Some(raw), Some(summary)) = (&outcome.result.summary, &published.review_summary) {
        // Both already inert: the report's copy and the review's (made so when posted).
        let shown = crate::report::markdown::summary_markdown(raw);
        report = report.replacen(&shown, summary, 1);
    }
    let links = Links {
        run: run_url(gh),
        pull_request: published.pull_request.clone(),
        branch: published.branch.clone(),
        review: published.review.clone(),
        artifact,
        report_page: None,
    };
    let redactor = Redactor::new(config.secrets.iter().cloned());
    let body = redactor.redact(&render::final_body(
        &report,
        &links,
        &published.notes,
        GITHUB_COMMENT_LIMIT - super::api::MARKER_ROOM,
    ));
    let comment_url = match feedback.finish(&body).await {
        Ok(url) => url,
        Err(e) => {
            eprintln!("sandcrab: warning: {e:#}");
            String::new()
        }
    };
    let failure = match (outcome.exit_code, &published.error) {
        (ExitCode::Finished, None) => None,
        (ExitCode::Finished, Some(e)) => Some(e.clone()),
        _ => Some(
            outcome
                .result
                .error
                .clone()
                .unwrap_or_else(|| "the agent did not finish".into()),
        ),
    };
    if let Some(message) = &failure {
        commands::error(&redactor.redact(message));
    }
    write_outputs(
        gh,
        &[
            (
                Output::Conclusion,
                match failure {
                    Some(_) => Conclusion::Failure,
                    None => Conclusion::Success,
                }
                .as_str()
                .to_string(),
            ),
            (
                Output::Branch,
                published.branch.map(|b| b.0).unwrap_or_default(),
            ),
            (Output::PrUrl, published.pull_request.unwrap_or_default()),
            (Output::CommentUrl, comment_url),
            (Output::Cost, super::cost_of(outcome)),
            (
                Output::ResultFile,
                outcome.outputs.result.display().to_string(),
            ),
        ],
    );
    if let Some(path) = &gh.step_summary {
        if let Err(e) = commands::write_summary(path, &body) {
            eprintln!(
                "sandcrab: warning: cannot write the step summary {}: {e}",
                path.display()
            );
        }
    }
    Ok(match (outcome.exit_code, failure) {
        (ExitCode::Finished, Some(_)) => ExitCode::AgentFailed,
        (code, _) => code,
    })
}

fn write_outputs(gh: &GithubEnv, values: &[(Output, String)]) {
    outputs::write(gh.output_file.as_deref(), values);
}

/// Uploads result.json, trajectory.jsonl, changes.patch, report.md and report.html as one
/// artifact when the job has the artifact service; returns its URL.
async fn upload(gh: &GithubEnv, outcome: &RunOutcome) -> Option<String> {
    let (token, url) = (gh.runtime_token.clone()?, gh.results_url.clone()?);
    if outcome.exit_code == ExitCode::SecretInChanges {
        eprintln!("sandcrab: no artifact uploaded: the agent's changes hold a secret of this run");
        return None;
    }
    let o = &outcome.outputs;
    let files: Vec<(String, PathBuf)> = [&o.result, &o.trajectory, &o.patch, &o.report, &o.html]
        .iter()
        .filter(|p| p.exists())
        .map(|p| {
            (
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
                p.to_path_buf(),
            )
        })
        .collect();
    let short: String = outcome.result.conversation_id.chars().take(8).collect();
    let name = format!("sandcrab-{short}");
    let retention = gh.retention_days;
    let uploaded = match ArtifactService::new(&token, &url, retention) {
        Ok(service) => service.upload(&name, &files).await,
        Err(e) => Err(e),
    };
    match uploaded {
        Ok(a) => {
            eprintln!(
                "sandcrab: uploaded artifact {} ({} bytes, sha256 {})",
                a.name, a.size, a.sha256
            );
            let run = gh.run_id.as_deref().unwrap_or("0");
            Some(format!(
                "{}/{}/actions/runs/{run}/artifacts/{}",
                gh.server_url.trim_end_matches('/'),
                gh.repository,
                a.id
            ))
        }
        Err(e) => {
            eprintln!("sandcrab: warning: artifacts not uploaded: {e}");
            None
        }
    }
}
