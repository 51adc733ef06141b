//! A thin GitHub REST client on reqwest (already the project's HTTP client), against
//! `GITHUB_API_URL` (GHES and the tests' loopback fake work the same). Only the calls sandcrab
//! makes; each request body is redacted before it leaves. Octocrab would add a large
//! dependency tree for six endpoints and hide the retry policy this needs.
//!
//! Retries ([`crate::http::retry`]): 5xx, 429, and secondary rate limits (403/429 with
//! `Retry-After`, or `x-ratelimit-remaining: 0` with `x-ratelimit-reset`), waiting what GitHub
//! asks (capped), else an exponential backoff. A 422 is reported with GitHub's own validation
//! messages (`errors` as objects or as plain strings).
//!
//! A POST that creates something (a comment, a pull request, a review) is never sent again
//! once it may have reached GitHub: a 5xx, a timeout or a dropped connection may come after
//! GitHub created the object. It is retried only when it never got there (no connection, a
//! rate limit); otherwise the client looks for the object (comments and reviews carry a hidden
//! marker unique to the post, [`post_marker`]; a pull request is found by its head branch) and
//! returns what it finds, or the failure. GETs, PATCHes and DELETEs are retried as they are.

use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::http::retry::{self, Idempotency, RetryPolicy, Verdict};
use crate::http::ClientSpec;
use crate::redact::Redactor;

use super::event::{Issue, PullRequest};

/// Longest wait GitHub may ask for before a retry.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// Bytes a post marker adds to a body (callers keep bodies this much under GitHub's limit).
pub const MARKER_ROOM: usize = 64;

/// A hidden marker unique to one post, so a retry can find the post if GitHub made it.
pub fn post_marker() -> String {
    format!("<!-- sandcrab:post {} -->", uuid::Uuid::new_v4().simple())
}

/// `body` with a fresh post marker at its end, and the marker.
fn marked(body: &str) -> (String, String) {
    let marker = post_marker();
    (format!("{}\n{marker}", body.trim_end()), marker)
}

/// Looks for the object a failed create may have made: `Some` when found.
type Lookup<'a> = futures_util::future::BoxFuture<'a, Result<Option<Value>, GithubApiError>>;

#[derive(Debug, thiserror::Error)]
pub enum GithubApiError {
    #[error("GitHub refused to {what} (422 Unprocessable Entity): {message}")]
    Unprocessable { what: String, message: String },
    #[error("GitHub answered {status} to {what}: {message}")]
    Status {
        status: u16,
        what: String,
        message: String,
    },
    #[error("cannot reach GitHub at {url} to {what}: {message}")]
    Transport {
        url: String,
        what: String,
        message: String,
    },
}

impl GithubApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            GithubApiError::Unprocessable { .. } => Some(422),
            GithubApiError::Status { status, .. } => Some(*status),
            GithubApiError::Transport { .. } => None,
        }
    }
}

/// A created or edited comment.
#[derive(Debug, Clone, Deserialize)]
pub struct CommentRef {
    pub id: u64,
    #[serde(default)]
    pub html_url: String,
}

/// A created pull request or review.
#[derive(Debug, Clone, Deserialize)]
pub struct Created {
    #[serde(default)]
    pub number: u64,
    #[serde(default)]
    pub html_url: String,
}

/// One inline comment of a review.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct InlineComment {
    pub path: String,
    pub line: u64,
    pub body: String,
}

#[derive(Debug, Deserialize)]
struct Permission {
    permission: String,
    role_name: Option<String>,
}

/// The client: base URL, `owner/name`, token.
pub struct GithubApi {
    http: reqwest::Client,
    base: String,
    repo: String,
    token: Option<String>,
    redactor: Redactor,
    policy: RetryPolicy,
}

/// 5 attempts, 1 s doubling, at most [`MAX_WAIT`]; GitHub's `Retry-After` capped at it too.
pub const DEFAULT_POLICY: RetryPolicy = RetryPolicy::new(5, Duration::from_secs(1), 2.0)
    .cap(MAX_WAIT)
    .retry_after_cap(MAX_WAIT);

impl GithubApi {
    /// The client; an HTTP client that cannot be built (TLS roots, resolver) is an error, not
    /// a fallback to a default client (which panics on that failure and lacks the User-Agent
    /// GitHub requires).
    pub fn new(
        api_url: &str,
        repository: &str,
        token: Option<String>,
        redactor: Redactor,
    ) -> anyhow::Result<Self> {
        let http = ClientSpec::new()
            .timeout(Duration::from_secs(60))
            .build("the GitHub API")?;
        Ok(GithubApi {
            http,
            base: api_url.trim_end_matches('/').to_string(),
            repo: repository.to_string(),
            token,
            redactor,
            policy: DEFAULT_POLICY,
        })
    }

