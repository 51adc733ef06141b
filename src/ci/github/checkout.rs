//! Git in the runner's checkout (`GITHUB_WORKSPACE`, or GitLab's `CI_PROJECT_DIR`): commit a
//! patch onto a given commit without touching the working tree or the index (a temporary
//! index and `commit-tree`), fetch a branch and push a commit to `origin` (or to the remote
//! URL given with [`Checkout::with_remote`]: GitLab's `origin` carries the job token, so the
//! GitLab side pushes to the same URL without it).
//!
//! Auth for https remotes: an `http.<origin>/.extraheader` with the token (Basic, user
//! `x-access-token` on GitHub, `oauth2` on GitLab), passed through
//! `GIT_CONFIG_COUNT/KEY/VALUE` in git's environment: never written to `.git/config`, never
//! in argv (where `ps` would show it).
//!
//! Every command goes through `runner_git` (no hooks, fsmonitor or filters of the checkout the
//! agent may have edited; an allowlisted environment without the model key).

use std::path::{Path, PathBuf};

use crate::redact::Redactor;
use base64::Engine;

#[derive(Debug, thiserror::Error)]
#[error("git {what} failed: {detail}")]
pub struct GitError {
    pub what: String,
    pub detail: String,
}

/// The branch a resolve run pushes: `{prefix}{number}-{id}` for an issue or pull request,
/// `{prefix}run-{id}` otherwise, `id` the first eight alphanumerics of the conversation id.
pub fn work_branch(prefix: &str, number: Option<u64>, conversation_id: &str) -> String {
    let short: String = conversation_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect();
    match number {
        Some(n) => format!("{prefix}{n}-{short}"),
        None => format!("{prefix}run-{short}"),
    }
}

/// The runner's commit message: the summary's first non-empty line (72 characters at most),
/// then `sandcrab run for {reference}` (`#12`, `!7`) when the run is about one.
pub fn commit_message(summary: Option<&str>, reference: Option<String>) -> String {
    let first = summary
        .and_then(|s| s.lines().find(|l| !l.trim().is_empty()))
        .unwrap_or("changes by sandcrab");
    let subject: String = first.trim().chars().take(72).collect();
    match reference {
        Some(r) => format!("{subject}\n\nsandcrab run for {r}"),
        None => subject,
    }
}

/// The identity of the runner's commits.
const AUTHOR: (&str, &str) = (
    "github-actions[bot]",
    "41898282+github-actions[bot]@users.noreply.github.com",
);

pub struct Checkout {
    dir: PathBuf,
    token: Option<String>,
    redactor: Redactor,
    /// `origin`, or a remote URL (without credentials).
    remote: String,
    /// The Basic user name sent with the token.
    user: &'static str,
    author: (String, String),
}

impl Checkout {
    pub fn new(dir: &Path, token: Option<String>, redactor: Redactor) -> Self {
        Checkout {
            dir: dir.to_path_buf(),
            token,
            redactor,
            remote: "origin".into(),
            user: "x-access-token",
            author: (AUTHOR.0.into(), AUTHOR.1.into()),
        }
    }

    /// Fetches from and pushes to `url` instead of `origin`, sending the token as Basic auth
    /// for `user`.
    pub fn with_remote(mut self, url: &str, user: &'static str) -> Self {
        self.remote = url.to_string();
        self.user = user;
        self
    }

    /// The name and email of the commits made.
    pub fn with_author(mut self, name: &str, email: &str) -> Self {
        self.author = (name.into(), email.into());
        self
    }

    /// A commit of `patch` applied onto `parent`, with `message`; returns its sha.
    pub async fn commit_patch(
        &self,
        parent: &str,
        patch: &str,
        message: &str,
    ) -> Result<String, GitError> {
        // The index and the patch in a private (0700) directory, removed on drop.
        let scratch = tempfile::Builder::new()
            .prefix("sandcrab-commit-")
            .tempdir()
            .and_then(|dir| std::fs::write(dir.path().join("patch"), patch).map(|()| dir))
            .map_err(|e| GitError {
                what: "commit".into(),
                detail: format!("cannot write the patch: {e}"),
            })?;
        let (index, patch_file) = (scratch.path().join("index"), scratch.path().join("patch"));
        let idx = [("GIT_INDEX_FILE", index.to_string_lossy().into_owned())];
        self.git(&["read-tree", parent], &idx, "read-tree").await?;
        let patch_path = patch_file.to_string_lossy().into_owned();
        self.git(
            &["apply", "--cached", "--binary", &patch_path],
            &idx,
            "apply (the patch does not apply on this commit)",
        )
        .await?;
        let tree = self.git(&["write-tree"], &idx, "write-tree").await?;
        let ident = [
            ("GIT_AUTHOR_NAME", self.author.0.clone()),
            ("GIT_AUTHOR_EMAIL", self.author.1.clone()),
            ("GIT_COMMITTER_NAME", self.author.0.clone()),
            ("GIT_COMMITTER_EMAIL", self.author.1.clone()),
        ];
        self.git(
            &["commit-tree", tree.trim(), "-p", parent, "-m", message],
            &ident,
            "commit-tree",
        )
        .await
        .map(|s| s.trim().to_string())
    }

