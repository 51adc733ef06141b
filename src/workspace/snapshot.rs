//! The repository as it enters a sandbox, the same for every workspace kind (the Docker seed
//! archive, the Cloud and Runtime API upload, the Apptainer copy): one tar, built here.
//!
//! - sandcrab's own outputs (`--out`, `--persistence-dir`) when they sit inside the checkout
//!   are left out, by path (a user's `.gitignore` is not trusted to do it);
//! - every git config of the tree (`.git/config`, `.git/config.worktree`,
//!   `.git/modules/**/config`, `.git/worktrees/*/config.worktree`, nested repositories alike)
//!   is rewritten from an ALLOWLIST of keys read with git's own parser
//!   (`git config -f FILE --no-includes --list -z`): `core.*` without what runs programs or
//!   points at runner files, `extensions.*`, `remote.*.url`/`pushurl` (user:password removed),
//!   `remote.*.fetch`, `branch.*`, `submodule.*.{url,path,active}`. Everything else
//!   (extra headers with the job token, credential helpers, `url.*.insteadOf`, includes,
//!   filters, aliases) never enters a sandbox. A config git cannot read goes in empty.
//!
//! Symlinks are stored as links, never followed; modes and mtimes are kept; sockets, fifos and
//! devices are skipped.

use std::fs::Metadata;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use tar::{Builder, EntryType, Header};

/// uid and gid of the archived files (`None`: as on disk).
pub type Owner = (u64, u64);

/// `core.*` keys that run a program or name a file of the runner.
const CORE_DENIED: &[&str] = &[
    "fsmonitor",
    "fsmonitorhookversion",
    "hookspath",
    "sshcommand",
    "askpass",
    "editor",
    "pager",
    "gitproxy",
    "alternaterefscommand",
    "attributesfile",
    "excludesfile",
];

/// Appends the tree at `local` under the archive name `name`: `exclude` (paths relative to
/// `local`) left out, git configs rewritten (see the module doc), files owned by `owner`.
pub fn append<W: Write>(
    tar: &mut Builder<W>,
    local: &Path,
    name: &str,
    owner: Option<Owner>,
    exclude: &[PathBuf],
) -> io::Result<()> {
    let walk = Walk {
        root: local,
        owner,
        exclude,
    };
    walk.entry(tar, local, name)
}

/// The snapshot of `repo` as a tar file at `dest`, names relative to the repository.
pub fn write_tar_file(repo: &Path, dest: &Path, exclude: &[PathBuf]) -> io::Result<()> {
    let file = std::fs::File::create(dest)?;
    let mut tar = Builder::new(io::BufWriter::new(file));
    append(&mut tar, repo, ".", None, exclude)?;
    tar.into_inner()?.into_inner().map_err(|e| e.into_error())?;
    Ok(())
}

