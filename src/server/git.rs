//! `/api/git`: what changed in a repository (`GET /git/changes`) and one file's content before
//! and after (`GET /git/diff`), against the base OpenHands picks or an explicit `ref`, answered
//! as OpenHands' agent-server does: a rename is a deleted and an added file, repositories one
//! level down count too, texts have their line ends normalized, a bad `ref` is a 400.
//! Relative paths are taken from the server's working directory.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};

use super::error::ApiError;
use super::validation::{required, Answer};
use super::AppState;
use crate::workspace::git;
use crate::workspace::{GitChange, GitDiff, WorkspaceError};

/// Larger files get no diff.
const MAX_DIFF_BYTES: u64 = 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/git/changes", get(changes))
        .route("/git/diff", get(diff))
}

/// A git failure, as a 400 with git's complaint.
fn failed(e: WorkspaceError) -> ApiError {
    ApiError::bad_request(e.to_string())
}

/// `GET /git/changes?path=P[&ref=R]`: `[GitChange]`; outside a repository, `[]`.
async fn changes(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer<Json<Vec<GitChange>>> {
    let dir = resolve(&state.config.working_dir, required(&query, "path")?);
    let base = query.get("ref").map(String::as_str);
    let nested = nested_repositories(&dir);
    let mut out = changes_in(&dir, base)
        .await
        .map_err(failed)?
        .unwrap_or_default();
    out.retain(|c| !nested.iter().any(|n| Path::new(&c.path).starts_with(n)));
    for name in nested {
        // As OpenHands: a nested repository that fails is left out.
        if let Ok(Some(found)) = changes_in(&dir.join(&name), base).await {
            out.extend(found.into_iter().map(|c| GitChange {
                status: c.status,
                path: format!("{name}/{}", c.path),
            }));
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Json(out))
}

/// The changes under `dir`, or `None` when it is not a directory in a repository.
async fn changes_in(
    dir: &Path,
    base: Option<&str>,
) -> Result<Option<Vec<GitChange>>, WorkspaceError> {
    if !dir.is_dir() || git::repo_root(dir).await?.is_none() {
        return Ok(None);
    }
    let base = pick_base(dir, base).await?;
    Ok(Some(git::changes_since(dir, &base, true).await?))
}

/// The names of `dir`'s visible subdirectories holding a `.git`.
fn nested_repositories(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.path().join(".git").exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.'))
        .collect()
}

/// The explicit ref, which must name a commit, else the base OpenHands picks.
async fn pick_base(dir: &Path, explicit: Option<&str>) -> Result<String, WorkspaceError> {
    let Some(name) = explicit else {
        return git::base_ref(dir).await;
    };
    git::rev(dir, name).await?.ok_or_else(|| {
        WorkspaceError::Git(format!(
            "Git command failed: git --no-pager rev-parse --verify '{name}^{{commit}}'"
        ))
    })
}

/// `GET /git/diff?path=F[&ref=R]`: `GitDiff`, the file's whole text at the base and now.
async fn diff(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer<Json<GitDiff>> {
    let path = resolve(&state.config.working_dir, required(&query, "path")?);
    let base = query.get("ref").map(String::as_str);
    if query.contains_key("commit") {
        let detail = match base {
            Some(_) => "'ref' and 'commit' are mutually exclusive",
            None => "the 'commit' parameter is not supported by this server",
        };
        return Err(ApiError::bad_request(detail).into());
    }
    Ok(Json(file_diff(&path, base).await?))
}

async fn file_diff(path: &Path, base: Option<&str>) -> Result<GitDiff, ApiError> {
    let missing = || ApiError::bad_request(format!("File does not exist: {}", path.display()));
    let deleted = !path.exists();
    if !deleted {
        check_size(tokio::fs::metadata(path).await?.len())?;
    }
    let Some(repo) = path.ancestors().find(|a| a.join(".git").exists()) else {
        return match deleted {
            true => Err(missing()),
            false => Ok(GitDiff {
                modified: None,
                original: None,
            }),
        };
    };
    let base = pick_base(repo, base).await.map_err(failed)?;
    let relative = path.strip_prefix(repo).unwrap_or(path).to_string_lossy();
    let spec = format!("{base}:{relative}");
    if deleted {
        let size = git::blob_size(repo, &spec).await.map_err(failed)?;
        check_size(size.ok_or_else(missing)?)?;
    }
    let original = git::blob(repo, &spec).await.map_err(failed)?;
    let original = original.map_or_else(String::new, |b| join_lines(&String::from_utf8_lossy(&b)));
    let modified = match deleted {
        true => String::new(),
        false => tokio::fs::read(path)
            .await
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .map_or_else(String::new, |t| join_lines(&t)),
    };
    Ok(GitDiff {
        modified: Some(modified),
        original: Some(original),
    })
}

fn check_size(size: u64) -> Result<(), ApiError> {
    if size > MAX_DIFF_BYTES {
        return Err(ApiError::bad_request(format!(
            "File too large for git diff: {size} bytes (max: {MAX_DIFF_BYTES} bytes)"
        )));
    }
    Ok(())
}

/// The text's lines joined by `\n`, as Python's `"\n".join(text.splitlines())`: every line
/// break becomes `\n` and a final one goes.
fn join_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if !is_line_break(c) {
            out.push(c);
            continue;
        }
        if c == '\r' && chars.peek() == Some(&'\n') {
            chars.next();
        }
        if chars.peek().is_some() {
            out.push('\n');
        }
    }
    out
}

fn is_line_break(c: char) -> bool {
    matches!(
        c,
        '\n' | '\r'
            | '\x0b'
            | '\x0c'
            | '\x1c'
            | '\x1d'
            | '\x1e'
            | '\u{85}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

/// `text` taken from `working_dir` when relative, with `.` and `..` resolved and the part that
/// exists freed of symlinks.
fn resolve(working_dir: &Path, text: &str) -> PathBuf {
    let mut path = PathBuf::new();
    for part in working_dir.join(text).components() {
        match part {
            Component::ParentDir => {
                path.pop();
            }
            Component::CurDir => {}
            other => path.push(other),
        }
    }
    let mut rest = Vec::new();
    let mut existing = path.as_path();
    loop {
        if let Ok(real) = existing.canonicalize() {
            return rest.iter().rev().fold(real, |p, name| p.join(name));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent;
            }
            _ => return path,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_joined_as_python_does() {
        assert_eq!(join_lines("a\nb\n"), "a\nb");
        assert_eq!(join_lines("a\r\nb\rc"), "a\nb\nc");
        assert_eq!(join_lines("a\n\n"), "a\n");
        assert_eq!(join_lines("\n"), "");
        assert_eq!(join_lines("  x  "), "  x  ");
    }

    #[test]
    fn relative_paths_resolve_from_the_working_dir() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        assert_eq!(resolve(dir.path(), "a/../b/./c"), real.join("b/c"));
        assert_eq!(resolve(dir.path(), "/x/../y"), PathBuf::from("/y"));
    }
}
