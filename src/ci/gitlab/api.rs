//! The GitLab REST API (v4) sandcrab uses, with a token in the `PRIVATE-TOKEN` header (a
//! project, group or personal access token with the `api` scope): notes on merge requests and
//! issues, an issue, a merge request (its `diff_refs`), opening a merge request, and diff
//! threads (discussions with a `position`).
//!
//! `CI_JOB_TOKEN` cannot do any of these (the endpoints are not among those a job token
//! reaches), so a missing token is an error that says which token to add. Calls are retried on
//! 429 and 5xx ([`crate::http::retry`]); a POST that creates a note or a thread only on 429 or
//! when it never reached GitLab, so a 5xx after GitLab saved it does not post it twice. The token is sent in the header only: never in a body, a log line or an error.

use serde::Deserialize;

use std::time::Duration;

use crate::http::retry::{self, Idempotency, RetryPolicy};
use crate::http::ClientSpec;

/// Why a GitLab call failed; one line each, saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum GitlabError {
    #[error("GitLab API: no API token; CI_JOB_TOKEN cannot post notes or open merge requests, so add a project access token with the api scope (Reporter role or higher; Developer to push) as a masked CI/CD variable SANDCRAB_GITLAB_TOKEN")]
    MissingToken,
    #[error("GitLab API: the API URL {0:?} is not an http(s) URL; check CI_API_V4_URL")]
    BadApiUrl(String),
    #[error("GitLab API: {operation} answered HTTP {status}: the token is invalid, expired, lacks the api scope or its role is too low; create a project access token with the api scope and store it in SANDCRAB_GITLAB_TOKEN")]
    Unauthorized { operation: String, status: u16 },
    #[error("GitLab API: {operation} answered HTTP 404 ({message}); check the project and number, and that the token's project or user can see them")]
    NotFound { operation: String, message: String },
    #[error("GitLab API: {operation} answered HTTP {status} ({message})")]
    Api {
        operation: String,
        status: u16,
        message: String,
    },
    #[error(
        "GitLab API: {operation} failed: {reason}; check the runner's network and CI_API_V4_URL"
    )]
    Unreachable { operation: String, reason: String },
    #[error("GitLab API: {operation} sent an answer we cannot read: {why}")]
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

/// An issue (the fields we use; title and description are untrusted text).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Issue {
    pub iid: u64,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub web_url: String,
}

/// The three commits a diff position names (`diff_refs` of a merge request).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DiffRefs {
    /// The merge base of the source and target branches.
    pub base_sha: String,
    /// The source branch's head.
    pub head_sha: String,
    /// The target branch's tip when the diff was made.
    pub start_sha: String,
}

/// A merge request (the fields we use).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MergeRequestInfo {
    pub iid: u64,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    pub source_branch: String,
    pub target_branch: String,
    pub source_project_id: u64,
    pub target_project_id: u64,
    /// `null` while GitLab is still preparing the diff.
    #[serde(default)]
    pub diff_refs: Option<DiffRefs>,
    #[serde(default)]
    pub web_url: String,
}

/// Where a diff thread sits (`position` of
/// <https://docs.gitlab.com/api/discussions/#create-a-new-thread-in-the-merge-request-diff>):
/// an added line has `new_line` only, a removed line `old_line` only, an unchanged line both.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Position {
    pub position_type: &'static str,
    pub base_sha: String,
    pub start_sha: String,
    pub head_sha: String,
    pub old_path: String,
    pub new_path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_line: Option<u64>,
}

/// A created discussion (the fields we use).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Discussion {
    pub id: String,
}

/// A GitLab API client for notes.
pub struct GitlabClient {
    http: reqwest::Client,
    api_url: url::Url,
    token: String,
    policy: RetryPolicy,
}

