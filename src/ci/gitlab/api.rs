//! GitLab notes: create and update a note on a merge request or an issue, with a token in the
//! `PRIVATE-TOKEN` header (a project, group or personal access token with the `api` scope).
//!
//! `CI_JOB_TOKEN` cannot post notes (the notes endpoints are not among those a job token
//! reaches), so a missing token is an error that says which token to add. Calls are retried on
//! 429 and 5xx. The token is sent in the header only: never in a body, a log line or an error.

use serde::Deserialize;

use crate::ci::retry::{self, Backoff};

/// Why a GitLab call failed; one line each, saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum GitlabError {
    #[error("GitLab notes: no API token; CI_JOB_TOKEN cannot post notes, so add a project access token with the api scope (Reporter role or higher) as a masked CI/CD variable SANDCRAB_GITLAB_TOKEN")]
    MissingToken,
    #[error("GitLab notes: the API URL {0:?} is not an http(s) URL; check CI_API_V4_URL")]
    BadApiUrl(String),
    #[error("GitLab notes: {operation} answered HTTP {status}: the token is invalid, expired or lacks the api scope; create a project access token with the api scope and store it in SANDCRAB_GITLAB_TOKEN")]
    Unauthorized { operation: String, status: u16 },
    #[error("GitLab notes: {operation} answered HTTP 404 ({message}); check the project and number, and that the token's project or user can see them")]
    NotFound { operation: String, message: String },
    #[error("GitLab notes: {operation} answered HTTP {status} ({message})")]
    Api {
        operation: String,
        status: u16,
        message: String,
    },
    #[error(
        "GitLab notes: {operation} failed: {reason}; check the runner's network and CI_API_V4_URL"
    )]
    Unreachable { operation: String, reason: String },
    #[error("GitLab notes: {operation} sent an answer we cannot read: {why}")]
    BadAnswer { operation: String, why: String },
}

/// What a note is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteTarget {
    /// A merge request, by its iid.
    MergeRequest(u64),
    /// An issue, by its iid.
    Issue(u64),
}

impl NoteTarget {
    fn path(self) -> (&'static str, String) {
        match self {
            NoteTarget::MergeRequest(iid) => ("merge_requests", iid.to_string()),
            NoteTarget::Issue(iid) => ("issues", iid.to_string()),
        }
    }
}

/// A note as GitLab returns it (the fields we use).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Note {
    pub id: u64,
    pub body: String,
}

/// A GitLab API client for notes.
pub struct GitlabClient {
    http: reqwest::Client,
    api_url: url::Url,
    token: String,
    backoff: Backoff,
}

