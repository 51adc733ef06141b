//! Tar archives built and read in memory, for the Docker archive API: the seed archive (the
//! agent-server binary, its conversations dir, the working dir and the repository), uploads
//! (a local file or tree at a container path) and downloads (a container path to a local one).
//!
//! Archives are extracted by the engine at `/`, with names relative to it; the engine creates
//! missing parent directories. Symlinks are stored as symlinks, never followed, and modes are
//! kept. Files belong to `owner` (the container user's uid/gid, root by default), so tools in
//! the container (git's ownership check, the agent's edits) treat them as their own.

use std::io;
use std::path::{Component, Path, PathBuf};

use tar::{Builder, EntryType, Header};

use crate::workspace::snapshot;
pub use crate::workspace::snapshot::Owner;

/// Where the seed archive puts things.
pub struct Seed<'a> {
    pub binary: &'a Path,
    pub binary_at: &'a str,
    pub conversations_dir: &'a str,
    pub workdir: &'a str,
    pub repo: Option<&'a Path>,
    /// Paths inside `repo` left out (sandcrab's outputs).
    pub exclude: &'a [PathBuf],
    pub owner: Owner,
}

/// The archive that prepares a container before it starts.
pub fn seed_archive(seed: &Seed<'_>) -> io::Result<Vec<u8>> {
    let mut tar = Builder::new(Vec::new());
    let binary = std::fs::File::open(seed.binary)?;
    let len = binary.metadata()?.len();
    let mut header = plain_header(EntryType::Regular, 0o755, (0, 0));
    header.set_size(len);
    tar.append_data(&mut header, rel(seed.binary_at), binary)?;
    append_dir(&mut tar, seed.conversations_dir, 0o777, seed.owner)?;
    match seed.repo {
        Some(repo) => snapshot::append(
            &mut tar,
            repo,
            &rel(seed.workdir),
            Some(seed.owner),
            seed.exclude,
        )?,
        None => append_dir(&mut tar, seed.workdir, 0o755, seed.owner)?,
    }
    tar.into_inner()
}

/// An archive putting the local file or tree `source` at the absolute container path `dest`;
/// also returns the bytes of file content it holds.
pub fn path_archive(source: &Path, dest: &str, owner: Owner) -> io::Result<(Vec<u8>, u64)> {
    let mut tar = Builder::new(Vec::new());
    snapshot::append(&mut tar, source, &rel(dest), Some(owner), &[])?;
    let bytes = tar.into_inner()?;
    Ok((bytes, content_size(source)?))
}

/// Unpacks an archive from the engine (whose one top entry is the requested path) at `dest`;
/// returns the bytes of file content written.
pub fn unpack_at(archive: &[u8], dest: &Path) -> io::Result<u64> {
    let mut total = 0;
    let mut entries = tar::Archive::new(archive);
    for entry in entries.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.into_owned();
        let mut parts = name.components();
        parts.next();
        if parts.clone().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(io::Error::other(format!(
                "unsafe path in archive: {name:?}"
            )));
        }
        let rest = parts.as_path();
        through_no_link(dest, rest, &name)?;
        let target = if rest.as_os_str().is_empty() {
            dest.to_path_buf()
        } else {
            dest.join(rest)
        };
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        if entry.header().entry_type().is_file() {
            total += entry.header().size()?;
        }
        entry.unpack(&target)?;
    }
    Ok(total)
}

/// Refuses an entry whose parent folders under `dest` include a symlink (one an earlier entry
/// of the same archive may have made): writing through it could land outside `dest`.
fn through_no_link(dest: &Path, rest: &Path, name: &Path) -> io::Result<()> {
    let mut at = dest.to_path_buf();
    for part in rest.parent().into_iter().flat_map(Path::components) {
        at.push(part);
        let is_link = std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink());
        if is_link {
            return Err(io::Error::other(format!(
                "unsafe path in archive: {name:?} goes through the link {}",
                at.display()
            )));
        }
    }
    Ok(())
}

