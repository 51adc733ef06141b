//! `ControlApi`: the HTTP client of a sandbox provider's control plane (OpenHands Cloud's
//! `/api/v1/sandboxes`, a Runtime API's `/start`, `/sessions`...), as opposed to the
//! agent-server inside the sandbox (`ServerApi`). It adds the provider's auth header to every
//! call (Cloud: `Authorization: Bearer KEY`; Runtime API: `X-API-Key: KEY`) and turns a failed
//! call into a [`ControlError`] that says what failed, why, and what to do.
//!
//! [`START_POLL`] is the polling schedule used while a sandbox starts (100 ms doubling to 2 s).

use std::time::Duration;

use reqwest::{Client, Method, RequestBuilder, StatusCode};

use crate::http::retry::RetryPolicy;
use crate::http::{detail, error_chain};
use serde_json::Value;

use super::WorkspaceError;

/// Timeout of one control-plane call (the SDK's `api_timeout` default).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How a provider authenticates the runner.
#[derive(Clone)]
pub enum ControlAuth {
    /// `Authorization: Bearer KEY` (OpenHands Cloud).
    Bearer(String),
    /// `X-API-Key: KEY` (the Runtime API).
    ApiKey(String),
}

/// A failed control-plane call. Callers branch on `Unauthorized` and `NotFound`.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{service} refused the API key ({what}: HTTP {status}); check {flag}")]
    Unauthorized {
        service: &'static str,
        what: String,
        status: u16,
        flag: &'static str,
    },
    #[error("{service} has no such resource ({what}: HTTP 404): {detail}")]
    NotFound {
        service: &'static str,
        what: String,
        detail: String,
    },
    #[error("{what} on {service} failed: HTTP {status}: {detail}")]
    Http {
        service: &'static str,
        what: String,
        status: u16,
        detail: String,
    },
    #[error("cannot reach {service} at {url} ({what}): {reason}; check the URL and the network")]
    Unreachable {
        service: &'static str,
        url: String,
        what: String,
        reason: String,
    },
    #[error("{service} sent an unexpected answer to {what}: {reason}")]
    Malformed {
        service: &'static str,
        what: String,
        reason: String,
    },
}

impl From<ControlError> for WorkspaceError {
    fn from(e: ControlError) -> Self {
        WorkspaceError::Provider(e)
    }
}

/// One provider's control plane: base URL, auth, one pooled client.
#[derive(Clone)]
pub struct ControlApi {
    client: Client,
    base: String,
    auth: ControlAuth,
    service: &'static str,
    /// The flag that sets the key, named in auth errors.
    key_flag: &'static str,
}

impl ControlApi {
    pub fn new(
        service: &'static str,
        base_url: &str,
        auth: ControlAuth,
        key_flag: &'static str,
    ) -> Result<Self, WorkspaceError> {
        Ok(ControlApi {
            client: super::server_api::http_client()?,
            base: base_url.trim_end_matches('/').to_string(),
            auth,
            service,
            key_flag,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The same API with a new connection pool: for calls made from another runtime (a
    /// release on `Drop` or in a signal handler), where the old pool's connections are dead.
    pub fn fresh(&self) -> Result<Self, WorkspaceError> {
        Self::new(self.service, &self.base, self.auth.clone(), self.key_flag)
    }

    pub fn service(&self) -> &'static str {
        self.service
    }

    /// A request to `path` (starting with `/`) with the provider's auth header.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self
            .client
            .request(method, format!("{}{path}", self.base))
            .timeout(CALL_TIMEOUT);
        match &self.auth {
            ControlAuth::Bearer(key) => rb.bearer_auth(key),
            ControlAuth::ApiKey(key) => rb.header("X-API-Key", key),
        }
    }

    /// A request to `path` without the provider's auth header (for calls that authenticate
    /// otherwise, e.g. Cloud's sandbox settings with the session key only).
    pub fn bare(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .timeout(CALL_TIMEOUT)
    }

    /// Sends a request; a 2xx answer is decoded as JSON (an empty body is `null`).
    pub async fn send_json(&self, what: &str, rb: RequestBuilder) -> Result<Value, ControlError> {
        let resp = rb.send().await.map_err(|e| ControlError::Unreachable {
            service: self.service,
            url: self.base.clone(),
            what: what.to_string(),
            reason: error_chain(&e),
        })?;
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if status.is_success() {
            if body.trim().is_empty() {
                return Ok(Value::Null);
            }
            return serde_json::from_str(&body).map_err(|e| ControlError::Malformed {
                service: self.service,
                what: what.to_string(),
                reason: e.to_string(),
            });
        }
        Err(self.failure(what, status, &body))
    }

    fn failure(&self, what: &str, status: StatusCode, body: &str) -> ControlError {
        let (service, what) = (self.service, what.to_string());
        let detail = detail(body);
        match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ControlError::Unauthorized {
                service,
                what,
                status: status.as_u16(),
                flag: self.key_flag,
            },
            StatusCode::NOT_FOUND => ControlError::NotFound {
                service,
                what,
                detail,
            },
            _ => ControlError::Http {
                service,
                what,
                status: status.as_u16(),
                detail,
            },
        }
    }

    /// A `Malformed` error for `what`.
    pub fn malformed(&self, what: &str, reason: impl Into<String>) -> ControlError {
        ControlError::Malformed {
            service: self.service,
            what: what.to_string(),
            reason: reason.into(),
        }
    }
}

/// The polling schedule while a sandbox starts: 100 ms, doubling, at most 2 s (walk it with
/// `START_POLL.schedule()`).
pub const START_POLL: RetryPolicy =
    RetryPolicy::new(1, Duration::from_millis(100), 2.0).cap(Duration::from_secs(2));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_say_what_to_do() {
        let api = ControlApi::new(
            "OpenHands Cloud",
            "http://x/",
            ControlAuth::Bearer("k".into()),
            "--cloud-api-key",
        )
        .unwrap();
        assert_eq!(api.base_url(), "http://x");
        let e = api.failure("POST /api/v1/sandboxes", StatusCode::UNAUTHORIZED, "");
        assert!(matches!(e, ControlError::Unauthorized { status: 401, .. }));
        assert!(e.to_string().contains("check --cloud-api-key"), "{e}");
        let e = api.failure("GET x", StatusCode::NOT_FOUND, r#"{"detail":"gone"}"#);
        assert!(matches!(e, ControlError::NotFound { .. }));
        assert!(e.to_string().contains("gone"));
        let e = api.failure("GET x", StatusCode::BAD_GATEWAY, "upstream down");
        assert!(e.to_string().contains("HTTP 502: upstream down"), "{e}");
    }
}
