//! Review findings from the agent: its `finish` message is one JSON object
//! `{"summary": "...", "comments": [{"path", "line", "body"}]}` (see `prompt::REVIEW_RULES`),
//! bare or in a ```json fence. A message that is not such JSON becomes the review's body
//! with no inline comments. The runner checks every finding (a relative path, a line ≥ 1, a
//! body) and caps their number and size; it always posts a plain COMMENT review. Inline
//! comments stay only on lines the PR's diff has (the right side of a hunk, as GitHub accepts
//! them); the others go into the review's body.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use super::api::InlineComment;

/// Most inline comments one review posts.
pub const MAX_COMMENTS: usize = 50;
/// Longest inline comment body kept.
const MAX_BODY: usize = 4_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Findings {
    pub summary: String,
    pub comments: Vec<InlineComment>,
}

#[derive(Deserialize)]
struct Raw {
    #[serde(default)]
    summary: String,
    #[serde(default)]
    comments: Vec<RawComment>,
}

#[derive(Deserialize)]
struct RawComment {
    path: Option<String>,
    line: Option<u64>,
    body: Option<String>,
}

pub fn parse(message: &str) -> Findings {
    let Some(raw) = json_candidates(message)
        .into_iter()
        .find_map(|c| serde_json::from_str::<Raw>(c).ok())
    else {
        return Findings {
            summary: message.trim().to_string(),
            comments: Vec::new(),
        };
    };
    let comments = raw
        .comments
        .into_iter()
        .filter_map(|c| {
            let path = c.path?.trim().trim_start_matches("./").to_string();
            let body = c.body?.trim().chars().take(MAX_BODY).collect::<String>();
            let safe =
                !path.is_empty() && !path.starts_with('/') && !path.split('/').any(|p| p == "..");
            (safe && c.line? >= 1 && !body.is_empty()).then(|| InlineComment {
                path,
                line: c.line.unwrap_or(1),
                body,
            })
        })
        .take(MAX_COMMENTS)
        .collect();
    Findings {
        summary: raw.summary.trim().to_string(),
        comments,
    }
}

/// The whole message, and the last ```json fenced block in it.
fn json_candidates(message: &str) -> Vec<&str> {
    let mut out = vec![message.trim()];
    if let Some(start) = message.rfind("```json") {
        let rest = &message[start + 7..];
        if let Some(end) = rest.find("```") {
            out.insert(0, rest[..end].trim());
        }
    }
    out
}

/// The findings folded into a body, for when GitHub refuses the inline comments (422: a line
/// outside the diff).
pub fn as_body(findings: &Findings) -> String {
    let mut body = findings.summary.clone();
    if !findings.comments.is_empty() {
        body.push_str("\n\n**Comments**\n");
        for c in &findings.comments {
            body.push_str(&format!("\n- `{}` line {}: {}", c.path, c.line, c.body));
        }
    }
    body
}

/// The right-side line numbers inside the hunks of a unified diff, by new path.
pub fn diff_lines(diff: &str) -> BTreeMap<String, BTreeSet<u64>> {
    let mut out: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    let mut path: Option<String> = None;
    for line in diff.lines() {
        if let Some(new) = line.strip_prefix("+++ ") {
            path = new.strip_prefix("b/").map(String::from);
            continue;
        }
        let (Some(p), Some(hunk)) = (&path, line.strip_prefix("@@ -")) else {
            continue;
        };
        let Some(right) = hunk.split(' ').nth(1).and_then(|r| r.strip_prefix('+')) else {
            continue;
        };
        let mut parts = right.split(',');
        let start: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let count: u64 = parts
            .next()
            .map_or(Some(1), |c| c.parse().ok())
            .unwrap_or(0);
        out.entry(p.clone())
            .or_default()
            .extend(start..start + count);
    }
    out
}

/// Moves the comments on lines outside `lines` (see [`diff_lines`]) out of `findings`;
/// returns them.
pub fn off_diff(
    findings: &mut Findings,
    lines: &BTreeMap<String, BTreeSet<u64>>,
) -> Vec<InlineComment> {
    let (on, off) = std::mem::take(&mut findings.comments)
        .into_iter()
        .partition(|c| lines.get(&c.path).is_some_and(|l| l.contains(&c.line)));
    findings.comments = on;
    off
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_lines_inside_the_hunks_keep_their_comments() {
        let diff = "diff --git a/a.txt b/a.txt\n--- a/a.txt\n+++ b/a.txt\n@@ -1,3 +1,4 @@\n x\n+y\n z\n w\n\
diff --git a/new.txt b/new.txt\n--- /dev/null\n+++ b/new.txt\n@@ -0,0 +1 @@\n+n\n\
diff --git a/gone.txt b/gone.txt\n--- a/gone.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-g\n";
        let lines = diff_lines(diff);
        assert_eq!(lines["a.txt"], BTreeSet::from([1, 2, 3, 4]));
        assert_eq!(lines["new.txt"], BTreeSet::from([1]));
        assert!(!lines.contains_key("gone.txt"));
        let comment = |path: &str, line| InlineComment {
            path: path.into(),
            line,
            body: "b".into(),
        };
        let mut f = Findings {
            summary: String::new(),
            comments: vec![
                comment("a.txt", 2),
                comment("a.txt", 9),
                comment("other", 1),
            ],
        };
        let off = off_diff(&mut f, &lines);
        assert_eq!(f.comments, vec![comment("a.txt", 2)]);
        assert_eq!(off, vec![comment("a.txt", 9), comment("other", 1)]);
    }

    #[test]
    fn json_findings_bare_or_fenced() {
        let msg = r#"{"summary": "Looks fine.", "comments": [{"path": "./calc.sh", "line": 3, "body": "Use $(( ))."}]}"#;
        let f = parse(msg);
        assert_eq!(f.summary, "Looks fine.");
        assert_eq!(
            f.comments,
            vec![InlineComment {
                path: "calc.sh".into(),
                line: 3,
                body: "Use $(( )).".into()
            }]
        );
        let fenced = format!("Here you go:\n```json\n{msg}\n```\n");
        assert_eq!(parse(&fenced), f);
    }

    #[test]
    fn unsafe_or_incomplete_comments_are_dropped() {
        let msg = r#"{"summary": "s", "comments": [{"path": "/etc/passwd", "line": 1, "body": "x"},
            {"path": "a/../../b", "line": 1, "body": "x"}, {"path": "ok.rs", "line": 0, "body": "x"},
            {"path": "ok.rs", "body": "no line"}, {"path": "ok.rs", "line": 2, "body": " "}]}"#;
        assert!(parse(msg).comments.is_empty());
    }

    #[test]
    fn plain_text_is_the_summary() {
        let f = parse("  No issues found.  ");
        assert_eq!(f.summary, "No issues found.");
        assert!(f.comments.is_empty());
        let folded = as_body(&parse(
            r#"{"summary":"s","comments":[{"path":"a","line":1,"body":"b"}]}"#,
        ));
        assert_eq!(folded, "s\n\n**Comments**\n\n- `a` line 1: b");
    }
}
