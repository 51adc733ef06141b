//! `report.html` in a real browser: the demo run, a long scripted run and a run whose output
//! is hostile are rendered by `sandcrab run` and opened in headless Chromium over the DevTools
//! protocol — the page text holds the task, every action and the diff; nothing reaches the
//! console as an error; no request leaves the page; hostile text stays text; the phone layout
//! does not scroll sideways; the folding script runs (its CSP hash matches). Screenshots are
//! kept in `target/test-artifacts/report-html/`. `sandcrab report` re-renders the same page.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::chromium::{self, Browser};
use common::*;
use serde_json::{json, Value};

/// Opens `page` and checks what every report page must do; returns the page's text.
async fn open_clean(browser: &mut Browser, page: &Path, shots: &str) -> String {
    let dir = chromium::artifacts_dir("report-html");
    browser.view(1000, 1600, false, false).await;
    let loaded = browser.open(page).await;
    assert!(
        loaded.errors.is_empty(),
        "console errors: {:?}",
        loaded.errors
    );
    assert!(
        loaded.requests.is_empty(),
        "requests: {:?}",
        loaded.requests
    );
    browser
        .screenshot(&dir.join(format!("{shots}-desktop.png")))
        .await;
    let text = browser.eval("document.body.innerText").await;
    // The folding script runs: its hash is in the CSP.
    let open_after_collapse = browser
        .eval("document.getElementById('collapse').click(); document.querySelectorAll('details[open]').length")
        .await;
    assert_eq!(open_after_collapse, json!(0), "the script ran");
    browser
        .eval("document.getElementById('expand').click()")
        .await;
    // A phone, dark: readable without sideways scrolling.
    browser.view(390, 844, true, true).await;
    let wide = browser
        .eval("document.documentElement.scrollWidth - window.innerWidth")
        .await;
    assert!(
        wide.as_i64().unwrap() <= 0,
        "the page scrolls sideways on a phone by {wide}px"
    );
    let bg = browser
        .eval("getComputedStyle(document.documentElement).backgroundColor")
        .await;
    assert_eq!(
        bg,
        json!("rgb(13, 17, 23)"),
        "dark colours follow the system"
    );
    browser
        .screenshot(&dir.join(format!("{shots}-phone-dark.png")))
        .await;
    text.as_str().unwrap().to_string()
}

/// What the page shows of each action: its summary's first line, without the tool's name.
fn action_titles(out: &Path) -> Vec<String> {
    trajectory(out)
        .iter()
        .filter(|e| e["kind"] == "ActionEvent")
        .map(|e| {
            let tool = e["tool_name"].as_str().unwrap();
            let s = e["summary"].as_str().unwrap();
            let s = s.strip_prefix(&format!("{tool}: ")).unwrap_or(s);
            let first = s.lines().next().unwrap().trim();
            first.chars().take(100).collect()
        })
        .collect()
}

/// The added lines of `changes.patch`, without their `+`.
fn added_lines(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out.join("changes.patch"))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with('+') && !l.starts_with("+++"))
        .map(|l| l[1..].trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_report_reads_in_a_browser_with_task_actions_and_diff() {
    let Some(chromium) = chromium::find() else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let r = run(sandcrab().args(["run", "--demo", "--out"]).arg(out.path()));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let page = out.path().join("report.html");
    let mut browser = Browser::start(&chromium).await;
    let text = open_clean(&mut browser, &page, "demo").await;
    assert!(text.contains("prints 8 instead of 2"), "the task");
    let titles = action_titles(out.path());
    assert_eq!(titles.len(), 7);
    for title in &titles {
        assert!(
            text.contains(title.as_str()),
            "action {title:?} not on the page"
        );
    }
    let added = added_lines(out.path());
    assert!(!added.is_empty());
    for line in &added {
        assert!(
            text.contains(line.as_str()),
            "diff line {line:?} not on the page"
        );
    }
    assert!(
        text.contains("Reproduce the bug with the tests"),
        "the task list"
    );
    assert!(text.contains("FAIL sub 5 3"), "an observation");

    // `sandcrab report DIR` re-renders the same page from the outputs.
    let before = std::fs::read_to_string(&page).unwrap();
    std::fs::remove_file(&page).unwrap();
    let r = run(sandcrab().arg("report").arg(out.path()));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), page.display().to_string());
    assert_eq!(std::fs::read_to_string(&page).unwrap(), before);
}

