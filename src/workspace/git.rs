//! Git queries on a local directory: changed files and file diffs against the base ref
//! OpenHands picks, and the patch of everything changed since a commit (untracked files
//! included, without touching the repository's index).

use std::path::{Path, PathBuf};
use std::process::Output;

use serde::{Deserialize, Serialize};
use tokio::process::Command;

use super::WorkspaceError;

/// Git's empty tree: the base of a repository with no commits.
pub const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

/// OpenHands' `GitChangeStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum GitChangeStatus {
    Moved,
    Added,
    Deleted,
    Updated,
}

/// OpenHands' `GitChange`: a path (relative to the queried directory) and what happened to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitChange {
    pub status: GitChangeStatus,
    pub path: String,
}

/// OpenHands' `GitDiff`: a file's whole content at the base ref and now (not a patch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitDiff {
    pub modified: Option<String>,
    pub original: Option<String>,
}

async fn git(dir: &Path, args: &[&str]) -> Result<Output, WorkspaceError> {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .await
        .map_err(|e| WorkspaceError::Git(format!("cannot run git: {e}; is git installed?")))
}

/// Runs git and returns trimmed stdout, or `None` when git exits non-zero.
async fn git_ok(dir: &Path, args: &[&str]) -> Result<Option<String>, WorkspaceError> {
    let out = git(dir, args).await?;
    Ok(out
        .status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string()))
}

