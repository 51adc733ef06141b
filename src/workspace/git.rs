//! Git queries on a local directory: changed files and file diffs against the base ref
//! OpenHands picks, and the patch of everything changed since a commit (untracked files
//! included, without touching the repository's index).

use std::path::{Path, PathBuf};
use std::process::Output;

use serde::{Deserialize, Serialize};

use super::{ExecRequest, Workspace, WorkspaceError};

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
    crate::runner_git::tokio_command(dir)
        .args(args)
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

/// The commit `name` (a branch, tag, sha...) points to, or `None` when it names no commit.
pub async fn rev(dir: &Path, name: &str) -> Result<Option<String>, WorkspaceError> {
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
    changes_since(dir, &base, false).await
}

/// Changed files under `dir` (inside a repository) against `base`, untracked files included,
/// sorted by path. A rename is one `MOVED` change of the new path, or, with `split_renames` (as
/// OpenHands' agent-server answers), a `DELETED` old path and an `ADDED` new one.
pub async fn changes_since(
    dir: &Path,
    base: &str,
    split_renames: bool,
) -> Result<Vec<GitChange>, WorkspaceError> {
    let listing = git_checked(
        dir,
        &[
            "diff",
            "--name-status",
            "-M",
            "--relative",
            "-z",
            base,
            "--",
            ".",
        ],
    )
    .await?;
    let mut out = parse_name_status(&String::from_utf8_lossy(&listing), split_renames);
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
fn parse_name_status(listing: &str, split_renames: bool) -> Vec<GitChange> {
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
            let old = fields.next();
            if let (true, Some(old), GitChangeStatus::Moved) = (split_renames, old, status) {
                out.push(GitChange {
                    status: GitChangeStatus::Deleted,
                    path: old.to_string(),
                });
            }
        }
        if let Some(path) = fields.next() {
            let status = match status {
                GitChangeStatus::Moved if split_renames => GitChangeStatus::Added,
                other => other,
            };
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

/// The size of the blob `spec` (`<rev>:<path>`) names, or `None` when it names no blob.
pub async fn blob_size(dir: &Path, spec: &str) -> Result<Option<u64>, WorkspaceError> {
    if git_ok(dir, &["cat-file", "-t", spec]).await?.as_deref() != Some("blob") {
        return Ok(None);
    }
    let size = git_ok(dir, &["cat-file", "-s", spec]).await?;
    Ok(size.and_then(|s| s.parse().ok()))
}

/// The content of the blob `spec` (`<rev>:<path>`) names, byte for byte, or `None` when it
/// names no blob.
pub async fn blob(dir: &Path, spec: &str) -> Result<Option<Vec<u8>>, WorkspaceError> {
    if git_ok(dir, &["cat-file", "-t", spec]).await?.as_deref() != Some("blob") {
        return Ok(None);
    }
    let out = git(dir, &["cat-file", "blob", spec]).await?;
    Ok(out.status.success().then_some(out.stdout))
}

/// The commit the workspace's repository is at: `None` outside a repository, the empty tree in
/// one with no commit yet. Runs through `Workspace::execute`, so it works on every kind.
pub async fn workspace_base(ws: &dyn Workspace) -> Result<Option<String>, WorkspaceError> {
    let probe = "git rev-parse --is-inside-work-tree >/dev/null 2>&1 || { echo none; exit 0; }; \
                 git rev-parse --verify --quiet 'HEAD^{commit}' || echo empty";
    let out = ws.execute(ExecRequest::new(probe)).await?;
    if out.exit_code != 0 {
        return Err(WorkspaceError::Git(format!(
            "cannot read the repository's HEAD: {}",
            out.stderr.trim()
        )));
    }
    Ok(match out.stdout.trim() {
        "none" => None,
        "empty" => Some(EMPTY_TREE.to_string()),
        sha => Some(sha.to_string()),
    })
}

/// The patch of everything in the working directory that differs from `base` (a commit or the
/// empty tree), untracked files included, binary-safe. A temporary index keeps the
/// repository's own index as it was; it is copied with its mtime (`cp -p`), or git's
/// racy-clean check would miss a same-size edit made in the second the index was written.
/// Runs through `Workspace::execute`.
///
/// Command output reaches us as text, so bytes that are not UTF-8 (a latin-1 file's diff)
/// arrive replaced by U+FFFD and the patch would no longer apply. When the text holds U+FFFD,
/// the patch is made again with every file as a git binary patch (base85, plain ASCII), which
/// applies byte for byte.
///
/// `exclude` (paths relative to the working directory: sandcrab's outputs) never enters the
/// patch. Git runs with the repository's hooks, fsmonitor, filters, external diff and textconv
/// switched off (see `runner_git`): in a Local workspace this script runs on the runner.
pub async fn workspace_patch(
    ws: &dyn Workspace,
    base: &str,
    exclude: &[PathBuf],
) -> Result<String, WorkspaceError> {
    if !base.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(WorkspaceError::Git(format!("'{base}' is not a commit id")));
    }
    let pathspec = patch_pathspec(exclude);
    let patch = patch_with(ws, base, false, &pathspec).await?;
    if !patch.contains('\u{FFFD}') {
        return Ok(patch);
    }
    patch_with(ws, base, true, &pathspec).await
}

/// `. ':(exclude)PATH'...`, shell-quoted.
fn patch_pathspec(exclude: &[PathBuf]) -> String {
    let mut spec = String::from(".");
    for path in exclude {
        let quoted = super::remote::shell_quote(&format!(":(exclude){}", path.display()));
        spec.push(' ');
        spec.push_str(&quoted);
    }
    spec
}

/// Runs the patch script; `all_binary` marks every path `binary` for the diff through a
/// scratch `core.attributesFile`.
async fn patch_with(
    ws: &dyn Workspace,
    base: &str,
    all_binary: bool,
    pathspec: &str,
) -> Result<String, WorkspaceError> {
    let safe = crate::runner_git::shell_config_args();
    let no_ext = crate::runner_git::DIFF_SAFE.join(" ");
    let attrs = if all_binary {
        "attrs=$(mktemp \"${TMPDIR:-/tmp}/sandcrab-attrs.XXXXXX\"); echo '* binary' > \"$attrs\"; \
         bin=\"-c core.attributesFile=$attrs\"; "
    } else {
        "attrs=; bin=; "
    };
    // Every filter driver the config names is emptied (a newline-split, glob-free list).
    let filters = "set -f; nl='\n'; ifs=$IFS; IFS=$nl; \
         for k in $(git config --name-only --get-regexp '^filter\\.' 2>/dev/null); do set -- \"$@\" -c \"$k=\"; done; \
         IFS=$ifs; set +f; ";
    let script = format!(
        "set -e; set -- {safe}; {attrs}{filters}idx=$(git rev-parse --git-path index); tmp=$(mktemp \"${{TMPDIR:-/tmp}}/sandcrab-index.XXXXXX\"); \
         trap 'rm -f \"$tmp\" $attrs' EXIT; if [ -f \"$idx\" ]; then cp -p \"$idx\" \"$tmp\"; else rm -f \"$tmp\"; fi; \
         GIT_INDEX_FILE=\"$tmp\" git \"$@\" add -A -- {pathspec}; GIT_INDEX_FILE=\"$tmp\" git \"$@\" $bin diff --cached --binary --no-color {no_ext} {base} -- {pathspec}"
    );
    let out = ws
        .execute(ExecRequest::new(script).timeout(std::time::Duration::from_secs(300)))
        .await?;
    if out.exit_code != 0 {
        return Err(WorkspaceError::Git(format!(
            "cannot compute the patch: {}",
            out.stderr.trim()
        )));
    }
    Ok(out.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_status_parses_renames_and_kinds() {
        let listing = "M\0a.txt\0R100\0old.txt\0new.txt\0D\0gone.txt\0A\0fresh.txt\0";
        let changes = parse_name_status(listing, false);
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

    #[test]
    fn name_status_splits_renames_when_asked() {
        let listing = "R100\0old.txt\0new.txt\0C90\0src.txt\0copy.txt\0";
        let changes = parse_name_status(listing, true);
        let pairs: Vec<_> = changes
            .iter()
            .map(|c| (c.status, c.path.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                (GitChangeStatus::Deleted, "old.txt"),
                (GitChangeStatus::Added, "new.txt"),
                (GitChangeStatus::Added, "copy.txt"),
            ]
        );
    }
}