/// `/a/b` as the archive name `a/b`.
fn rel(path: &str) -> String {
    path.trim_start_matches('/').to_string()
}

fn plain_header(kind: EntryType, mode: u32, owner: Owner) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(owner.0);
    header.set_gid(owner.1);
    header.set_size(0);
    header.set_mtime(now());
    header
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn append_dir(tar: &mut Builder<Vec<u8>>, path: &str, mode: u32, owner: Owner) -> io::Result<()> {
    let mut header = plain_header(EntryType::Directory, mode, owner);
    tar.append_data(&mut header, rel(path), io::empty())
}

/// Bytes of regular-file content under `path` (symlinks not followed).
fn content_size(path: &Path) -> io::Result<u64> {
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.is_dir() {
        return Ok(if meta.is_file() { meta.len() } else { 0 });
    }
    let mut total = 0;
    for child in std::fs::read_dir(path)? {
        total += content_size(&child?.path())?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_tree_round_trips_with_modes_and_symlinks() {
        let src = tempfile::tempdir().unwrap();
        let root = src.path().join("d");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(root.join("sub/run.sh"), PermissionsExt::from_mode(0o755))
            .unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("link")).unwrap();
        let (bytes, size) = path_archive(&root, "/w/d", (0, 0)).unwrap();
        assert_eq!(size, 10);
        // The engine answers a download of /w/d with entries under `d/`; emulate that.
        let mut strip = tar::Archive::new(&bytes[..]);
        let names: Vec<String> = strip
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.contains(&"w/d/sub/run.sh".to_string()), "{names:?}");
        let out = tempfile::tempdir().unwrap();
        let (reroot, _) = path_archive(&root, "/d", (0, 0)).unwrap();
        let written = unpack_at(&reroot, &out.path().join("copy")).unwrap();
        assert_eq!(written, 10);
        let script = out.path().join("copy/sub/run.sh");
        let mode = std::fs::metadata(&script).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        let link = std::fs::read_link(out.path().join("copy/link")).unwrap();
        assert_eq!(link, Path::new("/etc/passwd"));
    }

    #[test]
    fn a_repository_goes_in_without_git_credentials() {
        let repo = tempfile::tempdir().unwrap();
        std::fs::create_dir(repo.path().join(".git")).unwrap();
        std::fs::write(repo.path().join(".git/HEAD"), "ref: refs/heads/main\n").unwrap();
        let config = "[remote \"origin\"]\n\turl = https://github.com/o/r\n[http \"https://github.com/\"]\n\textraheader = AUTHORIZATION: basic c2VjcmV0\n";
        std::fs::write(repo.path().join(".git/config"), config).unwrap();
        std::fs::write(
            repo.path().join("config"),
            "extraheader = kept: not a git config\n",
        )
        .unwrap();
        let (bytes, _) = path_archive(repo.path(), "/workspace", (0, 0)).unwrap();
        let mut files = std::collections::HashMap::new();
        for entry in tar::Archive::new(&bytes[..]).entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut text = String::new();
            std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
            files.insert(name, text);
        }
        assert_eq!(
            files["workspace/.git/config"],
            "[remote \"origin\"]\n\turl = \"https://github.com/o/r\"\n"
        );
        // Only a git directory's config is rewritten.
        assert_eq!(
            files["workspace/config"],
            "extraheader = kept: not a git config\n"
        );
    }

    #[test]
    fn unsafe_names_are_refused() {
        let mut tar = Builder::new(Vec::new());
        let mut header = plain_header(EntryType::Regular, 0o644, (0, 0));
        header.set_size(1);
        // `append_data` refuses `..`, so write the name into the header directly.
        header.as_gnu_mut().unwrap().name[..11].copy_from_slice(b"top/../evil");
        header.set_cksum();
        tar.append(&header, &b"x"[..]).unwrap();
        let bytes = tar.into_inner().unwrap();
        let out = tempfile::tempdir().unwrap();
        assert!(unpack_at(&bytes, out.path()).is_err());
    }
}
