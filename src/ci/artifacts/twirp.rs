//! The artifact service's Twirp JSON API: `POST {origin}/twirp/github.actions.results.api.v1.
//! ArtifactService/{Method}` with the runtime token as a bearer token and protobuf field names
//! (snake_case) in the JSON; int64 values travel as strings, unknown fields are ignored.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::token::BackendIds;
use super::ArtifactError;
use crate::http::retry::{self, Idempotency, RetryPolicy};

const SERVICE_PATH: &str = "twirp/github.actions.results.api.v1.ArtifactService";

/// `CreateArtifact`'s request.
#[derive(Debug, Serialize)]
pub struct CreateArtifactRequest<'a> {
    pub workflow_run_backend_id: &'a str,
    pub workflow_job_run_backend_id: &'a str,
    pub name: &'a str,
    pub version: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// `CreateArtifact`'s answer: where to put the zip.
#[derive(Debug, Deserialize)]
pub struct CreateArtifactResponse {
    #[serde(default)]
    pub ok: bool,
    #[serde(default)]
    pub signed_upload_url: String,
}

/// `FinalizeArtifact`'s request: `size` is an int64, so a string in JSON.
#[derive(Debug, Serialize)]
pub struct FinalizeArtifactRequest<'a> {
    pub workflow_run_backend_id: &'a str,
    pub workflow_job_run_backend_id: &'a str,
    pub name: &'a str,
    pub size: String,
    pub hash: String,
}

/// `FinalizeArtifact`'s answer: the artifact's id (an int64, usually a string).
#[derive(Debug, Deserialize)]
pub struct FinalizeArtifactResponse {
    #[serde(default)]
    pub ok: bool,
    #[serde(default)]
    pub artifact_id: Option<serde_json::Value>,
}

/// A Twirp error body.
#[derive(Debug, Deserialize)]
struct TwirpError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    msg: String,
}

/// The service at one origin, with one runtime token.
pub struct TwirpClient {
    pub http: reqwest::Client,
    pub origin: url::Url,
    pub token: String,
    pub policy: RetryPolicy,
}

impl TwirpClient {
    /// Calls `method` with `request`; retries on 429 and 5xx. Every call is idempotent: the
    /// service keys an artifact by its name in the run, so a repeated `CreateArtifact` is
    /// refused (`ok=false`) rather than making a second one, and a repeated finalize names
    /// the same bytes.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        method: &'static str,
        request: &Req,
    ) -> Result<Resp, ArtifactError> {
        let url = self
            .origin
            .join(&format!("{SERVICE_PATH}/{method}"))
            .map_err(|e| ArtifactError::BadResultsUrl(e.to_string()))?;
        let what = format!("artifact service {method}");
        let response = retry::send(&self.policy, Idempotency::Idempotent, &what, || {
            self.http
                .post(url.clone())
                .bearer_auth(&self.token)
                .json(request)
        })
        .await
        .map_err(|reason| ArtifactError::Unreachable {
            what: what.clone(),
            reason,
        })?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(ArtifactError::Service {
                method,
                status,
                message: error_message(&body),
            });
        }
        serde_json::from_str(&body).map_err(|e| ArtifactError::BadAnswer {
            method,
            why: e.to_string(),
        })
    }
}

impl BackendIds {
    pub fn create_request<'a>(
        &'a self,
        name: &'a str,
        expires_at: Option<String>,
    ) -> CreateArtifactRequest<'a> {
        CreateArtifactRequest {
            workflow_run_backend_id: &self.workflow_run_backend_id,
            workflow_job_run_backend_id: &self.workflow_job_run_backend_id,
            name,
            version: 4,
            expires_at,
        }
    }

    pub fn finalize_request<'a>(
        &'a self,
        name: &'a str,
        size: u64,
        sha256_hex: &str,
    ) -> FinalizeArtifactRequest<'a> {
        FinalizeArtifactRequest {
            workflow_run_backend_id: &self.workflow_run_backend_id,
            workflow_job_run_backend_id: &self.workflow_job_run_backend_id,
            name,
            size: size.to_string(),
            hash: format!("sha256:{sha256_hex}"),
        }
    }
}

/// The artifact id of a `FinalizeArtifact` answer (a string or a number).
pub fn artifact_id(response: &FinalizeArtifactResponse) -> Option<i64> {
    match response.artifact_id.as_ref()? {
        serde_json::Value::String(s) => s.parse().ok(),
        serde_json::Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// A Twirp error's `code: msg`, or the short detail of a body that is not one.
fn error_message(body: &str) -> String {
    match serde_json::from_str::<TwirpError>(body) {
        Ok(e) if !e.msg.is_empty() || !e.code.is_empty() => format!("{}: {}", e.code, e.msg),
        _ => crate::http::detail(body),
    }
}
