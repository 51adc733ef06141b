//! A stand-in `apptainer` for tests (Apptainer cannot be installed here). It records every
//! invocation's arguments (one per line, in `log/N.args` beside the script) and a copy of the `--env-file`
//! (`LOG/N.env`), fakes `build` by writing a small file at the SIF path, and runs `exec`
//! for real as far as a host allows: the command after the SIF runs in new mount and PID
//! namespaces (as `--containall` gives), with a clean environment plus the env file, binds
//! whose target exists on the host really bind-mounted, and the others (the binary, the
//! conversations) mapped by rewriting the command's paths. It needs root (or user
//! namespaces) and `unshare`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

const SCRIPT: &str = r#"#!/bin/sh
log="$(dirname "$0")/log"
n=$(ls "$log" | grep -c '\.args$')
printf '%s\n' "$@" > "$log/$n.args"
cmd="$1"; shift
case "$cmd" in
  version) echo "apptainer version 1.3.4 (stand-in)"; exit 0 ;;
  build) printf 'SIF built from %s\n' "$2" > "$1"; exit 0 ;;
  exec) ;;
  *) echo "stand-in apptainer: unsupported command $cmd" >&2; exit 1 ;;
esac
envfile=""; binds=""
while [ $# -gt 0 ]; do
  case "$1" in
    --containall|--no-home|--fakeroot|--nv) shift ;;
    --env-file) envfile="$2"; shift 2 ;;
    --bind) binds="$binds $2"; shift 2 ;;
    -*) echo "stand-in apptainer: unknown option $1" >&2; exit 1 ;;
    *) break ;;
  esac
done
[ -n "$envfile" ] && cp "$envfile" "$log/$n.env"
sif="$1"; shift
[ -f "$sif" ] || { echo "stand-in apptainer: no SIF at $sif" >&2; exit 1; }
mounts=""
for b in $binds; do
  src="${b%%:*}"; rest="${b#*:}"; dst="${rest%%:*}"
  if [ -e "$dst" ]; then mounts="$mounts $src|$dst"; fi
done
translate() {
  a="$1"
  for b in $binds; do
    src="${b%%:*}"; rest="${b#*:}"; dst="${rest%%:*}"
    [ -e "$dst" ] && continue
    case "$a" in "$dst") a="$src" ;; "$dst"/*) a="$src${a#"$dst"}" ;; esac
  done
  printf '%s' "$a"
}
count=$#
while [ "$count" -gt 0 ]; do a="$1"; shift; set -- "$@" "$(translate "$a")"; count=$((count - 1)); done
exec unshare --mount --pid --fork --kill-child --mount-proc \
  env -i PATH="$PATH" MOUNTS="$mounts" ENVFILE="$envfile" sh -c '
    for m in $MOUNTS; do mount --bind "${m%%|*}" "${m#*|}" || exit 1; done
    set -a; [ -n "$ENVFILE" ] && . "$ENVFILE"; set +a
    unset MOUNTS ENVFILE
    exec "$@"' sh "$@"
"#;

/// The stand-in in a fresh directory, with its log directory.
pub struct Standin {
    pub dir: tempfile::TempDir,
}

impl Standin {
    pub fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("log")).unwrap();
        let program = dir.path().join("apptainer");
        std::fs::write(&program, SCRIPT).unwrap();
        std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
        Standin { dir }
    }

    pub fn program(&self) -> PathBuf {
        self.dir.path().join("apptainer")
    }

    pub fn log_dir(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    /// The recorded invocations' arguments, in order.
    pub fn invocations(&self) -> Vec<Vec<String>> {
        (0..)
            .map(|n| self.log_dir().join(format!("{n}.args")))
            .take_while(|p| p.exists())
            .map(|p| {
                std::fs::read_to_string(p)
                    .unwrap()
                    .lines()
                    .map(String::from)
                    .collect()
            })
            .collect()
    }

    /// The env file of invocation `n`, as it was passed.
    pub fn env_file(&self, n: usize) -> Option<String> {
        std::fs::read_to_string(self.log_dir().join(format!("{n}.env"))).ok()
    }
}

/// Host processes whose command line contains `needle` (NUL-separated arguments joined by spaces).
pub fn processes_with(needle: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            text.contains(needle) && !is_zombie(*pid)
        })
        .collect()
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

/// Whether any process is left in the group `pgid`.
pub fn group_alive(pgid: i32) -> bool {
    unsafe { libc::kill(-pgid, 0) == 0 }
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}