/// `steps` terminal calls (the first writes `main.rs`, the others print 402 lines each), then
/// `finish`; the
/// condenser's summary requests (no tools) get a summary.
fn long_script(steps: usize) -> Script {
    let agent_calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    Arc::new(move |n, body: &Value| {
        if body["tools"].as_array().is_none_or(|t| t.is_empty()) {
            return Reply::ok(json!({
                "id": format!("summary-{n}"), "object": "chat.completion", "model": "scripted",
                "choices": [{"index": 0, "finish_reason": "stop", "message": {
                    "role": "assistant", "content": format!("SUMMARY-{n}: echoed so far")}}],
                "usage": {"prompt_tokens": 300, "completion_tokens": 30, "total_tokens": 330}
            }));
        }
        let done = agent_calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let reply = if done == 0 {
            openai_call(
                done,
                "terminal",
                &json!({"command": "printf 'fn main() {\\n    println!(\"step zero\");\\n}\\n' > main.rs"}).to_string(),
            )
        } else if done < steps {
            openai_call(
                done,
                "terminal",
                &json!({"command": format!("echo step-{done}-done; seq 1000 1400")}).to_string(),
            )
        } else {
            openai_call(
                done,
                "finish",
                &json!({"message": format!("finished after {done} steps")}).to_string(),
            )
        };
        Reply::ok(reply)
    })
}

