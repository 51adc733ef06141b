//! Review findings from the agent: its `finish` message is one JSON object
//! `{"summary": "...", "comments": [{"path", "line", "body"}]}` (see `prompt::REVIEW_RULES`),
//! bare or in a ```json fence. A message that is not such JSON becomes the review's body
//! with no inline comments. The runner checks every finding (a relative path, a line ≥ 1, a
//! body) and caps their number and size; it always posts a plain COMMENT review.

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

#[cfg(test)]
mod tests {
    use super::*;

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
