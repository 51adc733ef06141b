//! Every git command sandcrab itself runs on the runner (diff, commit, fetch, push, reading a
//! config): one builder, so none of them runs what the repository (or an agent that edited it)
//! controls, and none of them sees the runner's secrets.
//!
//! - The environment is cleared down to an allowlist (paths, locale, TLS and proxy settings):
//!   no model key, no session key, no `GIT_*` variable from the job.
//! - `-c` settings that beat the repository's config turn off what runs programs: hooks
//!   (`core.hooksPath=/dev/null`), the fsmonitor, `core.sshCommand`, askpass, credential
//!   helpers, and the clean/smudge/process commands of every filter driver the repository's
//!   config names (the driver then passes content through unchanged).
//! - No prompt ever waits for a terminal.
//!
//! Diffs are made with `--no-ext-diff --no-textconv` by their callers (see [`DIFF_SAFE`]).

use std::path::Path;
use std::process::Command;

/// Variables passed through to git; everything else is dropped.
const KEPT_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "TMPDIR",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "GIT_SSL_CAINFO",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
];

/// Settings that switch off every program the repository's config could start.
const SAFE_CONFIG: &[&str] = &[
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.sshCommand=ssh",
    "core.askPass=",
    "credential.helper=",
    "diff.external=",
    "protocol.ext.allow=never",
];

/// Flags for `git diff`/`git log -p` that keep external diff drivers and textconv off.
pub const DIFF_SAFE: &[&str] = &["--no-ext-diff", "--no-textconv"];

/// `git` in `dir`, hardened (see the module doc).
pub fn command(dir: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir).env_clear();
    for name in KEPT_ENV {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    cmd.env("GIT_TERMINAL_PROMPT", "0");
    for setting in SAFE_CONFIG {
        cmd.arg("-c").arg(setting);
    }
    for driver in filter_drivers(dir) {
        for part in ["clean", "smudge", "process"] {
            cmd.arg("-c").arg(format!("filter.{driver}.{part}="));
        }
        cmd.arg("-c").arg(format!("filter.{driver}.required=false"));
    }
    cmd
}

/// [`command`] for async callers; killed when dropped.
pub fn tokio_command(dir: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::from(command(dir));
    cmd.kill_on_drop(true);
    cmd
}

/// The names of the filter drivers the config seen from `dir` defines (read with git's own
/// parser; nothing runs).
fn filter_drivers(dir: &Path) -> Vec<String> {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .args(["config", "-z", "--name-only", "--get-regexp", r"^filter\."]);
    let Ok(out) = cmd.output() else {
        return Vec::new();
    };
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split('\0')
        .filter_map(|key| {
            let rest = key.strip_prefix("filter.")?;
            let (name, _) = rest.rsplit_once('.')?;
            Some(name.to_string())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The same settings as one string of `-c` arguments for a shell script run in a workspace
/// (the patch script), each shell-quoted.
pub fn shell_config_args() -> String {
    SAFE_CONFIG
        .iter()
        .map(|s| format!("-c '{s}'"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let ok = Command::new("git")
            .current_dir(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(ok.status.success(), "{ok:?}");
    }

    #[test]
    fn no_hook_fsmonitor_or_filter_of_the_repository_runs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let marker = d.join("ran");
        git(d, &["init", "-q"]);
        let script = format!("touch {}; cat", marker.display());
        git(d, &["config", "filter.evil.clean", &script]);
        git(d, &["config", "filter.evil.required", "true"]);
        git(
            d,
            &[
                "config",
                "core.fsmonitor",
                &format!("touch {}", marker.display()),
            ],
        );
        std::fs::write(d.join(".gitattributes"), "* filter=evil\n").unwrap();
        std::fs::create_dir_all(d.join(".git/hooks")).unwrap();
        let hook = d.join(".git/hooks/pre-commit");
        std::fs::write(&hook, format!("#!/bin/sh\ntouch {}\n", marker.display())).unwrap();
        std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        std::fs::write(d.join("a.txt"), "a\n").unwrap();
        let run = |args: &[&str]| {
            let out = command(d)
                .args(args)
                .env("GIT_AUTHOR_NAME", "t")
                .env("GIT_AUTHOR_EMAIL", "t@t")
                .env("GIT_COMMITTER_NAME", "t")
                .env("GIT_COMMITTER_EMAIL", "t@t")
                .output()
                .unwrap();
            assert!(out.status.success(), "{args:?}: {out:?}");
        };
        run(&["add", "-A"]);
        run(&["status", "--short"]);
        run(&["commit", "-q", "-m", "x"]);
        assert!(!marker.exists(), "a repository-controlled program ran");
    }

    #[test]
    fn the_environment_is_an_allowlist() {
        std::env::set_var("SANDCRAB_TEST_RUNNER_GIT_SECRET", "sk-visible");
        let out = command(Path::new("/"))
            .args(["-c", "alias.envdump=!env", "envdump"])
            .output()
            .unwrap();
        let env = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}");
        assert!(!env.contains("sk-visible"), "{env}");
        assert!(env.contains("GIT_TERMINAL_PROMPT=0"), "{env}");
    }
}