fn scripted_run(llm: &FakeLlm, repo: &Path, out: &Path, iterations: &str) -> Run {
    run(sandcrab()
        .args([
            "run",
            "--model",
            "openai/scripted",
            "--llm-base-url",
            &llm.openai_url(),
        ])
        .args(["--prompt", "echo your way through a hundred steps"])
        .args(["--max-iterations", iterations, "--workspace", "local"])
        .arg("--repo-dir")
        .arg(repo)
        .arg("--out")
        .arg(out))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_step_run_makes_a_page_under_two_megabytes() {
    let llm = FakeLlm::start(long_script(100));
    let repo = git_repo(&[("README.md", "x\n")]);
    let out = tempfile::tempdir().unwrap();
    let r = scripted_run(&llm, repo.path(), out.path(), "150");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let page = out.path().join("report.html");
    let size = std::fs::metadata(&page).unwrap().len();
    println!("report.html of a 100-step run: {size} bytes");
    assert!(size < 2_000_000, "{size} bytes");
    let Some(chromium) = chromium::find() else {
        return;
    };
    let mut browser = Browser::start(&chromium).await;
    let text = open_clean(&mut browser, &page, "long").await;
    assert!(text.contains("echo your way through a hundred steps"));
    for i in 1..100 {
        assert!(text.contains(&format!("echo step-{i}-done")), "action {i}");
    }
    assert!(text.contains("println!(\"step zero\");"), "the diff");
    assert!(text.contains("finished after 100 steps"));
    // Long outputs are folded to their head and tail.
    assert!(text.contains("1000\n1001"), "an output's head");
    assert!(text.contains("1399\n1400"), "an output's tail");
    assert!(
        !text.contains("\n1200\n"),
        "the middle of an output is left out"
    );
    assert_eq!(
        text.matches("lines, ").count(),
        99,
        "each long output says it was cut"
    );
    // The condenser summarised the history on the way: its summaries show.
    let condensations = kinds(&trajectory(out.path()), "Condensation").len();
    assert!(condensations > 0);
    assert_eq!(text.matches(": echoed so far").count(), condensations);
    let bars = browser
        .eval("document.querySelectorAll('.chart g').length")
        .await;
    assert_eq!(bars, json!(llm.recorded().len()), "one bar per model call");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_observation_text_stays_text_in_the_browser() {
    let Some(chromium) = chromium::find() else {
        return;
    };
    // Anything the page would fetch comes here.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let hostile = format!(
        "</pre></script><script>window.pwned=1</script><img src=http://127.0.0.1:{port}/img onerror=\"window.pwned=2\"><style>@import url(http://127.0.0.1:{port}/css);</style><a href=http://127.0.0.1:{port}/a>link</a>"
    );
    let hostile_out = hostile.clone();
    let script: Script = Arc::new(move |_, body: &Value| {
        let done = tool_results(body);
        let reply = if done == 0 {
            // The output holds the hostile text, raw terminal colours and a bidi override.
            let printed =
                format!("printf '%s\\033[31mRED\\033[0m\\342\\200\\256evil\\n' '{hostile_out}'");
            openai_call(0, "terminal", &json!({"command": printed}).to_string())
        } else {
            openai_call(
                1,
                "finish",
                &json!({"message": hostile_out.clone()}).to_string(),
            )
        };
        Reply::ok(reply)
    });
    let llm = FakeLlm::start(script);
    let repo = git_repo(&[("README.md", "x\n")]);
    let out = tempfile::tempdir().unwrap();
    let r = scripted_run(&llm, repo.path(), out.path(), "5");
    assert_eq!(r.code, 0, "{}", r.stderr);
    let obs = kinds(&trajectory(out.path()), "ObservationEvent")[0].to_string();
    assert!(
        obs.contains("window.pwned=1"),
        "the output reached the trajectory: {obs}"
    );

    let mut browser = Browser::start(&chromium).await;
    let text = open_clean(&mut browser, &out.path().join("report.html"), "hostile").await;
    assert_eq!(
        browser.eval("typeof window.pwned").await,
        json!("undefined")
    );
    assert_eq!(browser.eval("document.scripts.length").await, json!(1));
    assert_eq!(browser.eval("document.images.length").await, json!(0));
    assert_eq!(
        browser
            .eval("document.querySelectorAll('a[href^=http]').length")
            .await,
        json!(0)
    );
    // Shown as text: in the observation, the command and the summary.
    assert!(
        text.matches("<script>window.pwned=1</script>").count() >= 3,
        "{text}"
    );
    assert!(
        text.contains("REDevil") || text.contains("RED⟨U+202E⟩evil"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}') && !text.contains('\u{202e}'));
    std::thread::sleep(Duration::from_millis(200));
    assert!(listener.accept().is_err(), "the page made a request");
}

#[test]
fn report_takes_a_trajectory_file_and_refuses_what_is_not_one() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("notes.jsonl");
    std::fs::write(&bad, "{\"kind\": \"MessageEvent\"}\nnot json\n").unwrap();
    let r = run(sandcrab().arg("report").arg(&bad));
    assert_eq!(r.code, 2);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("line 2 is not JSON"), "{}", r.stderr);
    let r = run(sandcrab().arg("report").arg(dir.path()));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("holds no trajectory.jsonl"),
        "{}",
        r.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_openhands_sdk_trajectory_renders_with_sandcrab_report() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openhands-trajectory/trajectory.jsonl");
    let out = tempfile::tempdir().unwrap();
    let page = out.path().join("openhands.html");
    let r = run(sandcrab()
        .arg("report")
        .arg(&fixture)
        .arg("--out")
        .arg(&page));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout.trim(), page.display().to_string());
    let html = std::fs::read_to_string(&page).unwrap();
    // Status and model from the SDK's state snapshot; no result.json, so no timings.
    assert!(html.contains("<span class=\"badge ok\" id=\"status\">finished</span>"));
    assert!(
        html.contains("model <code>openai&#x2f;scripted</code>"),
        "the model"
    );
    assert!(!html.contains("<h3>Timings</h3>"));
    let Some(chromium) = chromium::find() else {
        return;
    };
    let mut browser = Browser::start(&chromium).await;
    let text = open_clean(&mut browser, &page, "openhands").await;
    for shown in [
        "Write hello.py that greets the world, then run it.",
        // Each action: the commands, the file written (as code), the plan, the answer.
        "printf 'alpha\\nbeta\\n' > notes.txt && ls && cat notes.txt",
        "create /",
        "    return f\"hello {name}\"",
        "Run it",
        "Wrote hello.py; it prints hello world.",
        // Observations, the failing one with its exit code, its HTML as text.
        "alpha\nbeta",
        "hello world\n</script><b>bold</b>",
        "exit 1",
        // Figures from the SDK's stats: 3 200 of 7 000 input tokens read from the cache.
        "46%",
        "1200 in (800 cached) · 40 out",
    ] {
        assert!(text.contains(shown), "{shown:?} not on the page:\n{text}");
    }
    assert_eq!(
        browser
            .eval("document.querySelectorAll('.step.action').length")
            .await,
        json!(5)
    );
    assert_eq!(
        browser
            .eval("document.querySelectorAll('.chart g').length")
            .await,
        json!(5)
    );
    assert_eq!(
        browser.eval("document.querySelectorAll('b').length").await,
        json!(0)
    );
}