    /// The retry policy (default: [`DEFAULT_POLICY`]).
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The collaborator permission of `user` (`None`: not a collaborator, 404).
    pub async fn permission(
        &self,
        user: &str,
    ) -> Result<Option<(String, Option<String>)>, GithubApiError> {
        let path = format!("/repos/{}/collaborators/{user}/permission", self.repo);
        match self
            .call::<Permission>(Method::GET, &path, None, "read a collaborator's permission")
            .await
        {
            Ok(p) => Ok(Some((p.permission, p.role_name))),
            Err(e) if e.status() == Some(404) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn create_comment(
        &self,
        number: u64,
        body: &str,
    ) -> Result<CommentRef, GithubApiError> {
        let path = format!("/repos/{}/issues/{number}/comments", self.repo);
        let (body, marker) = marked(body);
        let since = (chrono::Utc::now() - chrono::Duration::minutes(10))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let find = || -> Lookup<'_> {
            Box::pin(async {
                let list = format!("{path}?since={since}&per_page=100");
                let comments: Vec<Value> = self
                    .call(Method::GET, &list, None, "look for the comment")
                    .await?;
                Ok(with_marker(comments, &marker))
            })
        };
        self.create(&path, json!({"body": body}), "create a comment", &find)
            .await
    }

    pub async fn update_comment(&self, id: u64, body: &str) -> Result<CommentRef, GithubApiError> {
        let path = format!("/repos/{}/issues/comments/{id}", self.repo);
        self.call(
            Method::PATCH,
            &path,
            Some(json!({"body": body})),
            "edit a comment",
        )
        .await
    }

    pub async fn pull_request(&self, number: u64) -> Result<PullRequest, GithubApiError> {
        let path = format!("/repos/{}/pulls/{number}", self.repo);
        self.call(Method::GET, &path, None, "read the pull request")
            .await
    }

    /// An issue (the issues API also answers for pull requests: `pull_request` is then set).
    pub async fn issue(&self, number: u64) -> Result<Issue, GithubApiError> {
        let path = format!("/repos/{}/issues/{number}", self.repo);
        self.call(Method::GET, &path, None, "read the issue").await
    }

    pub async fn default_branch(&self) -> Result<String, GithubApiError> {
        let repo: Value = self
            .call(
                Method::GET,
                &format!("/repos/{}", self.repo),
                None,
                "read the repository",
            )
            .await?;
        Ok(repo["default_branch"]
            .as_str()
            .unwrap_or("main")
            .to_string())
    }

    /// Opens a pull request; `pr["head"]` is a branch of this repository.
    pub async fn create_pull(&self, pr: &Value) -> Result<Created, GithubApiError> {
        let path = format!("/repos/{}/pulls", self.repo);
        let owner = self.repo.split('/').next().unwrap_or_default();
        let head = pr["head"].as_str().unwrap_or_default();
        let list = format!(
            "{path}?head={}&state=open&per_page=1",
            query_escape(&format!("{owner}:{head}"))
        );
        let find = || -> Lookup<'_> {
            Box::pin(async {
                let pulls: Vec<Value> = self
                    .call(Method::GET, &list, None, "look for the pull request")
                    .await?;
                Ok(pulls.into_iter().next())
            })
        };
        self.create(&path, pr.clone(), "create the pull request", &find)
            .await
    }