/// Those of `outputs` (paths as given, relative to the current directory) that lie inside
/// `repo`, as paths relative to it: what a snapshot and a patch leave out.
pub fn outputs_inside(repo: &Path, outputs: &[&Path]) -> Vec<PathBuf> {
    let repo = absolute(repo);
    let mut out: Vec<PathBuf> = outputs
        .iter()
        .filter_map(|p| absolute(p).strip_prefix(&repo).ok().map(Path::to_path_buf))
        .filter(|rel| !rel.as_os_str().is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `path` absolute, through the links of the part that exists, `..` resolved lexically.
fn absolute(path: &Path) -> PathBuf {
    let joined = std::env::current_dir()
        .map(|cwd| cwd.join(path))
        .unwrap_or_else(|_| path.to_path_buf());
    let mut existing = joined.clone();
    let mut tail = Vec::new();
    while !existing.exists() {
        match (
            existing.file_name().map(|n| n.to_owned()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                tail.push(name);
                existing = parent.to_path_buf();
            }
            _ => break,
        }
    }
    let mut out = existing.canonicalize().unwrap_or(existing);
    for name in tail.into_iter().rev() {
        out.push(name);
    }
    let mut clean = PathBuf::new();
    for part in out.components() {
        match part {
            Component::ParentDir => {
                clean.pop();
            }
            Component::CurDir => {}
            other => clean.push(other),
        }
    }
    clean
}

struct Walk<'a> {
    root: &'a Path,
    owner: Option<Owner>,
    exclude: &'a [PathBuf],
}

impl Walk<'_> {
    fn entry<W: Write>(&self, tar: &mut Builder<W>, local: &Path, name: &str) -> io::Result<()> {
        let rel = local.strip_prefix(self.root).unwrap_or(local);
        if self.exclude.iter().any(|x| x == rel) {
            return Ok(());
        }
        let meta = std::fs::symlink_metadata(local)?;
        let kind = meta.file_type();
        let mut header = self.header_for(&meta);
        if kind.is_symlink() {
            header.set_entry_type(EntryType::Symlink);
            tar.append_link(&mut header, name, std::fs::read_link(local)?)
        } else if kind.is_file() && is_git_config(rel, local) {
            let clean = clean_git_config(local);
            header.set_size(clean.len() as u64);
            tar.append_data(&mut header, name, clean.as_bytes())
        } else if kind.is_file() {
            header.set_size(meta.len());
            tar.append_data(&mut header, name, std::fs::File::open(local)?)
        } else if kind.is_dir() {
            header.set_entry_type(EntryType::Directory);
            tar.append_data(&mut header, name, io::empty())?;
            for child in sorted_children(local)? {
                let child_name = if name == "." {
                    child.to_string_lossy().into_owned()
                } else {
                    format!("{name}/{}", child.to_string_lossy())
                };
                self.entry(tar, &local.join(&child), &child_name)?;
            }
            Ok(())
        } else {
            Ok(()) // sockets, fifos, devices: nothing a repository needs
        }
    }

    fn header_for(&self, meta: &Metadata) -> Header {
        let mut header = Header::new_gnu();
        header.set_entry_type(EntryType::Regular);
        header.set_mode(meta.permissions().mode() & 0o7777);
        let (uid, gid) = self
            .owner
            .unwrap_or((u64::from(meta.uid()), u64::from(meta.gid())));
        header.set_uid(uid);
        header.set_gid(gid);
        header.set_size(0);
        header.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
        header
    }
}

fn sorted_children(dir: &Path) -> io::Result<Vec<std::ffi::OsString>> {
    let mut names = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<Vec<_>>>()?;
    names.sort();
    Ok(names)
}

/// A git directory's `config` or `config.worktree`: named so, under a `.git` folder, beside a
/// `HEAD` (the main git dir, a submodule's under `modules/`, a worktree's under `worktrees/`).
fn is_git_config(rel: &Path, local: &Path) -> bool {
    let named = rel
        .file_name()
        .is_some_and(|n| n == "config" || n == "config.worktree");
    named
        && rel.components().any(|c| c.as_os_str() == ".git")
        && local.parent().is_some_and(|dir| dir.join("HEAD").is_file())
}

/// The config at `path` rebuilt from the allowlist; empty when git cannot read it.
pub fn clean_git_config(path: &Path) -> String {
    let out = crate::runner_git::command(&std::env::temp_dir())
        .args(["config", "--no-includes", "--list", "-z", "-f"])
        .arg(path)
        .output();
    match out {
        Ok(out) if out.status.success() => allowlisted(&String::from_utf8_lossy(&out.stdout)),
        _ => {
            eprintln!(
                "sandcrab: warning: git cannot read {}; it goes into the sandbox empty",
                path.display()
            );
            String::new()
        }
    }
}

