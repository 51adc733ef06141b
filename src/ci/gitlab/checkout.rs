//! The checkout a GitLab runner leaves in `CI_PROJECT_DIR` (a shallow fetch, `GIT_DEPTH`
//! commits, and a detached HEAD at `CI_COMMIT_SHA`; `origin` is
//! `https://gitlab-ci-token:<CI_JOB_TOKEN>@host/group/project.git`), made fit for a run:
//!
//! - `origin` loses its credentials before the agent runs (the job token must not reach the
//!   sandbox through `.git/config`); the runner sets the URL again for the next job.
//! - Fetches and pushes go to that URL without credentials, with the API token as Basic auth
//!   for the user `oauth2` in git's environment (see `ci::github::checkout`), never in argv.
//! - A merge request's head (`refs/merge-requests/<iid>/head`, there for forks too) and its
//!   target branch are fetched, deepening the shallow history until they meet, as on GitHub.

use std::path::Path;

use crate::ci::github::checkout::{Checkout, GitError};
use crate::ci::github::pr_checkout::{fetch_head_and_base, HeadSpec};
use crate::ci::gitlab::MergeRequest;
use crate::redact::Redactor;

/// The Basic user that goes with an access token on GitLab's git over HTTP.
pub const GIT_USER: &str = "oauth2";

/// `url` without user name and password; `None` when it is not an http(s) URL.
pub fn without_credentials(url: &str) -> Option<String> {
    let mut parsed = url::Url::parse(url.trim()).ok()?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return None;
    }
    parsed.set_username("").ok()?;
    parsed.set_password(None).ok()?;
    Some(parsed.to_string())
}

/// Takes credentials out of `origin`'s URL in `dir`; returns the clean URL (`None`: no git
/// checkout, or an `origin` that is not http(s)).
pub async fn scrub_origin(dir: &Path, redactor: &Redactor) -> Option<String> {
    let checkout = Checkout::new(dir, None, redactor.clone());
    let url = checkout
        .git(&["remote", "get-url", "origin"], &[], "remote")
        .await
        .ok()?;
    let clean = without_credentials(&url)?;
    if clean != url.trim() {
        let set = checkout
            .git(&["remote", "set-url", "origin", &clean], &[], "remote")
            .await;
        match set {
            Ok(_) => eprintln!(
                "sandcrab: GitLab CI: took the job token out of origin's URL before the agent runs"
            ),
            Err(e) => eprintln!("sandcrab: warning: cannot take the job token out of origin's URL ({e}); use a container workspace"),
        }
    }
    Some(clean)
}

/// The checkout in `dir`, fetching from and pushing to `remote` with `token`.
pub fn checkout(
    dir: &Path,
    remote: &str,
    token: Option<String>,
    redactor: Redactor,
    server: &str,
) -> Checkout {
    let host = url::Url::parse(server)
        .ok()
        .and_then(|u| u.host_str().map(String::from))
        .unwrap_or_else(|| "gitlab.invalid".into());
    Checkout::new(dir, token, redactor)
        .with_remote(remote, GIT_USER)
        .with_author("sandcrab", &format!("sandcrab@noreply.{host}"))
}

/// Fetches and checks out `mr`'s head (as its source branch when `as_branch`, so a push
/// fast-forwards it; detached otherwise); returns the head and the merge base.
pub async fn check_out_merge_request(
    checkout: &Checkout,
    mr: &MergeRequest,
    as_branch: bool,
) -> Result<(String, String), GitError> {
    for name in [&mr.source_branch, &mr.target_branch] {
        if !checkout.valid_branch(name).await {
            return Err(GitError {
                what: "fetch".into(),
                detail: format!("'{name}' is not a valid branch name"),
            });
        }
    }
    let spec = HeadSpec {
        head_source: format!("refs/merge-requests/{}/head", mr.iid),
        head_ref: format!("refs/remotes/origin/merge-requests/{}/head", mr.iid),
        base_branch: mr.target_branch.clone(),
        branch: as_branch.then(|| mr.source_branch.clone()),
    };
    fetch_head_and_base(checkout, &spec).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_token_comes_out_of_the_url() {
        assert_eq!(
            without_credentials(
                "https://gitlab-ci-token:glcbt-SECRET@gitlab.example/group/app.git"
            )
            .as_deref(),
            Some("https://gitlab.example/group/app.git")
        );
        assert_eq!(
            without_credentials("http://127.0.0.1:9/group/app.git\n").as_deref(),
            Some("http://127.0.0.1:9/group/app.git")
        );
        assert_eq!(
            without_credentials("git@gitlab.example:group/app.git"),
            None
        );
        assert_eq!(without_credentials("/tmp/repo.git"), None);
    }
}
