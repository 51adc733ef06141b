//! Uploading a GitHub Actions artifact (the "v4" artifact service), as a container action
//! can: `ACTIONS_RUNTIME_TOKEN` and `ACTIONS_RESULTS_URL` are given to container and
//! JavaScript actions only.
//!
//! One upload: check the name; zip the files (deflate, stable names and bytes); `CreateArtifact`
//! (Twirp JSON, the backend ids from the token's `Actions.Results` scope) returns a signed
//! URL; the zip goes there (one Put Blob, or blocks for large zips); `FinalizeArtifact` names
//! its size and the `sha256:` of the exact bytes uploaded and returns the artifact's id. Calls
//! are retried on 429 and 5xx. Nothing is finalized when the blob upload fails.
//!
//! The signed URL carries a signature: it is never logged nor put in an error.

mod archive;
mod blob;
mod token;
mod twirp;

use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};

pub use archive::{check_artifact_name, check_entry_name};
pub use blob::DEFAULT_BLOCK_SIZE;

use crate::http::retry::RetryPolicy;
use crate::http::ClientSpec;
use blob::BlobTarget;
use token::BackendIds;
use twirp::{CreateArtifactResponse, FinalizeArtifactResponse, TwirpClient};

/// Why an upload failed; each message is one line that says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("artifact upload: ACTIONS_RUNTIME_TOKEN is not a JWT ({0}); run sandcrab as the Docker container action on a GitHub runner, which sets it")]
    BadToken(String),
    #[error("artifact upload: ACTIONS_RUNTIME_TOKEN has no Actions.Results scope; the runner gives one to container actions only (runs.using: docker)")]
    NoResultsScope,
    #[error("artifact upload: ACTIONS_RESULTS_URL is not an http(s) URL ({0}); run sandcrab as the Docker container action on a GitHub runner, which sets it")]
    BadResultsUrl(String),
    #[error("artifact upload: retention of {0} days is invalid; give 1 or more days")]
    BadRetention(u32),
    #[error("artifact name {name:?} is invalid: {why}; use a name without \" : < > | * ? \\ / or line breaks")]
    InvalidName { name: String, why: String },
    #[error("artifact file name {entry:?} is invalid: {why}")]
    InvalidEntry { entry: String, why: String },
    #[error("artifact upload: cannot read {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("artifact upload: cannot build the zip: {0}")]
    Zip(String),
    #[error("artifact upload: {what} failed: {reason}; check the runner's network")]
    Unreachable { what: String, reason: String },
    #[error("artifact upload: {method} answered HTTP {status} ({message}); an artifact of this name may already exist in this run, or the token may have expired")]
    Service {
        method: &'static str,
        status: u16,
        message: String,
    },
    #[error("artifact upload: {method} refused the request (ok=false); an artifact of this name may already exist in this run")]
    Refused { method: &'static str },
    #[error("artifact upload: {method} sent an answer we cannot read: {why}")]
    BadAnswer { method: &'static str, why: String },
    #[error("artifact upload: the blob store answered HTTP {status} ({code}) to {operation}; the signed upload URL may have expired, try the job again")]
    BlobUpload {
        operation: &'static str,
        status: u16,
        code: String,
    },
}

/// An uploaded artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedArtifact {
    /// The service's id (for `.../actions/runs/RUN/artifacts/ID` links).
    pub id: i64,
    pub name: String,
    /// Bytes of the zip uploaded.
    pub size: u64,
    /// `sha256:<hex>` of the zip uploaded.
    pub sha256: String,
}

/// GitHub's artifact client: 5 attempts, 3 s, x1.5.
pub const DEFAULT_POLICY: RetryPolicy = RetryPolicy::new(5, Duration::from_secs(3), 1.5);

/// The artifact service of one job.
pub struct ArtifactService {
    twirp: TwirpClient,
    ids: BackendIds,
    retention_days: Option<u32>,
    block_size: usize,
}

impl ArtifactService {
    /// From `ACTIONS_RUNTIME_TOKEN`, `ACTIONS_RESULTS_URL` (only its origin is used) and the
    /// retention wanted (`None`: the repository's default).
    pub fn new(
        runtime_token: &str,
        results_url: &str,
        retention_days: Option<u32>,
    ) -> Result<Self, ArtifactError> {
        let ids = token::backend_ids(runtime_token)?;
        let origin = results_origin(results_url)?;
        if retention_days == Some(0) {
            return Err(ArtifactError::BadRetention(0));
        }
        let http = ClientSpec::new()
            .connect_timeout(Duration::from_secs(30))
            .timeout(Duration::from_secs(300))
            .build("the artifact upload")
            .map_err(|e| ArtifactError::Unreachable {
                what: "artifact upload: the HTTP client".into(),
                reason: e.reason,
            })?;
        Ok(ArtifactService {
            twirp: TwirpClient {
                http,
                origin,
                token: runtime_token.trim().to_string(),
                policy: DEFAULT_POLICY,
            },
            ids,
            retention_days,
            block_size: DEFAULT_BLOCK_SIZE,
        })
    }