    /// A review of type COMMENT (never an approval or a change request) with inline comments.
    pub async fn create_review(
        &self,
        number: u64,
        commit_id: Option<&str>,
        body: &str,
        comments: &[InlineComment],
    ) -> Result<Created, GithubApiError> {
        let path = format!("/repos/{}/pulls/{number}/reviews", self.repo);
        let (body, marker) = marked(body);
        let mut review = json!({"body": body, "event": "COMMENT", "comments": comments});
        if let Some(sha) = commit_id {
            review["commit_id"] = sha.into();
        }
        let find = || -> Lookup<'_> {
            Box::pin(async {
                let list = format!("{path}?per_page=100");
                let reviews: Vec<Value> = self
                    .call(Method::GET, &list, None, "look for the review")
                    .await?;
                Ok(with_marker(reviews, &marker))
            })
        };
        self.create(&path, review, "create the review", &find).await
    }

    /// The id of the App's installation on this repository (the client holds the App's JWT).
    pub async fn repo_installation(&self) -> Result<u64, GithubApiError> {
        let path = format!("/repos/{}/installation", self.repo);
        let installation: Value = self
            .call(Method::GET, &path, None, "find the App's installation")
            .await?;
        installation["id"]
            .as_u64()
            .ok_or_else(|| GithubApiError::Status {
                status: 200,
                what: "find the App's installation".into(),
                message: "the answer has no id".into(),
            })
    }

    /// Mints an installation token (the client holds the App's JWT). Repeating the POST after a
    /// failure at worst mints a second token, which expires by itself; nothing is duplicated
    /// that a person would see.
    pub async fn create_installation_token(
        &self,
        installation: u64,
        body: Value,
    ) -> Result<Value, GithubApiError> {
        let path = format!("/app/installations/{installation}/access_tokens");
        self.call(
            Method::POST,
            &path,
            Some(body),
            "mint an installation token",
        )
        .await
    }

    /// Revokes the token this client holds.
    pub async fn revoke_installation_token(&self) -> Result<(), GithubApiError> {
        self.call(
            Method::DELETE,
            "/installation/token",
            None,
            "revoke the installation token",
        )
        .await
    }

    /// A POST that creates an object: before each new attempt, `find` looks for the object a
    /// failed attempt may have made, and what it finds is the answer.
    async fn create<'f, T: DeserializeOwned>(
        &self,
        path: &str,
        body: Value,
        what: &str,
        find: &'f (dyn Fn() -> Lookup<'f> + Sync),
    ) -> Result<T, GithubApiError> {
        self.request(Method::POST, path, Some(body), what, Some(find))
            .await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        what: &str,
    ) -> Result<T, GithubApiError> {
        self.request(method, path, body, what, None).await
    }

    async fn request<'f, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        what: &str,
        find: Option<&'f (dyn Fn() -> Lookup<'f> + Sync)>,
    ) -> Result<T, GithubApiError> {
        let url = format!("{}{path}", self.base);
        let body = body.map(|mut b| {
            self.redactor.redact_json(&mut b);
            b
        });
        let idempotency = match find {
            Some(_) => Idempotency::NonIdempotent,
            None => Idempotency::Idempotent,
        };
        let policy = &self.policy;
        let outcome = retry::retry(
            policy,
            |_| self.send(&method, &url, body.as_ref()),
            |outcome| match outcome {
                Ok(r) => judge(policy, idempotency, r),
                Err(e) if policy.retries_error(e, idempotency) => Verdict::Retry(None),
                Err(_) => Verdict::Done,
            },
            |outcome, wait, _| {
                let why = match outcome {
                    Ok(r) => r.status().to_string(),
                    Err(e) => e.to_string(),
                };
                tracing::warn!(
                    "GitHub: {what}: {why}; retrying in {:.1} s",
                    wait.as_secs_f64()
                );
            },
        )
        .await;
        let may_have_been_made = match &outcome {
            Ok(r) => r.status().is_server_error(),
            Err(e) => !e.is_connect(),
        };
        if let (Some(find), true) = (find, may_have_been_made) {
            let found = find().await.map_err(|e| GithubApiError::Status {
                status: e.status().unwrap_or(0),
                what: what.to_string(),
                message: format!("the attempt failed and looking for its result failed too, so it is not repeated (no duplicate): {e}"),
            })?;
            if let Some(found) = found {
                eprintln!("sandcrab: GitHub: {what}: the failed attempt had been carried out; not posting again");
                return serde_json::from_value(found).map_err(|e| GithubApiError::Status {
                    status: 200,
                    what: what.to_string(),
                    message: format!("unexpected answer: {e}"),
                });
            }
        }
        match outcome {
            Ok(r) => self.read(r, what).await,
            Err(e) => Err(GithubApiError::Transport {
                url: self.base.clone(),
                what: what.to_string(),
                message: e.to_string(),
            }),
        }
    }

    async fn send(
        &self,
        method: &Method,
        url: &str,
        body: Option<&Value>,
    ) -> reqwest::Result<Response> {
        let mut req = self
            .http
            .request(method.clone(), url)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28");
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        req.send().await
    }

    async fn read<T: DeserializeOwned>(
        &self,
        r: Response,
        what: &str,
    ) -> Result<T, GithubApiError> {
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        if status.is_success() {
            let text = if text.trim().is_empty() {
                "null"
            } else {
                &text
            };
            return serde_json::from_str(text).map_err(|e| GithubApiError::Status {
                status: status.as_u16(),
                what: what.to_string(),
                message: format!("unexpected answer: {e}"),
            });
        }
        let message = self.redactor.redact(&error_message(&text));
        if status == StatusCode::UNPROCESSABLE_ENTITY {
            return Err(GithubApiError::Unprocessable {
                what: what.to_string(),
                message,
            });
        }
        Err(GithubApiError::Status {
            status: status.as_u16(),
            what: what.to_string(),
            message,
        })
    }
}

