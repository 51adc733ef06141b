//! The Apptainer SIF cache: a private directory of this user. A SIF found there is run with
//! the repository and the relay token, so the directory must be one no other user can write:
//! created 0700, and refused (with what to do) when it is a symlink, another user's, or open
//! to group or others; a cached SIF must be a regular file of this user that only it can
//! write. The default is `$XDG_CACHE_HOME/sandcrab/apptainer` (else `~/.cache/...`), never a
//! shared, predictable `/tmp` path another user could create first.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::WorkspaceError;

/// The default cache: `$XDG_CACHE_HOME/sandcrab/apptainer`, else `$HOME/.cache/...`, else a
/// per-user directory under the temporary directory (checked like any other).
pub fn default_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".cache"))
        });
    match base {
        Some(base) => base.join("sandcrab").join("apptainer"),
        None => std::env::temp_dir().join(format!("sandcrab-apptainer-cache-{}", uid())),
    }
}

/// Creates `dir` (0700) if missing and checks it is private to this user.
pub fn ensure_private_dir(dir: &Path) -> Result<(), WorkspaceError> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e.into()),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    let problem = if !meta.file_type().is_dir() {
        Some("is not a plain directory (a symlink?)".to_string())
    } else if meta.uid() != uid() {
        Some(format!(
            "belongs to uid {}, not to you (uid {})",
            meta.uid(),
            uid()
        ))
    } else if meta.mode() & 0o077 != 0 {
        Some(format!(
            "has mode {:o}, open to other users",
            meta.mode() & 0o777
        ))
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(why) => Err(WorkspaceError::Setup(format!(
            "apptainer: the SIF cache {} {why}; another user could plant an image there: use a private directory (--apptainer-cache) or `chmod 700` it",
            dir.display()
        ))),
    }
}

/// Whether a cached `sif` may be reused: `Ok(false)` when missing; an error when it is not a
/// regular file of this user that only this user can write.
pub fn reusable(sif: &Path) -> Result<bool, WorkspaceError> {
    let meta = match std::fs::symlink_metadata(sif) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    if meta.file_type().is_file() && meta.uid() == uid() && meta.mode() & 0o022 == 0 {
        return Ok(true);
    }
    Err(WorkspaceError::Setup(format!(
        "apptainer: the cached SIF {} is not a regular file of yours writable only by you; remove it (or use another --apptainer-cache)",
        sif.display()
    )))
}

fn uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_private_and_refuses_open_or_linked_dirs() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b/cache");
        ensure_private_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);

        let open = root.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = ensure_private_dir(&open).unwrap_err().to_string();
        assert!(e.contains("open to other users"), "{e}");

        let link = root.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).unwrap();
        assert!(ensure_private_dir(&link).is_err());
    }

    #[test]
    fn a_cached_sif_must_be_private() {
        let root = tempfile::tempdir().unwrap();
        let sif = root.path().join("x.sif");
        assert!(!reusable(&sif).unwrap());
        std::fs::write(&sif, b"sif").unwrap();
        std::fs::set_permissions(&sif, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(reusable(&sif).unwrap());
        std::fs::set_permissions(&sif, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(reusable(&sif).is_err());
    }
}