impl GitlabClient {
    /// `api_url` is `CI_API_V4_URL`; `token` an access token with the `api` scope (`None` or
    /// empty: [`GitlabError::MissingToken`]).
    pub fn new(api_url: &str, token: Option<&str>) -> Result<Self, GitlabError> {
        let token = token
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(GitlabError::MissingToken)?;
        let mut api = url::Url::parse(api_url.trim())
            .map_err(|e| GitlabError::BadApiUrl(format!("{api_url}: {e}")))?;
        if !matches!(api.scheme(), "http" | "https") || api.cannot_be_a_base() {
            return Err(GitlabError::BadApiUrl(api_url.to_string()));
        }
        if !api.path().ends_with('/') {
            api.set_path(&format!("{}/", api.path()));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("sandcrab/", env!("CARGO_PKG_VERSION")))
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| GitlabError::Unreachable {
                operation: "the HTTP client".into(),
                reason: retry::transport_error(e),
            })?;
        Ok(GitlabClient {
            http,
            api_url: api,
            token: token.to_string(),
            backoff: Backoff {
                attempts: 5,
                first_wait: std::time::Duration::from_secs(2),
                factor: 2.0,
            },
        })
    }

    /// The waits between attempts (default: 5 attempts, 2 s, x2).
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Posts a note; `project` is the numeric id or the `group/project` path.
    pub async fn create_note(
        &self,
        project: &str,
        target: NoteTarget,
        body: &str,
    ) -> Result<Note, GitlabError> {
        let url = self.notes_url(project, target, None);
        let operation = format!("creating a note on {}", describe(target));
        self.send(&operation, reqwest::Method::POST, url, body)
            .await
    }

    /// Replaces the body of note `note_id`.
    pub async fn update_note(
        &self,
        project: &str,
        target: NoteTarget,
        note_id: u64,
        body: &str,
    ) -> Result<Note, GitlabError> {
        let url = self.notes_url(project, target, Some(note_id));
        let operation = format!("updating note {note_id} on {}", describe(target));
        self.send(&operation, reqwest::Method::PUT, url, body).await
    }

    /// `{api}/projects/{project}/{merge_requests|issues}/{iid}/notes[/{id}]`, the project
    /// percent-encoded as one segment (`group%2Fproject`).
    fn notes_url(&self, project: &str, target: NoteTarget, note_id: Option<u64>) -> url::Url {
        let (kind, iid) = target.path();
        let mut url = self.api_url.clone();
        {
            let mut segments = url.path_segments_mut().expect("checked in new");
            segments.pop_if_empty();
            segments.extend(["projects", project, kind, &iid, "notes"]);
            if let Some(id) = note_id {
                segments.push(&id.to_string());
            }
        }
        url
    }

    async fn send(
        &self,
        operation: &str,
        method: reqwest::Method,
        url: url::Url,
        body: &str,
    ) -> Result<Note, GitlabError> {
        let payload = serde_json::json!({ "body": body });
        let response = retry::send(&self.backoff, operation, || {
            self.http
                .request(method.clone(), url.clone())
                .header("PRIVATE-TOKEN", &self.token)
                .json(&payload)
        })
        .await
        .map_err(|reason| GitlabError::Unreachable {
            operation: operation.to_string(),
            reason,
        })?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        let operation = operation.to_string();
        match status {
            200..=299 => serde_json::from_str(&text).map_err(|e| GitlabError::BadAnswer {
                operation,
                why: e.to_string(),
            }),
            401 | 403 => Err(GitlabError::Unauthorized { operation, status }),
            404 => Err(GitlabError::NotFound {
                operation,
                message: error_message(&text),
            }),
            _ => Err(GitlabError::Api {
                operation,
                status,
                message: error_message(&text),
            }),
        }
    }
}

fn describe(target: NoteTarget) -> String {
    match target {
        NoteTarget::MergeRequest(iid) => format!("merge request !{iid}"),
        NoteTarget::Issue(iid) => format!("issue #{iid}"),
    }
}

/// GitLab's `message` (a string or an object of field errors), or the first 200 characters.
fn error_message(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("message").or_else(|| v.get("error")));
    match message {
        Some(serde_json::Value::String(s)) => s.chars().take(200).collect(),
        Some(other) => other.to_string().chars().take(200).collect(),
        None => body
            .chars()
            .take(200)
            .collect::<String>()
            .replace('\n', " "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_paths_are_one_encoded_segment() {
        let client = GitlabClient::new("https://gitlab.example/api/v4", Some("t")).unwrap();
        let url = client.notes_url("group/sub/project", NoteTarget::MergeRequest(7), Some(99));
        assert_eq!(
            url.as_str(),
            "https://gitlab.example/api/v4/projects/group%2Fsub%2Fproject/merge_requests/7/notes/99"
        );
        let url = client.notes_url("42", NoteTarget::Issue(3), None);
        assert_eq!(
            url.as_str(),
            "https://gitlab.example/api/v4/projects/42/issues/3/notes"
        );
    }

    #[test]
    fn a_missing_token_says_which_token_to_add() {
        for token in [None, Some(""), Some("  ")] {
            let e = GitlabClient::new("https://gitlab.example/api/v4", token)
                .err()
                .unwrap();
            let text = e.to_string();
            assert!(text.contains("CI_JOB_TOKEN cannot post notes"), "{text}");
            assert!(
                text.contains("api scope") && text.contains("masked"),
                "{text}"
            );
        }
    }

    #[test]
    fn the_api_url_must_be_http() {
        for bad in ["", "gitlab.example/api/v4", "mailto:x@y", "ftp://h/api/v4"] {
            assert!(GitlabClient::new(bad, Some("t")).is_err(), "{bad}");
        }
    }
}