/// 5 attempts, 2 s, x2.
pub const DEFAULT_POLICY: RetryPolicy = RetryPolicy::new(5, Duration::from_secs(2), 2.0);

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
        let http = ClientSpec::new()
            .timeout(Duration::from_secs(60))
            .build("the GitLab API")
            .map_err(|e| GitlabError::Unreachable {
                operation: "the HTTP client".into(),
                reason: e.reason,
            })?;
        Ok(GitlabClient {
            http,
            api_url: api,
            token: token.to_string(),
            policy: DEFAULT_POLICY,
        })
    }

    /// The waits between attempts (default: [`DEFAULT_POLICY`]).
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Posts a note; `project` is the numeric id or the `group/project` path.
    pub async fn create_note(
        &self,
        project: &str,
        target: NoteTarget,
        body: &str,
    ) -> Result<Note, GitlabError> {
        let (kind, iid) = target.path();
        let url = self.url(&["projects", project, kind, &iid, "notes"]);
        let operation = format!("creating a note on {}", describe(target));
        let payload = serde_json::json!({ "body": body });
        self.call(&operation, CREATE, url, Some(&payload)).await
    }

    /// Replaces the body of note `note_id`.
    pub async fn update_note(
        &self,
        project: &str,
        target: NoteTarget,
        note_id: u64,
        body: &str,
    ) -> Result<Note, GitlabError> {
        let (kind, iid) = target.path();
        let id = note_id.to_string();
        let url = self.url(&["projects", project, kind, &iid, "notes", &id]);
        let operation = format!("updating note {note_id} on {}", describe(target));
        let payload = serde_json::json!({ "body": body });
        self.call(
            &operation,
            (reqwest::Method::PUT, Idempotency::Idempotent),
            url,
            Some(&payload),
        )
        .await
    }

    /// `GET /projects/:id/issues/:issue_iid`.
    pub async fn issue(&self, project: &str, iid: u64) -> Result<Issue, GitlabError> {
        let url = self.url(&["projects", project, "issues", &iid.to_string()]);
        let operation = format!("reading issue #{iid}");
        self.call(&operation, GET, url, None).await
    }

    /// `GET /projects/:id/merge_requests/:merge_request_iid`.
    pub async fn merge_request(
        &self,
        project: &str,
        iid: u64,
    ) -> Result<MergeRequestInfo, GitlabError> {
        let url = self.url(&["projects", project, "merge_requests", &iid.to_string()]);
        let operation = format!("reading merge request !{iid}");
        self.call(&operation, GET, url, None).await
    }

    /// `POST /projects/:id/merge_requests` with `source_branch`, `target_branch`, `title`,
    /// `description` and `remove_source_branch`. A retried POST whose first attempt went
    /// through meets 409 (an open merge request of that source branch exists): that one is
    /// looked up and returned, so a retry never makes a second merge request, and the POST is
    /// retried as an idempotent call.
    pub async fn create_merge_request(
        &self,
        project: &str,
        request: &NewMergeRequest,
    ) -> Result<MergeRequestInfo, GitlabError> {
        let url = self.url(&["projects", project, "merge_requests"]);
        let operation = format!("opening a merge request from {}", request.source_branch);
        let payload = serde_json::to_value(request).expect("plain fields serialize");
        let created = self
            .call(
                &operation,
                (reqwest::Method::POST, Idempotency::Idempotent),
                url,
                Some(&payload),
            )
            .await;
        match created {
            Err(GitlabError::Api { status: 409, .. }) => {
                let mut url = self.url(&["projects", project, "merge_requests"]);
                url.query_pairs_mut()
                    .append_pair("source_branch", &request.source_branch)
                    .append_pair("target_branch", &request.target_branch)
                    .append_pair("state", "opened");
                let operation = format!("finding the merge request of {}", request.source_branch);
                let found: Vec<MergeRequestInfo> = self.call(&operation, GET, url, None).await?;
                found.into_iter().next().ok_or(GitlabError::Api {
                    operation,
                    status: 409,
                    message: "GitLab says one exists, but lists none".into(),
                })
            }
            other => other,
        }
    }

    /// `POST /projects/:id/merge_requests/:merge_request_iid/discussions` with a `position`.
    pub async fn create_discussion(
        &self,
        project: &str,
        iid: u64,
        body: &str,
        position: &Position,
    ) -> Result<Discussion, GitlabError> {
        let url = self.url(&[
            "projects",
            project,
            "merge_requests",
            &iid.to_string(),
            "discussions",
        ]);
        let operation = format!("starting a thread on merge request !{iid}");
        let payload = serde_json::json!({ "body": body, "position": position });
        self.call(&operation, CREATE, url, Some(&payload)).await
    }

    /// `{api}/` and `segments`, each percent-encoded as one segment (`group%2Fproject`).
    fn url(&self, segments: &[&str]) -> url::Url {
        let mut url = self.api_url.clone();
        {
            let mut path = url.path_segments_mut().expect("checked in new");
            path.pop_if_empty();
            path.extend(segments);
        }
        url
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        operation: &str,
        (method, idempotency): (reqwest::Method, Idempotency),
        url: url::Url,
        payload: Option<&serde_json::Value>,
    ) -> Result<T, GitlabError> {
        let response = retry::send(&self.policy, idempotency, operation, || {
            let request = self
                .http
                .request(method.clone(), url.clone())
                .header("PRIVATE-TOKEN", &self.token);
            match payload {
                Some(payload) => request.json(payload),
                None => request,
            }
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
                message: crate::http::detail(&text),
            }),
            _ => Err(GitlabError::Api {
                operation,
                status,
                message: crate::http::detail(&text),
            }),
        }
    }
}

/// A read.
const GET: (reqwest::Method, Idempotency) = (reqwest::Method::GET, Idempotency::Idempotent);
/// A POST that creates a note or a thread: never sent again once it may have reached GitLab.
const CREATE: (reqwest::Method, Idempotency) = (reqwest::Method::POST, Idempotency::NonIdempotent);

/// The body of `POST /projects/:id/merge_requests`
/// (<https://docs.gitlab.com/api/merge_requests/#create-mr>). A draft is a title starting with
/// `Draft:` (the endpoint has no draft field).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NewMergeRequest {
    pub source_branch: String,
    pub target_branch: String,
    pub title: String,
    pub description: String,
    pub remove_source_branch: bool,
}

impl GitlabError {
    /// The HTTP status GitLab answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            GitlabError::Unauthorized { status, .. } | GitlabError::Api { status, .. } => {
                Some(*status)
            }
            GitlabError::NotFound { .. } => Some(404),
            _ => None,
        }
    }
}

fn describe(target: NoteTarget) -> String {
    match target {
        NoteTarget::MergeRequest(iid) => format!("merge request !{iid}"),
        NoteTarget::Issue(iid) => format!("issue #{iid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_paths_are_one_encoded_segment() {
        let client = GitlabClient::new("https://gitlab.example/api/v4", Some("t")).unwrap();
        let url = client.url(&[
            "projects",
            "group/sub/project",
            "merge_requests",
            "7",
            "notes",
            "99",
        ]);
        assert_eq!(
            url.as_str(),
            "https://gitlab.example/api/v4/projects/group%2Fsub%2Fproject/merge_requests/7/notes/99"
        );
        let url = client.url(&["projects", "42", "issues", "3", "notes"]);
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
