//! GitHub App installation tokens: pushes made with the job's `GITHUB_TOKEN` never start the
//! repository's workflows, pushes made with an App's installation token do.
//!
//! With `app-id` and `app-private-key` the run signs an RS256 JWT with the App's key (ring,
//! PKCS#1 or PKCS#8 PEM as GitHub and `openssl` write them), finds the App's installation on
//! this repository, mints a token scoped to this one repository and to the permissions the
//! run's mode needs, and uses it for every API call and the push. The token is masked in the
//! log and redacted like every other secret; it is revoked when the run ends, also when it
//! fails (GitHub lets it expire after an hour if the job is killed first).
//!
//! Endpoints: `GET /repos/{owner}/{repo}/installation` and
//! `POST /app/installations/{id}/access_tokens` (JWT), `DELETE /installation/token` (the
//! token itself). <https://docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/generating-a-json-web-token-jwt-for-a-github-app>

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde_json::{json, Value};

use crate::config::ci::{GithubApp, Mode};
use crate::redact::Redactor;

use super::api::GithubApi;

/// GitHub refuses a JWT that lives longer than ten minutes; nine leave room for clock drift.
const JWT_LIFETIME_SECS: i64 = 9 * 60;
/// Issued a minute in the past, as GitHub advises, against a runner clock ahead of GitHub's.
const JWT_BACKDATE_SECS: i64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum AppTokenError {
    #[error("app-private-key is not a PEM RSA private key ({0}); pass the .pem file GitHub generated for the App")]
    Key(String),
    #[error("cannot sign the GitHub App JWT: {0}")]
    Sign(String),
    #[error("cannot find GitHub App {app}'s installation on {repo} ({why}); install the App on this repository")]
    NoInstallation {
        app: String,
        repo: String,
        why: String,
    },
    #[error("cannot mint a GitHub App installation token ({0}); grant the App the permissions listed in the README (GitHub App tokens)")]
    Mint(String),
}

/// A minted installation token.
#[derive(Debug, Clone)]
pub struct InstallationToken {
    pub token: String,
    pub expires_at: String,
}

/// The repository permissions a run in `mode` needs, as GitHub names them.
pub fn permissions_for(mode: Mode) -> Value {
    match mode {
        // A branch, a pull request, comments on the issue.
        Mode::Resolve | Mode::Auto => json!({
            "contents": "write",
            "pull_requests": "write",
            "issues": "write",
        }),
        // Read the code; a review and comments on the pull request.
        Mode::Review | Mode::Ask => json!({
            "contents": "read",
            "pull_requests": "write",
            "issues": "write",
        }),
    }
}

/// The JWT that authenticates as the App, issued at `now` (Unix seconds).
pub fn jwt(app_id: &str, private_key_pem: &str, now: i64) -> Result<String, AppTokenError> {
    let key = key_pair(private_key_pem)?;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let claims = json!({
        "iat": now - JWT_BACKDATE_SECS,
        "exp": now + JWT_LIFETIME_SECS,
        "iss": app_id.trim(),
    });
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{claims}");
    let mut signature = vec![0; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .map_err(|_| AppTokenError::Sign("the RSA signature failed".into()))?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

/// The key of a PEM block: `RSA PRIVATE KEY` (PKCS#1, GitHub's download) or `PRIVATE KEY`
/// (PKCS#8). A key pasted into a secret with literal `\n` for its line breaks is accepted.
fn key_pair(pem: &str) -> Result<RsaKeyPair, AppTokenError> {
    let pem = pem.replace("\\n", "\n");
    let (label, der) = pem_block(&pem).ok_or_else(|| AppTokenError::Key("no PEM block".into()))?;
    let parsed = match label.as_str() {
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(&der),
        "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&der),
        other => return Err(AppTokenError::Key(format!("a PEM block of type {other}"))),
    };
    parsed.map_err(|e| AppTokenError::Key(e.to_string()))
}

/// The label and decoded body of the first PEM block in `text`.
fn pem_block(text: &str) -> Option<(String, Vec<u8>)> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start + "-----BEGIN ".len()..];
    let label_end = rest.find("-----")?;
    let label = rest[..label_end].to_string();
    let body_and_end = &rest[label_end + 5..];
    let end = body_and_end.find(&format!("-----END {label}-----"))?;
    let body: String = body_and_end[..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    Some((label, STANDARD.decode(body).ok()?))
}

/// Mints an installation token for `repository` (`owner/name`) with `permissions`.
pub async fn mint(
    api_url: &str,
    repository: &str,
    app: &GithubApp,
    permissions: Value,
    redactor: &Redactor,
) -> Result<InstallationToken, AppTokenError> {
    let now = chrono::Utc::now().timestamp();
    let jwt = jwt(&app.id, &app.private_key, now)?;
    let mut redactor = redactor.clone();
    redactor.add([jwt.clone()]);
    let as_app = GithubApi::new(api_url, repository, Some(jwt), redactor)
        .map_err(|e| AppTokenError::Mint(e.to_string()))?;
    let installation =
        as_app
            .repo_installation()
            .await
            .map_err(|e| AppTokenError::NoInstallation {
                app: app.id.clone(),
                repo: repository.to_string(),
                why: e.to_string(),
            })?;
    let name = repository.rsplit('/').next().unwrap_or(repository);
    let body = json!({"repositories": [name], "permissions": permissions});
    let answer = as_app
        .create_installation_token(installation, body)
        .await
        .map_err(|e| AppTokenError::Mint(e.to_string()))?;
    let token = answer["token"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| AppTokenError::Mint("GitHub's answer has no token".into()))?;
    Ok(InstallationToken {
        token: token.to_string(),
        expires_at: answer["expires_at"].as_str().unwrap_or("").to_string(),
    })
}

/// Revokes `token`; a failure is a warning (the token expires within the hour anyway).
pub async fn revoke(api_url: &str, repository: &str, token: &str, redactor: &Redactor) {
    let result = match GithubApi::new(
        api_url,
        repository,
        Some(token.to_string()),
        redactor.clone(),
    ) {
        Ok(api) => api
            .revoke_installation_token()
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(()) => eprintln!("sandcrab: revoked the GitHub App installation token"),
        Err(e) => eprintln!(
            "sandcrab: warning: cannot revoke the GitHub App installation token ({}); it expires within the hour",
            redactor.redact(&e)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_block_reads_label_and_body() {
        let (label, der) = pem_block(
            "junk\n-----BEGIN RSA PRIVATE KEY-----\nAAEC\nAw==\n-----END RSA PRIVATE KEY-----\n",
        )
        .unwrap();
        assert_eq!(label, "RSA PRIVATE KEY");
        assert_eq!(der, vec![0, 1, 2, 3]);
        assert!(pem_block("-----BEGIN X-----\nAAAA\n-----END Y-----").is_none());
    }

    #[test]
    fn a_key_that_is_not_rsa_pem_is_one_clear_error() {
        let e = jwt("1", "not a key", 0).unwrap_err().to_string();
        assert!(
            e.starts_with("app-private-key is not a PEM RSA private key"),
            "{e}"
        );
        let e = jwt(
            "1",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
            0,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("CERTIFICATE"), "{e}");
    }

    #[test]
    fn review_runs_ask_for_read_only_contents() {
        assert_eq!(permissions_for(Mode::Review)["contents"], "read");
        assert_eq!(permissions_for(Mode::Resolve)["contents"], "write");
    }
}
