//! The rendered page: hostile text stays text, the page loads nothing, secrets do not show.

use serde_json::{json, Value};

use super::render;

const HOSTILE: &str = "</pre></script><script>alert(1)</script><img src=https://evil.example/x onerror=alert(2)> \u{1b}[31mRED\u{1b}[0m \u{1b}]8;;https://evil.example\u{7}osc\u{1b}]8;;\u{7} <!-- c --> \u{2028}&amp;";

fn events(observation: &str) -> Vec<Value> {
    vec![
        json!({"kind": "MessageEvent", "id": "m", "source": "user", "timestamp": "2026-11-30T10:00:00.0",
            "llm_message": {"role": "user", "content": [{"type": "text", "text": format!("task {HOSTILE}")}]}}),
        json!({"kind": "ActionEvent", "id": "a", "source": "agent", "timestamp": "2026-11-30T10:00:01.0",
            "thought": [{"type": "text", "text": format!("thinking {HOSTILE}")}],
            "action": {"kind": "TerminalAction", "command": format!("cat {HOSTILE}")},
            "tool_name": "terminal", "tool_call_id": "c1",
            "tool_call": {"id": "c1", "name": "terminal", "arguments": "{}"},
            "llm_response_id": "r1", "summary": format!("terminal: {HOSTILE}")}),
        json!({"kind": "ObservationEvent", "id": "o", "source": "environment", "timestamp": "2026-11-30T10:00:02.0",
            "tool_name": "terminal", "tool_call_id": "c1", "action_id": "a",
            "observation": {"content": [{"type": "text", "text": observation}], "is_error": false, "exit_code": 0}}),
        json!({"kind": "ConversationStateUpdateEvent", "id": "s", "source": "environment",
            "timestamp": "2026-11-30T10:00:03.0", "key": "stats", "value": {"usage_to_metrics": {"agent": {
                "model_name": "m", "accumulated_cost": 0.0,
                "token_usages": [{"prompt_tokens": 10, "completion_tokens": 2, "cache_read_tokens": 5, "response_id": "r1"}],
                "costs": []}}}}),
    ]
}

fn patch() -> String {
    format!("diff --git a/x.sh b/x.sh\n--- a/x.sh\n+++ b/x.sh\n@@ -1 +1 @@\n-old\n+echo \"{HOSTILE}\"\n")
}

/// Every `<tag` of the page, by name: hostile text must add none.
fn tags(html: &str) -> Vec<String> {
    html.match_indices('<')
        .map(|(i, _)| {
            html[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '/' || *c == '!')
                .collect::<String>()
                .to_ascii_lowercase()
        })
        .collect()
}

#[test]
fn hostile_text_is_inert_everywhere_it_shows() {
    let result = json!({"status": "error", "summary": HOSTILE, "error": HOSTILE, "model": HOSTILE,
        "workspace": {"kind": "local", "working_dir": HOSTILE}, "conversation_id": HOSTILE});
    let html = render(&events(HOSTILE), Some(&result), &patch(), &|s| {
        s.to_string()
    })
    .unwrap();
    let tags = tags(&html);
    assert_eq!(
        tags.iter().filter(|t| *t == "script").count(),
        1,
        "one script, ours"
    );
    assert!(!tags.iter().any(|t| t == "img" || t == "!--"), "{tags:?}");
    assert!(!html.contains('\u{1b}'), "escape sequences removed");
    assert!(!html.contains("evil.example\u{7}"));
    // The text reads as written, escaped.
    assert!(
        html.contains("&lt;&#x2f;script&gt;&lt;script&gt;alert(1)"),
        "escaped text shown"
    );
    assert!(html.contains("RED"));
}

#[test]
fn the_page_allows_nothing_but_its_own_style_and_script() {
    let html = render(&events("ok"), None, "", &|s| s.to_string()).unwrap();
    let csp = super::csp();
    assert!(html.contains(&format!("content=\"{csp}\"")));
    assert!(csp.starts_with("default-src 'none'; style-src 'sha256-"));
    // The hashes are of the exact inline texts.
    let inline = |open: &str, close: &str| {
        let start = html.find(open).unwrap() + open.len();
        html[start..start + html[start..].find(close).unwrap()].to_string()
    };
    assert!(csp.contains(&super::sha256_source(&inline("<style>", "</style>"))));
    assert!(csp.contains(&super::sha256_source(&inline("<script>", "</script>"))));
    // No tag of the page points anywhere (the hostile text in it is escaped, not a tag).
    for (i, _) in html.match_indices('<') {
        let tag = &html[i..i + html[i..].find('>').unwrap()];
        for attr in [" src=", " href=\"http", " href=\"//", "url(", "@import"] {
            assert!(!tag.contains(attr), "{tag}");
        }
    }
    assert!(!html.contains("url(") && !html.contains("@import"));
}

#[test]
fn a_trajectory_alone_gives_task_steps_figures_and_status() {
    let mut events = events("a.txt\nb.txt");
    events.push(json!({"kind": "ConversationStateUpdateEvent", "key": "execution_status", "value": "finished"}));
    let html = render(&events, None, &patch(), &|s| s.to_string()).unwrap();
    assert!(html.contains("<span class=\"badge ok\" id=\"status\">finished</span>"));
    assert!(html.contains("a.txt\nb.txt"));
    assert!(html.contains("<code>m</code>"), "the model from the stats");
    assert!(html.contains("10 in (5 cached) · 2 out"));
    assert!(html.contains("<dd>50%</dd>"), "cache hits from the stats");
    assert!(html.contains("class=\"l add\""));
}

#[test]
fn secrets_are_hidden_even_where_escaping_would_change_them() {
    // A secret with `/` and `&`: escaped, it would no longer match the redactor.
    let secret = "sk-live/abc&def1234";
    let redactor = crate::redact::Redactor::new([secret.to_string()]);
    let redact = |s: &str| redactor.redact(s);
    let dir = tempfile::tempdir().unwrap();
    let result = crate::report::RunResult {
        status: crate::report::RunStatus::Finished,
        conversation_id: "c".into(),
        summary: Some(format!("done with {secret}")),
        error: None,
        model: "m".into(),
        iterations: 1,
        actions: 1,
        tokens: crate::report::Tokens::default(),
        cost: None,
        changed_files: vec![],
        workspace: crate::report::WorkspaceSummary {
            kind: "local".into(),
            working_dir: "/w".into(),
        },
        timings: crate::report::Timings::default(),
        instructions: None,
        sandcrab_version: "0",
    };
    let events: Vec<crate::protocol::event::Event> =
        vec![crate::protocol::event::Event::user_message(format!(
            "use {secret}"
        ))];
    let patch = format!("diff --git a/k b/k\n@@ -0,0 +1 @@\n+{secret}\n");
    let out =
        crate::report::write_outputs(dir.path(), &result, &events, &patch, None, &redact).unwrap();
    let html = std::fs::read_to_string(out.html).unwrap();
    assert!(
        html.contains("done with &lt;secret-hidden&gt;"),
        "summary shown, redacted"
    );
    assert!(html.contains("use &lt;secret-hidden&gt;"));
    for form in ["sk-live", "abc&amp;def", "abc&def"] {
        assert!(!html.contains(form), "{form} in the page");
    }
}
