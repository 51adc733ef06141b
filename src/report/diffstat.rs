//! Per-file line counts from a unified patch (`git diff` output), for reports.

use serde::Serialize;

/// One changed file of a patch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileStat {
    pub path: String,
    pub added: usize,
    pub removed: usize,
    pub binary: bool,
}

/// The files of `patch` with their added/removed line counts, in patch order.
pub fn diffstat(patch: &str) -> Vec<FileStat> {
    let mut files: Vec<FileStat> = Vec::new();
    let mut in_hunk = false;
    for line in patch.lines() {
        if let Some(rest) = line.strip_prefix("diff --git ") {
            files.push(FileStat {
                path: path_of(rest),
                added: 0,
                removed: 0,
                binary: false,
            });
            in_hunk = false;
            continue;
        }
        let Some(file) = files.last_mut() else {
            continue;
        };
        if line.starts_with("@@") {
            in_hunk = true;
        } else if line.starts_with("GIT binary patch") || line.starts_with("Binary files") {
            file.binary = true;
        } else if in_hunk && line.starts_with('+') {
            file.added += 1;
        } else if in_hunk && line.starts_with('-') {
            file.removed += 1;
        }
    }
    files
}

/// The new path of a `diff --git a/X b/Y` header (Y), unquoting git's C-style quotes.
fn path_of(header: &str) -> String {
    let b = header.rsplit_once(" b/").map(|(_, b)| b).unwrap_or(header);
    let b = b.strip_suffix('"').map_or(b.to_string(), |s| s.to_string());
    b.trim_start_matches("\"b/").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lines_per_file() {
        let patch = "diff --git a/x.sh b/x.sh\nindex 1..2 100644\n--- a/x.sh\n+++ b/x.sh\n@@ -1,2 +1,2 @@\n-old\n+new\n+more\n ctx\ndiff --git a/img.png b/img.png\nGIT binary patch\nliteral 3\n";
        let stats = diffstat(patch);
        assert_eq!(stats.len(), 2);
        assert_eq!(
            (stats[0].path.as_str(), stats[0].added, stats[0].removed),
            ("x.sh", 2, 1)
        );
        assert!(stats[1].binary);
    }
}
