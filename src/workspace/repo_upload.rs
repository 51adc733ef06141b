//! Copying a repository into a sandbox that has no archive API (Cloud, Runtime API): the
//! repository's snapshot (`snapshot`: `.git` included with allowlisted configs, sandcrab's
//! outputs left out, symlinks kept as links) becomes one tar, uploaded
//! through the agent-server's `POST /api/file/upload` to a scratch path and unpacked into the
//! working directory by a shell command (`tar -x -o`, so the sandbox user owns the files),
//! which then deletes the tar. Needs `sh` and `tar` in the sandbox image.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::remote::shell_quote;
use super::snapshot;
use super::{ExecRequest, RemoteWorkspace, Workspace, WorkspaceError};

/// How long unpacking may take.
const UNPACK_TIMEOUT: Duration = Duration::from_secs(600);

/// Puts the tree at `repo` into the sandbox at its working directory.
pub async fn upload_repo(
    remote: &RemoteWorkspace,
    repo: &Path,
    exclude: &[PathBuf],
) -> Result<(), WorkspaceError> {
    // Owner-only, and removed when dropped: also when a cancel drops this future mid-upload.
    let local = tempfile::Builder::new()
        .prefix("sandcrab-repo-")
        .suffix(".tar")
        .tempfile()
        .map_err(|e| WorkspaceError::Transfer(format!("cannot create a temporary file: {e}")))?;
    let (root, tar_at, exclude) = (
        repo.to_path_buf(),
        local.path().to_path_buf(),
        exclude.to_vec(),
    );
    tokio::task::spawn_blocking(move || snapshot::write_tar_file(&root, &tar_at, &exclude))
        .await
        .map_err(|e| WorkspaceError::Internal(e.to_string()))?
        .map_err(|e| WorkspaceError::Transfer(format!("cannot archive {}: {e}", repo.display())))?;
    crate::cancel::stage("during-repo-upload").await;
    let remote_tar = format!("/tmp/.sandcrab-repo-{}.tar", uuid::Uuid::new_v4().simple());
    let uploaded = remote.upload(local.path(), &remote_tar).await;
    drop(local);
    let uploaded = uploaded?;
    if !uploaded.success {
        return Err(WorkspaceError::Transfer(format!(
            "cannot upload the repository into the sandbox: {}",
            uploaded.error.unwrap_or_default()
        )));
    }
    let workdir = shell_quote(remote.working_dir());
    let tar = shell_quote(&remote_tar);
    let command = format!(
        "mkdir -p {workdir} && tar -x -o -f {tar} -C {workdir}; status=$?; rm -f {tar}; exit $status"
    );
    let unpacked = remote
        .execute(ExecRequest::new(command).cwd("/").timeout(UNPACK_TIMEOUT))
        .await?;
    if unpacked.exit_code != 0 {
        return Err(WorkspaceError::Transfer(format!(
            "cannot unpack the repository in the sandbox (exit {}): {}; the image needs sh and tar",
            unpacked.exit_code,
            unpacked.stderr.trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tar_holds_the_tree_with_links() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".git/refs")).unwrap();
        std::fs::write(dir.path().join("a.txt"), "a").unwrap();
        std::os::unix::fs::symlink("a.txt", dir.path().join("link")).unwrap();
        let out = dir.path().join("../out.tar");
        snapshot::write_tar_file(dir.path(), &out, &[]).unwrap();
        let mut names = Vec::new();
        let mut archive = tar::Archive::new(std::fs::File::open(&out).unwrap());
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            let kind = entry.header().entry_type();
            names.push((
                entry.path().unwrap().display().to_string(),
                kind.is_symlink(),
            ));
        }
        std::fs::remove_file(out).unwrap();
        assert!(names.contains(&("a.txt".into(), false)), "{names:?}");
        assert!(names.contains(&("link".into(), true)), "{names:?}");
        assert!(
            names.iter().any(|(n, _)| n.starts_with(".git")),
            "{names:?}"
        );
    }
}
