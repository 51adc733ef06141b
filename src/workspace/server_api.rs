//! `ServerApi`: the HTTP client of an agent-server (base URL, `X-Session-API-Key` on every
//! call when a key is set, one pooled client), shared by `RemoteWorkspace` and the
//! conversations opened on it, and `ServerApiError`: a failed call, with the HTTP status and one
//! readable message built from the server's FastAPI-style `detail`.

use std::time::Duration;

use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::WorkspaceError;

/// Timeout of ordinary (non-streaming) calls.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A failed call to the agent-server: the HTTP status (none when it was not reached) and one
/// readable message naming the call, the status and the server's `detail`.
#[derive(Debug, Clone)]
pub struct ServerApiError {
    pub status: Option<StatusCode>,
    pub message: String,
}

impl std::fmt::Display for ServerApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ServerApiError {}

impl ServerApiError {
    /// The server is unusable (unreachable, or it refuses our key), as opposed to refusing
    /// one operation.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self.status,
            None | Some(StatusCode::UNAUTHORIZED) | Some(StatusCode::FORBIDDEN)
        )
    }

    pub(super) fn malformed(what: &str, err: impl std::fmt::Display) -> Self {
        ServerApiError {
            status: None,
            message: format!("the agent-server sent an unexpected answer to {what}: {err}"),
        }
    }
}

impl From<ServerApiError> for WorkspaceError {
    fn from(e: ServerApiError) -> Self {
        WorkspaceError::Server(e)
    }
}

/// A new pooled HTTP client for agent-server and control-plane calls (a new pool, so it is
/// usable from the runtime that builds it). A client that cannot be built (TLS roots,
/// resolver) is an error here, never a fallback to `Client::new()`, which panics on that
/// very failure.
pub fn http_client() -> Result<Client, WorkspaceError> {
    crate::http::ClientSpec::new()
        .connect_timeout(Duration::from_secs(10))
        .build("")
        .map_err(|e| {
            WorkspaceError::Setup(format!(
                "cannot set up the HTTP client (TLS or resolver): {e}"
            ))
        })
}

/// The HTTP side of an agent-server: base URL, session key, one pooled client. Shared by the
/// workspace and the conversations opened on it.
#[derive(Clone)]
pub struct ServerApi {
    client: Client,
    base: String,
    key: Option<String>,
}

impl ServerApi {
    pub fn new(host_url: &str, api_key: Option<String>) -> Result<Self, WorkspaceError> {
        Ok(ServerApi {
            client: http_client()?,
            base: host_url.trim_end_matches('/').to_string(),
            key: api_key.filter(|k| !k.is_empty()),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn api_key(&self) -> Option<&str> {
        self.key.as_deref()
    }

    /// A request to `path` (starting with `/`), with the session key and the default timeout.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self
            .client
            .request(method, format!("{}{path}", self.base))
            .timeout(CALL_TIMEOUT);
        match &self.key {
            Some(key) => rb.header("X-Session-API-Key", key),
            None => rb,
        }
    }

    /// Sends a request; a non-2xx answer becomes an `ServerApiError` carrying the server's `detail`.
    pub async fn send(&self, what: &str, rb: RequestBuilder) -> Result<Response, ServerApiError> {
        let resp = rb.send().await.map_err(|e| ServerApiError {
            status: None,
            message: format!(
                "cannot reach the agent-server at {} ({what}): {}",
                self.base,
                crate::http::error_chain(&e)
            ),
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let detail = crate::http::detail(&resp.text().await.unwrap_or_default());
        Err(ServerApiError {
            status: Some(status),
            message: format!(
                "{what} on the agent-server at {} failed: HTTP {status}: {detail}{}",
                self.base,
                status_hint(status)
            ),
        })
    }

    /// `GET path?query` decoded as JSON.
    pub async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ServerApiError> {
        let what = format!("GET {path}");
        let resp = self
            .send(&what, self.request(Method::GET, path).query(query))
            .await?;
        resp.json()
            .await
            .map_err(|e| ServerApiError::malformed(&what, e))
    }

    /// `POST path` with a JSON body, the answer decoded as JSON.
    pub async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &Value,
    ) -> Result<T, ServerApiError> {
        let what = format!("POST {path}");
        let resp = self
            .send(&what, self.request(Method::POST, path).json(body))
            .await?;
        resp.json()
            .await
            .map_err(|e| ServerApiError::malformed(&what, e))
    }
}

fn status_hint(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            " (the session API key is missing or wrong)"
        }
        _ => "",
    }
}