/// Runs git and fails with its stderr when it exits non-zero.
async fn git_checked(dir: &Path, args: &[&str]) -> Result<Vec<u8>, WorkspaceError> {
    let out = git(dir, args).await?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    Err(WorkspaceError::Git(format!(
        "git {} failed: {}",
        args.first().copied().unwrap_or_default(),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

/// The top of the repository holding `dir`, or `None` outside a repository.
pub async fn repo_root(dir: &Path) -> Result<Option<PathBuf>, WorkspaceError> {
    Ok(git_ok(dir, &["rev-parse", "--show-toplevel"])
        .await?
        .map(PathBuf::from))
}

/// The commit HEAD points to, or `None` (not a repository, or no commit yet).
pub async fn head_commit(dir: &Path) -> Result<Option<String>, WorkspaceError> {
    git_ok(dir, &["rev-parse", "--verify", "--quiet", "HEAD^{commit}"]).await
}

async fn rev(dir: &Path, name: &str) -> Result<Option<String>, WorkspaceError> {
    let spec = format!("{name}^{{commit}}");
    git_ok(dir, &["rev-parse", "--verify", "--quiet", &spec]).await
}

async fn merge_base(dir: &Path, a: &str, b: &str) -> Result<Option<String>, WorkspaceError> {
    git_ok(dir, &["merge-base", a, b]).await
}

/// The base ref for "what changed", as OpenHands picks it: the branch's upstream
/// `origin/<branch>` unless it is HEAD itself; else the merge-base with the remote default
/// branch, or with a local main/master; else HEAD; else the empty tree.
pub async fn base_ref(dir: &Path) -> Result<String, WorkspaceError> {
    let Some(head) = head_commit(dir).await? else {
        return Ok(EMPTY_TREE.to_string());
    };
    let branch = git_ok(dir, &["rev-parse", "--abbrev-ref", "HEAD"]).await?;
    if let Some(branch) = branch.filter(|b| b != "HEAD") {
        let upstream = format!("origin/{branch}");
        if let Some(sha) = rev(dir, &upstream).await? {
            if sha != head {
                return Ok(upstream);
            }
        }
    }
    let remote_default = git_ok(
        dir,
        &[
            "symbolic-ref",
            "--quiet",
            "--short",
            "refs/remotes/origin/HEAD",
        ],
    )
    .await?;
    let candidates = remote_default
        .into_iter()
        .chain(["origin/main", "origin/master", "main", "master"].map(String::from));
    for candidate in candidates {
        if rev(dir, &candidate).await?.is_some() {
            if let Some(base) = merge_base(dir, "HEAD", &candidate).await? {
                return Ok(base);
            }
        }
    }
    Ok(head)
}

/// Changed files under `dir` against the base ref, untracked files included. Outside a
/// repository: none.
pub async fn changes(dir: &Path) -> Result<Vec<GitChange>, WorkspaceError> {
    if repo_root(dir).await?.is_none() {
        return Ok(Vec::new());
    }
    let base = base_ref(dir).await?;
    let listing = git_checked(
        dir,
        &[
            "diff",
            "--name-status",
            "-M",
            "--relative",
            "-z",
            &base,
            "--",
            ".",
        ],
    )
    .await?;
    let mut out = parse_name_status(&String::from_utf8_lossy(&listing));
    let untracked = git_checked(
        dir,
        &[
            "ls-files",
            "--others",
            "--exclude-standard",
            "-z",
            "--",
            ".",
        ],
    )
    .await?;
    for path in String::from_utf8_lossy(&untracked)
        .split('\0')
        .filter(|p| !p.is_empty())
    {
        out.push(GitChange {
            status: GitChangeStatus::Added,
            path: path.to_string(),
        });
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Parses `git diff --name-status -z` output.
fn parse_name_status(listing: &str) -> Vec<GitChange> {
    let mut fields = listing.split('\0').filter(|f| !f.is_empty());
    let mut out = Vec::new();
    while let Some(code) = fields.next() {
        let status = match code.chars().next() {
            Some('A') => GitChangeStatus::Added,
            Some('D') => GitChangeStatus::Deleted,
            Some('R') => GitChangeStatus::Moved,
            Some('C') => GitChangeStatus::Added,
            _ => GitChangeStatus::Updated,
        };
        if matches!(code.chars().next(), Some('R') | Some('C')) {
            fields.next(); // the old path
        }
        if let Some(path) = fields.next() {
            out.push(GitChange {
                status,
                path: path.to_string(),
            });
        }
    }
    out
}

/// `file`'s content at the base ref (`original`) and on disk (`modified`).
pub async fn diff(file: &Path) -> Result<GitDiff, WorkspaceError> {
    let modified = tokio::fs::read(file)
        .await
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let dir = file.parent().unwrap_or(Path::new("/"));
    if !dir.is_dir() || repo_root(dir).await?.is_none() {
        return Ok(GitDiff {
            modified,
            original: None,
        });
    }
    let base = base_ref(dir).await?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let original = git_ok(dir, &["show", &format!("{base}:./{name}")]).await?;
    Ok(GitDiff { modified, original })
}

/// The patch of everything under `dir` that differs from `base` (a commit, or the empty tree),
/// untracked files included, binary-safe. Uses a temporary index so the repository's own index
/// is left as it was.
pub async fn patch_since(dir: &Path, base: &str) -> Result<String, WorkspaceError> {
    let index = git_checked(dir, &["rev-parse", "--git-path", "index"]).await?;
    let index = dir.join(String::from_utf8_lossy(&index).trim());
    let tmp = tempfile_path(dir).await?;
    if index.is_file() {
        tokio::fs::copy(&index, &tmp).await?;
    }
    let result = patch_with_index(dir, base, &tmp).await;
    let _ = tokio::fs::remove_file(&tmp).await;
    result
}

async fn tempfile_path(dir: &Path) -> Result<PathBuf, WorkspaceError> {
    let git_dir = git_checked(dir, &["rev-parse", "--absolute-git-dir"]).await?;
    let git_dir = PathBuf::from(String::from_utf8_lossy(&git_dir).trim());
    Ok(git_dir.join(format!("sandcrab-index-{}", uuid::Uuid::new_v4().simple())))
}

async fn patch_with_index(dir: &Path, base: &str, index: &Path) -> Result<String, WorkspaceError> {
    let run = |args: Vec<&str>| {
        let mut cmd = Command::new("git");
        cmd.args(args).current_dir(dir).env("GIT_INDEX_FILE", index);
        cmd
    };
    let added = run(vec!["add", "-A", "--", "."]).output().await?;
    if !added.status.success() {
        return Err(WorkspaceError::Git(format!(
            "git add failed: {}",
            String::from_utf8_lossy(&added.stderr).trim()
        )));
    }
    let out = run(vec![
        "diff",
        "--cached",
        "--binary",
        "--no-color",
        base,
        "--",
        ".",
    ])
    .output()
    .await?;
    if !out.status.success() {
        return Err(WorkspaceError::Git(format!(
            "git diff failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_status_parses_renames_and_kinds() {
        let listing = "M\0a.txt\0R100\0old.txt\0new.txt\0D\0gone.txt\0A\0fresh.txt\0";
        let changes = parse_name_status(listing);
        let pairs: Vec<_> = changes
            .iter()
            .map(|c| (c.status, c.path.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                (GitChangeStatus::Updated, "a.txt"),
                (GitChangeStatus::Moved, "new.txt"),
                (GitChangeStatus::Deleted, "gone.txt"),
                (GitChangeStatus::Added, "fresh.txt"),
            ]
        );
    }
}