/// `git config --list -z` output (`key\nvalue\0`, or `key\0` for a bare boolean) as a config
/// file holding only the allowed keys.
fn allowlisted(listing: &str) -> String {
    let mut text = String::new();
    let mut current: Option<(String, String)> = None;
    for record in listing.split('\0').filter(|r| !r.is_empty()) {
        let (key, value) = match record.split_once('\n') {
            Some((k, v)) => (k, Some(v)),
            None => (record, None),
        };
        let Some((section, sub, name)) = split_key(key) else {
            continue;
        };
        let Some(value) = allowed_value(section, sub, name, value) else {
            continue;
        };
        let header = (section.to_string(), sub.to_string());
        if current.as_ref() != Some(&header) {
            if sub.is_empty() {
                text.push_str(&format!("[{section}]\n"));
            } else {
                text.push_str(&format!("[{section} \"{}\"]\n", escape(sub)));
            }
            current = Some(header);
        }
        match value {
            Some(v) => text.push_str(&format!("\t{name} = \"{}\"\n", escape(&v))),
            None => text.push_str(&format!("\t{name}\n")),
        }
    }
    text
}

/// `section.sub.name` (the subsection may hold dots) or `section.name`.
fn split_key(key: &str) -> Option<(&str, &str, &str)> {
    let (section, rest) = key.split_once('.')?;
    Some(match rest.rsplit_once('.') {
        Some((sub, name)) => (section, sub, name),
        None => (section, "", rest),
    })
}

/// The value to write when the key is allowed (`Some(None)`: a bare boolean).
fn allowed_value(
    section: &str,
    sub: &str,
    name: &str,
    value: Option<&str>,
) -> Option<Option<String>> {
    let keep = || Some(value.map(str::to_string));
    let url = || Some(value.map(without_userinfo));
    match (section, sub.is_empty(), name) {
        ("core", true, n) if !CORE_DENIED.contains(&n) => keep(),
        ("extensions", true, _) => keep(),
        ("remote", false, "url" | "pushurl") => url(),
        ("remote", false, "fetch") => keep(),
        ("branch", false, _) => keep(),
        ("submodule", false, "url") => url(),
        ("submodule", false, "path" | "active") => keep(),
        _ => None,
    }
}

/// `scheme://user:pass@host/...` as `scheme://host/...`; other forms unchanged.
fn without_userinfo(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_string();
    };
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    match url[start..end].rfind('@') {
        Some(at) => format!("{}{}", &url[..start], &url[start + at + 1..]),
        None => url.to_string(),
    }
}