    /// Fetches `branch` from origin; returns its tip.
    pub async fn fetch_branch(&self, branch: &str) -> Result<String, GitError> {
        let auth = self.auth_env().await;
        let refspec = format!("refs/heads/{branch}");
        self.git(
            &["fetch", "--quiet", "--no-tags", &self.remote, &refspec],
            &auth,
            "fetch",
        )
        .await?;
        self.git(&["rev-parse", "FETCH_HEAD^{commit}"], &[], "rev-parse")
            .await
            .map(|s| s.trim().to_string())
    }

    /// Pushes `sha` to `branch` on origin (a fast-forward or a new branch; never forced).
    pub async fn push(&self, sha: &str, branch: &str) -> Result<(), GitError> {
        let auth = self.auth_env().await;
        let refspec = format!("{sha}:refs/heads/{branch}");
        self.git(&["push", "--quiet", &self.remote, &refspec], &auth, "push")
            .await
            .map(|_| ())
    }

    pub async fn head(&self) -> Result<String, GitError> {
        self.git(&["rev-parse", "HEAD"], &[], "rev-parse")
            .await
            .map(|s| s.trim().to_string())
    }

    /// Whether `name` is a valid branch name.
    pub async fn valid_branch(&self, name: &str) -> bool {
        self.git(
            &["check-ref-format", "--branch", name],
            &[],
            "check-ref-format",
        )
        .await
        .is_ok()
    }

    /// The remote fetched from and pushed to: `origin` or a URL.
    pub(crate) fn remote(&self) -> &str {
        &self.remote
    }

    /// The auth header env for the remote, when it is an https remote and a token is set.
    pub(crate) async fn auth_env(&self) -> Vec<(&'static str, String)> {
        let Some(token) = &self.token else {
            return Vec::new();
        };
        let url = match url::Url::parse(&self.remote) {
            Ok(_) => self.remote.clone(),
            Err(_) => match self
                .git(&["remote", "get-url", &self.remote], &[], "remote")
                .await
            {
                Ok(url) => url,
                Err(_) => return Vec::new(),
            },
        };
        auth_config_for(url.trim(), self.user, token)
    }

    /// Runs runner-side git in the checkout (see `runner_git`); stdout, or the redacted error.
    pub(crate) async fn git(
        &self,
        args: &[&str],
        env: &[(&str, String)],
        what: &str,
    ) -> Result<String, GitError> {
        let mut cmd = crate::runner_git::tokio_command(&self.dir);
        cmd.args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().await.map_err(|e| GitError {
            what: what.into(),
            detail: format!("cannot run git: {e}"),
        })?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(GitError {
                what: what.into(),
                detail: self.redactor.redact(stderr.trim()).replace('\n', " "),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// `GIT_CONFIG_*` variables that set the token as the extra header of `url`'s origin (an
/// empty value first, so a header actions/checkout persisted is replaced, not doubled).
pub fn auth_config(url: &str, token: &str) -> Vec<(&'static str, String)> {
    auth_config_for(url, "x-access-token", token)
}

/// [`auth_config`] with Basic user `user`.
pub fn auth_config_for(url: &str, user: &str, token: &str) -> Vec<(&'static str, String)> {
    let Ok(parsed) = url::Url::parse(url) else {
        return Vec::new();
    };
    if parsed.scheme() != "https" && parsed.scheme() != "http" {
        return Vec::new();
    }
    let origin = parsed.origin().ascii_serialization();
    let key = format!("http.{origin}/.extraheader");
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"));
    vec![
        ("GIT_CONFIG_COUNT", "2".to_string()),
        ("GIT_CONFIG_KEY_0", key.clone()),
        ("GIT_CONFIG_VALUE_0", String::new()),
        ("GIT_CONFIG_KEY_1", key),
        (
            "GIT_CONFIG_VALUE_1",
            format!("AUTHORIZATION: basic {basic}"),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_remotes_get_the_token_in_env_only() {
        let env = auth_config("https://github.com/o/r.git", "ghs_secret");
        assert_eq!(env[0], ("GIT_CONFIG_COUNT", "2".to_string()));
        assert_eq!(env[1].1, "http.https://github.com/.extraheader");
        assert_eq!(env[2].1, "");
        let header = &env[4].1;
        let b64 = header.strip_prefix("AUTHORIZATION: basic ").unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(decoded, b"x-access-token:ghs_secret");
        assert!(auth_config("/tmp/origin.git", "t").is_empty());
        assert!(auth_config("git@github.com:o/r.git", "t").is_empty());
    }
}
