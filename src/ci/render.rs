//! The Markdown of the forge comment: the progress body (run link, task checkboxes, the
//! current step) and the final body (the report plus links to the PR, branch, review, run
//! and artifact), kept under the forge's size limit.

use std::fmt::Write;

use serde_json::Value;

use crate::report::markdown::render_tasks;

/// GitHub's limit on a comment body.
pub const GITHUB_COMMENT_LIMIT: usize = 65_536;

/// A hidden marker in every body sandcrab posts, to find its own comments.
pub const MARKER: &str = "<!-- sandcrab:comment -->";

/// What the progress comment shows.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub run_url: Option<String>,
    /// `resolve`, `review` or `ask`.
    pub mode: String,
    pub tasks: Option<Value>,
    pub step: Option<String>,
    pub actions: usize,
}

pub fn progress(p: &Progress) -> String {
    let mut md = format!("### 🦀 sandcrab is working ({})\n\n", p.mode);
    if let Some(url) = &p.run_url {
        let _ = writeln!(md, "[View the run]({url})\n");
    }
    if let Some(tasks) = p.tasks.as_ref().and_then(render_tasks) {
        let _ = writeln!(md, "**Tasks**\n\n{tasks}");
    }
    match &p.step {
        Some(step) => {
            let _ = writeln!(md, "**Step {}:** `{}`\n", p.actions, inline_code(step));
        }
        None => md.push_str("Starting…\n\n"),
    }
    md.push_str(MARKER);
    md
}

/// Where the results went.
#[derive(Debug, Clone, Default)]
pub struct Links {
    pub run: Option<String>,
    pub pull_request: Option<String>,
    /// Name and URL of the pushed branch.
    pub branch: Option<(String, String)>,
    pub review: Option<String>,
    pub artifact: Option<String>,
    /// `report.html` itself, where the forge serves it from the job (GitLab).
    pub report_page: Option<String>,
}

/// The final body: `report` (report.md), what happened to the results (`notes`), links;
/// shortened to `limit` bytes with a pointer to the full report.
pub fn final_body(report: &str, links: &Links, notes: &[String], limit: usize) -> String {
    let mut tail = String::new();
    for note in notes {
        let _ = writeln!(tail, "> {}\n", note.replace('\n', " "));
    }
    let mut items = Vec::new();
    if let Some(url) = &links.pull_request {
        items.push(format!("[Pull request]({url})"));
    }
    if let Some((name, url)) = &links.branch {
        items.push(format!("[Branch `{}`]({url})", inline_code(name)));
    }
    if let Some(url) = &links.review {
        items.push(format!("[Review]({url})"));
    }
    if let Some(url) = &links.report_page {
        items.push(format!("[Report page (report.html)]({url})"));
    }
    if let Some(url) = &links.artifact {
        // The artifact is a zip; the page a reviewer wants is inside it.
        items.push(format!("[Artifact: report.html, trajectory]({url})"));
    }
    if let Some(url) = &links.run {
        items.push(format!("[Run]({url})"));
    }
    if !items.is_empty() {
        let _ = writeln!(tail, "{}\n", items.join(" · "));
    }
    tail.push_str(MARKER);
    let room = limit.saturating_sub(tail.len() + 1);
    let report = if report.len() > room {
        let pointer = match &links.artifact {
            Some(url) => format!("\n\n… cut to fit the comment limit; the whole report is `report.md` in the [artifacts]({url}).\n"),
            None => "\n\n… cut to fit the comment limit; the whole report is `report.md` in the run's outputs.\n".to_string(),
        };
        let keep = floor_char_boundary(report, room.saturating_sub(pointer.len()));
        format!("{}{pointer}", &report[..keep])
    } else {
        report.to_string()
    };
    format!("{}\n{tail}", report.trim_end())
}

/// `text` safe inside single backticks on one line.
fn inline_code(text: &str) -> String {
    let line: String = text.replace(['`', '\n', '\r'], " ");
    match line.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line,
    }
}

fn floor_char_boundary(s: &str, mut at: usize) -> usize {
    at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn progress_shows_run_tasks_and_step() {
        let p = Progress {
            run_url: Some("https://github.com/o/r/actions/runs/9".into()),
            mode: "resolve".into(),
            tasks: Some(
                json!([{"title": "Reproduce", "status": "done"}, {"title": "Fix", "status": "in_progress"}]),
            ),
            step: Some("terminal: sh `test`.sh".into()),
            actions: 3,
        };
        let md = progress(&p);
        assert!(md.contains("[View the run](https://github.com/o/r/actions/runs/9)"));
        assert!(md.contains("- [x] Reproduce\n- [ ] Fix (in progress)"));
        assert!(md.contains("**Step 3:** `terminal: sh  test .sh`"), "{md}");
        assert!(md.ends_with(MARKER));
    }

    #[test]
    fn a_long_report_is_cut_under_the_limit_with_a_pointer() {
        let report = "é".repeat(40_000);
        let links = Links {
            artifact: Some("https://a/1".into()),
            ..Links::default()
        };
        let body = final_body(&report, &links, &["pushed".into()], GITHUB_COMMENT_LIMIT);
        assert!(body.len() <= GITHUB_COMMENT_LIMIT, "{}", body.len());
        assert!(body.contains("the whole report is `report.md` in the [artifacts](https://a/1)"));
        assert!(
            body.contains("> pushed")
                && body.contains("[Artifact: report.html, trajectory](https://a/1)")
        );
        let short = final_body("ok", &Links::default(), &[], GITHUB_COMMENT_LIMIT);
        assert_eq!(short, format!("ok\n{MARKER}"));
    }
}
