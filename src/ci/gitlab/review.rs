//! A review on GitLab: the agent's findings (parsed as on GitHub, `ci::github::review`) become
//! diff threads on the merge request, each with the `position` GitLab wants
//! (<https://docs.gitlab.com/api/discussions/#create-a-new-thread-in-the-merge-request-diff>):
//! the merge request's `diff_refs`, old and new path, and `new_line` for an added line or both
//! `old_line` and `new_line` for an unchanged line inside a hunk (GitLab refuses an unchanged
//! line given by `new_line` alone). A finding outside the diff, or one whose position GitLab
//! refuses (400), goes into the note instead.

use std::collections::BTreeMap;

use crate::ci::github::api::InlineComment;
use crate::ci::github::review::{self, Findings};

use super::api::{DiffRefs, Position};

/// A line of the new side of a diff: added, or unchanged with its old line number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewLine {
    Added,
    Unchanged { old_line: u64 },
}

/// The new-side lines inside the hunks of a unified diff (made with `--no-renames`), by path.
pub fn new_lines(diff: &str) -> BTreeMap<String, BTreeMap<u64, NewLine>> {
    let mut out: BTreeMap<String, BTreeMap<u64, NewLine>> = BTreeMap::new();
    let mut path: Option<String> = None;
    let (mut old, mut new) = (0u64, 0u64);
    for line in diff.lines() {
        if line.starts_with("diff --git ") {
            path = None;
            continue;
        }
        if let Some(p) = line.strip_prefix("+++ ") {
            path = p.strip_prefix("b/").map(String::from);
            continue;
        }
        if line.starts_with("--- ") && (old, new) == (0, 0) {
            continue;
        }
        if let Some(hunk) = line.strip_prefix("@@ -") {
            let mut parts = hunk.split(' ');
            let start = |s: Option<&str>| {
                s.and_then(|s| s.trim_start_matches(['-', '+']).split(',').next())
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            old = start(parts.next());
            new = start(parts.next());
            continue;
        }
        let Some(p) = &path else { continue };
        if new == 0 && old == 0 {
            continue;
        }
        match line.as_bytes().first() {
            Some(b'+') => {
                out.entry(p.clone())
                    .or_default()
                    .insert(new, NewLine::Added);
                new += 1;
            }
            Some(b'-') => old += 1,
            Some(b' ') => {
                out.entry(p.clone())
                    .or_default()
                    .insert(new, NewLine::Unchanged { old_line: old });
                old += 1;
                new += 1;
            }
            _ => {}
        }
    }
    out
}

/// The position of `comment`, if its line is inside the diff.
pub fn position(
    comment: &InlineComment,
    lines: &BTreeMap<String, BTreeMap<u64, NewLine>>,
    refs: &DiffRefs,
) -> Option<Position> {
    let kind = lines.get(&comment.path)?.get(&comment.line)?;
    let old_line = match kind {
        NewLine::Added => None,
        NewLine::Unchanged { old_line } => Some(*old_line),
    };
    Some(Position {
        position_type: "text",
        base_sha: refs.base_sha.clone(),
        start_sha: refs.start_sha.clone(),
        head_sha: refs.head_sha.clone(),
        old_path: comment.path.clone(),
        new_path: comment.path.clone(),
        old_line,
        new_line: Some(comment.line),
    })
}

/// The findings' summary with `folded` comments listed under it (for the note).
pub fn summary_with(summary: &str, folded: &[InlineComment]) -> String {
    review::as_body(&Findings {
        summary: summary.to_string(),
        comments: folded.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIFF: &str = "diff --git a/calc.sh b/calc.sh\nindex 1..2 100644\n--- a/calc.sh\n+++ b/calc.sh\n\
@@ -2,4 +2,4 @@ x\n a\n-b\n+B\n c\n d\n\
@@ -20,2 +20,3 @@\n y\n+z\n w\n\
diff --git a/new.txt b/new.txt\nnew file mode 100644\n--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1,2 @@\n+n\n+m\n\
diff --git a/gone.txt b/gone.txt\ndeleted file mode 100644\n--- a/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-g\n";

    #[test]
    fn added_and_unchanged_lines_with_their_old_numbers() {
        let lines = new_lines(DIFF);
        let calc = &lines["calc.sh"];
        assert_eq!(calc[&2], NewLine::Unchanged { old_line: 2 });
        assert_eq!(calc[&3], NewLine::Added);
        assert_eq!(calc[&4], NewLine::Unchanged { old_line: 4 });
        assert_eq!(calc[&5], NewLine::Unchanged { old_line: 5 });
        assert_eq!(calc[&21], NewLine::Added);
        assert_eq!(calc[&22], NewLine::Unchanged { old_line: 21 });
        assert!(!calc.contains_key(&6) && !calc.contains_key(&19));
        assert_eq!(lines["new.txt"].len(), 2);
        assert!(!lines.contains_key("gone.txt"));
    }

    #[test]
    fn a_position_names_the_diff_refs_and_the_right_lines() {
        let refs = DiffRefs {
            base_sha: "b".repeat(40),
            head_sha: "h".repeat(40),
            start_sha: "s".repeat(40),
        };
        let lines = new_lines(DIFF);
        let at = |line| InlineComment {
            path: "calc.sh".into(),
            line,
            body: "x".into(),
        };
        let added = position(&at(3), &lines, &refs).unwrap();
        assert_eq!((added.old_line, added.new_line), (None, Some(3)));
        assert_eq!(added.start_sha, refs.start_sha);
        let kept = position(&at(22), &lines, &refs).unwrap();
        assert_eq!((kept.old_line, kept.new_line), (Some(21), Some(22)));
        assert_eq!(position(&at(10), &lines, &refs), None);
        let json = serde_json::to_value(&added).unwrap();
        assert!(json.get("old_line").is_none(), "{json}");
        assert_eq!(json["position_type"], "text");
    }
}