/// A value or subsection inside double quotes.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .replace('\t', "\\t")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What actions/checkout and common setups leave in a git config, a key on a header line
    /// included.
    const CHECKOUT_CONFIG: &str = "[core]\n\trepositoryformatversion = 0\n\tbare = false\n\
\tfsmonitor = curl evil\n\thooksPath = /tmp/h\n\tsshCommand = ssh -i key\n\tlogallrefupdates\n\
[remote \"origin\"]\n\turl = https://x-access-token:ghs_SECRET1@github.com/o/r\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n\
[http \"https://github.com/\"] extraheader = AUTHORIZATION: basic SECRET2\n\
[url \"https://oauth2:glpat-SECRET3@gitlab.com/\"]\n\tinsteadOf = https://gitlab.com/\n\
[credential]\n\thelper = store --file /home/runner/.git-credentials\n\
[http]\n\tExtraHeader = Authorization: bearer SECRET4 \\\n\t  continued\n\
[include]\n\tpath = /home/runner/.secret-config\n\
[filter \"lfs\"]\n\tclean = git-lfs clean -- %f\n\
[branch \"feat.x\"]\n\tremote = origin\n\tmerge = refs/heads/feat.x\n\
[submodule \"lib\"]\n\turl = https://u:SECRET5@github.com/o/lib\n\tactive = true\n\tupdate = !sh evil\n";

    #[test]
    fn only_allowed_keys_are_written_and_git_reads_them_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, CHECKOUT_CONFIG).unwrap();
        let out = clean_git_config(&path);
        for bad in [
            "SECRET",
            "continued",
            "helper",
            "insteadof",
            "extraheader",
            "evil",
            "hooks",
            "ssh",
            "include",
            "lfs",
        ] {
            assert!(
                !out.to_lowercase().contains(&bad.to_lowercase()),
                "{bad} in\n{out}"
            );
        }
        std::fs::write(&path, &out).unwrap();
        let back = clean_git_config(&path);
        assert_eq!(back, out, "the rewrite is stable");
        for kept in [
            "repositoryformatversion = \"0\"",
            "\tlogallrefupdates\n",
            "url = \"https://github.com/o/r\"",
            "fetch = \"+refs/heads/*:refs/remotes/origin/*\"",
            "[branch \"feat.x\"]\n\tremote = \"origin\"",
            "url = \"https://github.com/o/lib\"",
        ] {
            assert!(out.contains(kept), "{kept} missing from\n{out}");
        }
    }

    #[test]
    fn configs_are_found_where_git_keeps_them_and_outputs_are_left_out() {
        let repo = tempfile::tempdir().unwrap();
        let r = repo.path();
        let secret =
            "[http]\n\textraheader = AUTHORIZATION: basic SECRET\n[core]\n\tbare = false\n";
        for dir in [
            ".git",
            ".git/modules/lib",
            ".git/worktrees/wt",
            "nested/.git",
        ] {
            std::fs::create_dir_all(r.join(dir)).unwrap();
            std::fs::write(r.join(dir).join("HEAD"), "ref: refs/heads/main\n").unwrap();
            std::fs::write(r.join(dir).join("config"), secret).unwrap();
        }
        std::fs::write(r.join(".git/worktrees/wt/config.worktree"), secret).unwrap();
        std::fs::create_dir_all(r.join(".git/refs/heads")).unwrap();
        std::fs::write(r.join(".git/refs/heads/config"), "0123abcd\n").unwrap();
        std::fs::write(r.join("config"), "extraheader = a file of the project\n").unwrap();
        std::fs::create_dir_all(r.join("sandcrab-out/conversations")).unwrap();
        std::fs::write(r.join("sandcrab-out/conversations/e.json"), "{}").unwrap();
        let mut tar = Builder::new(Vec::new());
        append(&mut tar, r, "w", None, &[PathBuf::from("sandcrab-out")]).unwrap();
        let bytes = tar.into_inner().unwrap();
        let mut files = std::collections::HashMap::new();
        for entry in tar::Archive::new(&bytes[..]).entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut text = String::new();
            io::Read::read_to_string(&mut entry, &mut text).unwrap();
            files.insert(name, text);
        }
        for config in [
            "w/.git/config",
            "w/.git/modules/lib/config",
            "w/.git/worktrees/wt/config",
            "w/.git/worktrees/wt/config.worktree",
            "w/nested/.git/config",
        ] {
            assert_eq!(files[config], "[core]\n\tbare = \"false\"\n", "{config}");
        }
        assert_eq!(files["w/.git/refs/heads/config"], "0123abcd\n");
        assert_eq!(files["w/config"], "extraheader = a file of the project\n");
        assert!(
            files.keys().all(|n| !n.contains("sandcrab-out")),
            "{:?}",
            files.keys()
        );
    }

    #[test]
    fn outputs_inside_the_repository_are_found() {
        let repo = tempfile::tempdir().unwrap();
        let r = repo.path();
        let inside = r.join("sandcrab-out");
        let persistence = r.join("sandcrab-out/conversations");
        let elsewhere = tempfile::tempdir().unwrap();
        let found = outputs_inside(r, &[&inside, &persistence, elsewhere.path()]);
        assert_eq!(
            found,
            vec![
                PathBuf::from("sandcrab-out"),
                PathBuf::from("sandcrab-out/conversations")
            ]
        );
        assert!(outputs_inside(r, &[r]).is_empty());
    }

    #[test]
    fn userinfo_is_removed_from_urls() {
        assert_eq!(
            without_userinfo("https://x:tok@github.com/o/r"),
            "https://github.com/o/r"
        );
        assert_eq!(without_userinfo("git@github.com:o/r"), "git@github.com:o/r");
        assert_eq!(
            without_userinfo("https://github.com/a@b"),
            "https://github.com/a@b"
        );
    }
}
