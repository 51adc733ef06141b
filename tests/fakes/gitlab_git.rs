//! Git over smart HTTP for the fake GitLab: `git http-backend` (CGI) behind Basic auth the way
//! GitLab checks it: user `oauth2` (or any name) with an access token reads and pushes; user
//! `gitlab-ci-token` with the job token reads only (a push is 403 "You are not allowed to upload
//! code."); anything else is 401 with `WWW-Authenticate: Basic realm="GitLab"`. Also reads of
//! the bare repository the fake's REST side needs (refs, merge bases, diffs).

use std::path::{Path, PathBuf};
use std::process::Command;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;

/// Who a request's `Authorization: Basic` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitAuth {
    None,
    Bad,
    /// The access token (read and write).
    Token,
    /// `gitlab-ci-token` with the job token (read only).
    JobToken,
}

pub fn git_auth(headers: &HeaderMap, token: &str, job_token: &str) -> GitAuth {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return GitAuth::None;
    };
    let Some(b64) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return GitAuth::Bad;
    };
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return GitAuth::Bad;
    };
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let Some((user, password)) = raw.split_once(':') else {
        return GitAuth::Bad;
    };
    match (user, password) {
        ("gitlab-ci-token", p) if p == job_token => GitAuth::JobToken,
        (u, p) if !u.is_empty() && u != "gitlab-ci-token" && p == token => GitAuth::Token,
        _ => GitAuth::Bad,
    }
}

/// Serves `path` (`/group/app.git/info/refs` ...) from `root` with `git http-backend`.
pub async fn serve(
    root: &Path,
    method: &str,
    path: &str,
    query: &str,
    headers: &HeaderMap,
    body: Vec<u8>,
    auth: GitAuth,
) -> Response {
    let pushing = path.ends_with("/git-receive-pack") || query.contains("service=git-receive-pack");
    match auth {
        GitAuth::None | GitAuth::Bad => {
            return (
                StatusCode::UNAUTHORIZED,
                [("WWW-Authenticate", "Basic realm=\"GitLab\"")],
                "HTTP Basic: Access denied. If a password was provided for Git authentication, the password was incorrect or you're required to use a token instead of a password.\n",
            )
                .into_response()
        }
        GitAuth::JobToken if pushing => {
            return (StatusCode::FORBIDDEN, "You are not allowed to upload code.\n").into_response()
        }
        _ => {}
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", path)
        .env("REQUEST_METHOD", method)
        .env("QUERY_STRING", query)
        .env("REMOTE_USER", "oauth2")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("git http-backend starts");
    let mut stdin = child.stdin.take().unwrap();
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let _ = stdin.write_all(&body).await;
    });
    let out = child.wait_with_output().await.unwrap();
    let _ = writer.await;
    let split = out
        .stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| (at, 4))
        .or_else(|| {
            out.stdout
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|at| (at, 2))
        });
    let Some((at, gap)) = split else {
        return (StatusCode::INTERNAL_SERVER_ERROR, out.stderr).into_response();
    };
    let head = String::from_utf8_lossy(&out.stdout[..at]).into_owned();
    let payload = out.stdout[at + gap..].to_vec();
    let mut status = StatusCode::OK;
    let mut response = Response::builder();
    for line in head.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        if k.eq_ignore_ascii_case("status") {
            let code = v.trim().split(' ').next().unwrap_or("200");
            status = StatusCode::from_u16(code.parse().unwrap_or(500)).unwrap();
        } else {
            response = response.header(k.trim(), v.trim());
        }
    }
    response
        .status(status)
        .body(axum::body::Body::from(payload))
        .unwrap()
}

/// A bare repository of the fake (`root/group/app.git`).
#[derive(Debug, Clone)]
pub struct Bare(pub PathBuf);

impl Bare {
    pub fn git(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("git")
            .arg("--git-dir")
            .arg(&self.0)
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    pub fn rev(&self, name: &str) -> Option<String> {
        self.git(&["rev-parse", "-q", "--verify", &format!("{name}^{{commit}}")])
    }

    pub fn merge_base(&self, a: &str, b: &str) -> Option<String> {
        self.git(&["merge-base", a, b])
    }

    pub fn diff(&self, base: &str, head: &str) -> String {
        self.git(&["diff", "--no-color", "--no-renames", "-U3", base, head])
            .unwrap_or_default()
    }
}

/// What a line of a diff is on GitLab's side: `(old_line, new_line)` of every line inside a
/// hunk (`None` on the side where it does not exist), by path.
pub fn diff_lines(diff: &str) -> Vec<(String, Option<u64>, Option<u64>)> {
    let mut out = Vec::new();
    let mut path = String::new();
    let (mut old, mut new) = (0u64, 0u64);
    let mut in_hunk = false;
    for line in diff.lines() {
        if line.starts_with("diff --git ") {
            in_hunk = false;
            continue;
        }
        if !in_hunk {
            if let Some(p) = line.strip_prefix("+++ b/") {
                path = p.to_string();
            } else if let Some(p) = line.strip_prefix("--- a/") {
                path = p.to_string();
            }
        }
        if let Some(h) = line.strip_prefix("@@ -") {
            let mut parts = h.split(' ');
            let num = |s: Option<&str>| {
                s.and_then(|s| s.trim_start_matches(['-', '+']).split(',').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            };
            old = num(parts.next());
            new = num(parts.next());
            in_hunk = true;
            continue;
        }
        if !in_hunk {
            continue;
        }
        match line.as_bytes().first() {
            Some(b'+') => {
                out.push((path.clone(), None, Some(new)));
                new += 1;
            }
            Some(b'-') => {
                out.push((path.clone(), Some(old), None));
                old += 1;
            }
            Some(b' ') => {
                out.push((path.clone(), Some(old), Some(new)));
                old += 1;
                new += 1;
            }
            _ => {}
        }
    }
    out
}

impl Bare {
    /// Every ref and where it points.
    pub fn for_each_ref(&self) -> String {
        self.git(&["for-each-ref"]).unwrap_or_default()
    }
}