    /// The waits between attempts (default: 5 attempts, 3 s, x1.5).
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.twirp.policy = policy;
        self
    }

    /// Zips over this size go up in blocks of this size (default 8 MiB).
    pub fn with_block_size(mut self, bytes: usize) -> Self {
        self.block_size = bytes.max(1);
        self
    }

    /// Zips `files` ((name inside the zip, path on disk)) and uploads them as artifact `name`.
    pub async fn upload(
        &self,
        name: &str,
        files: &[(String, PathBuf)],
    ) -> Result<UploadedArtifact, ArtifactError> {
        check_artifact_name(name)?;
        let files = files.to_vec();
        let zip = tokio::task::spawn_blocking(move || archive::zip_files(&files))
            .await
            .map_err(|e| ArtifactError::Zip(e.to_string()))??;
        let sha256 = hex(&Sha256::digest(&zip));
        let size = zip.len() as u64;
        tracing::info!("uploading artifact {name:?} ({size} bytes)");

        let create = self.ids.create_request(name, self.expires_at());
        let created: CreateArtifactResponse = self.twirp.call("CreateArtifact", &create).await?;
        if !created.ok {
            return Err(ArtifactError::Refused {
                method: "CreateArtifact",
            });
        }
        let url = signed_url(&created.signed_upload_url)?;
        BlobTarget {
            http: &self.twirp.http,
            url,
            policy: self.twirp.policy,
            block_size: self.block_size,
        }
        .upload(&zip)
        .await?;

        let finalize = self.ids.finalize_request(name, size, &sha256);
        let done: FinalizeArtifactResponse = self.twirp.call("FinalizeArtifact", &finalize).await?;
        if !done.ok {
            return Err(ArtifactError::Refused {
                method: "FinalizeArtifact",
            });
        }
        let id = twirp::artifact_id(&done).ok_or_else(|| ArtifactError::BadAnswer {
            method: "FinalizeArtifact",
            why: "no artifact_id".into(),
        })?;
        tracing::info!("uploaded artifact {name:?} (id {id})");
        Ok(UploadedArtifact {
            id,
            name: name.to_string(),
            size,
            sha256: format!("sha256:{sha256}"),
        })
    }

    /// `expires_at` for the retention wanted: now plus that many days, RFC 3339.
    fn expires_at(&self) -> Option<String> {
        let days = self.retention_days?;
        let at = chrono::Utc::now() + chrono::Duration::days(i64::from(days));
        Some(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    }
}

/// The origin of `ACTIONS_RESULTS_URL` (GitHub's client drops any path).
fn results_origin(results_url: &str) -> Result<url::Url, ArtifactError> {
    let url = url::Url::parse(results_url.trim())
        .map_err(|e| ArtifactError::BadResultsUrl(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ArtifactError::BadResultsUrl(format!(
            "scheme {:?}",
            url.scheme()
        )));
    }
    url::Url::parse(&url.origin().ascii_serialization())
        .map_err(|e| ArtifactError::BadResultsUrl(e.to_string()))
}

/// The signed upload URL, checked without ever printing it.
fn signed_url(text: &str) -> Result<url::Url, ArtifactError> {
    let bad = |why: &str| ArtifactError::BadAnswer {
        method: "CreateArtifact",
        why: format!("the signed upload URL {why}"),
    };
    let url = url::Url::parse(text).map_err(|_| bad("is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("is not http(s)"));
    }
    Ok(url)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_origin_of_the_results_url_is_kept() {
        let origin =
            results_origin("https://results-receiver.actions.githubusercontent.com/some/path/")
                .unwrap();
        assert_eq!(
            origin.as_str(),
            "https://results-receiver.actions.githubusercontent.com/"
        );
        let local = results_origin("http://127.0.0.1:8123/x").unwrap();
        assert_eq!(local.as_str(), "http://127.0.0.1:8123/");
        for bad in ["", "not a url", "ftp://host/", "file:///tmp"] {
            assert!(results_origin(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bad_signed_url_is_reported_without_its_text() {
        let e = signed_url("gopher://host/x?sig=SECRETSIG")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("SECRETSIG"), "{e}");
        let e = signed_url("::sig=SECRETSIG").unwrap_err().to_string();
        assert!(!e.contains("SECRETSIG"), "{e}");
    }
}