/// The first object whose `body` holds `marker`.
fn with_marker(objects: Vec<Value>, marker: &str) -> Option<Value> {
    objects
        .into_iter()
        .find(|o| o["body"].as_str().is_some_and(|b| b.contains(marker)))
}

/// `text` percent-encoded for a query value.
fn query_escape(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Whether an answer is worth another attempt, and after how long: a secondary rate limit
/// (403 with `Retry-After` or an exhausted `x-ratelimit-remaining`) or a 429 waits what GitHub
/// asks (a primary limit that resets later than [`MAX_WAIT`] is final: not worth waiting for in
/// a CI job); a 5xx follows the policy.
fn judge(policy: &RetryPolicy, idempotency: Idempotency, r: &Response) -> Verdict {
    let status = r.status();
    let header = |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok());
    let retry_after = retry::retry_after(r.headers(), chrono::Utc::now());
    let exhausted = header("x-ratelimit-remaining") == Some("0");
    let rate_limited = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN && (retry_after.is_some() || exhausted));
    if !rate_limited {
        return retry::judge_response(policy, idempotency, r);
    }
    if retry_after.is_some() {
        return Verdict::Retry(retry_after);
    }
    if exhausted {
        let Some(reset) = header("x-ratelimit-reset").and_then(|v| v.trim().parse::<i64>().ok())
        else {
            return Verdict::Done;
        };
        let secs = reset - chrono::Utc::now().timestamp();
        return match secs <= MAX_WAIT.as_secs() as i64 {
            true => Verdict::Retry(Some(Duration::from_secs(secs.max(0) as u64))),
            false => Verdict::Done,
        };
    }
    Verdict::Retry(None)
}

/// GitHub's error `message` and the `errors[]` details, on one line.
fn error_message(body: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return body
            .chars()
            .take(300)
            .collect::<String>()
            .replace('\n', " ");
    };
    let mut parts = vec![v["message"].as_str().unwrap_or("no message").to_string()];
    for e in v["errors"].as_array().into_iter().flatten() {
        let detail = match e {
            // Reviews answer `"errors": ["Line could not be resolved"]`.
            Value::String(reason) => reason.clone(),
            _ => e["message"].as_str().map(String::from).unwrap_or_else(|| {
                let field = |k: &str| e[k].as_str().unwrap_or("").to_string();
                format!("{} {} {}", field("resource"), field("field"), field("code"))
            }),
        };
        let detail = detail.split_whitespace().collect::<Vec<_>>().join(" ");
        if !detail.is_empty() {
            parts.push(detail);
        }
    }
    let (message, reasons) = parts.split_first().expect("the message is always there");
    match reasons {
        [] => message.clone(),
        _ => format!("{message}: {}", reasons.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_join_details() {
        let body = r#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","code":"custom","message":"A pull request already exists for o:b."}]}"#;
        assert_eq!(
            error_message(body),
            "Validation Failed: A pull request already exists for o:b."
        );
        let body = r#"{"message":"Validation Failed","errors":[{"resource":"Issue","field":"title","code":"missing_field"}]}"#;
        assert_eq!(
            error_message(body),
            "Validation Failed: Issue title missing_field"
        );
        assert_eq!(error_message("oops\nbad"), "oops bad");
    }

    #[test]
    fn plain_string_errors_are_named() {
        let body = r#"{"message":"Unprocessable Entity","errors":["Line could not be resolved","Path could not be resolved"],"documentation_url":"https://docs.github.com/rest","status":"422"}"#;
        assert_eq!(
            error_message(body),
            "Unprocessable Entity: Line could not be resolved; Path could not be resolved"
        );
        let mixed = r#"{"message":"Validation Failed","errors":["a reason",{"resource":"PullRequest","field":"head","code":"invalid"}]}"#;
        assert_eq!(
            error_message(mixed),
            "Validation Failed: a reason; PullRequest head invalid"
        );
    }
}
