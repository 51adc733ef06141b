//! Fault injection around `sandcrab run` on the local and remote workspaces: the agent-server
//! killed mid-run, a command that never ends, a command that prints gigabytes, a full `--out`
//! disk, and the model's answers cut off or garbled. Each test checks what the user sees (exit
//! code, one clear line) and that nothing is lost (result.json, the trajectory so far, the
//! patch). The LLM faults already covered by run_cli.rs and llm_clients.rs (429 with
//! Retry-After, 5xx beyond the budget, malformed tool-call arguments) are not repeated here.

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// `sandcrab run` against an OpenAI-compatible fake on a repository, outputs in `out`.
fn run_cmd(llm: &FakeLlm, repo: &std::path::Path, out: &std::path::Path) -> std::process::Command {
    let mut cmd = sandcrab();
    cmd.args(["run", "--model", "openai/scripted", "--llm-base-url"])
        .arg(llm.openai_url())
        .args(["--prompt", "go", "--llm-num-retries", "1"])
        .args(["--llm-retry-min-wait", "0"])
        .arg("--repo-dir")
        .arg(repo)
        .arg("--out")
        .arg(out);
    cmd
}

/// Plays `calls` (tool name, JSON arguments) in order by the tool results so far, then `finish`.
fn calls(steps: Vec<(&'static str, Value)>) -> Script {
    Arc::new(move |_, body: &Value| {
        let done = tool_results(body);
        match steps.get(done) {
            Some((tool, args)) => Reply::ok(openai_call(done, tool, &args.to_string())),
            None => Reply::ok(openai_call(done, "finish", "{\"message\": \"done\"}")),
        }
    })
}

fn observation_texts(events: &[Value]) -> Vec<String> {
    kinds(events, "ObservationEvent")
        .iter()
        .map(|o| {
            o["observation"]["content"][0]["text"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

fn lines_mentioning<'a>(stderr: &'a str, word: &str) -> Vec<&'a str> {
    stderr.lines().filter(|l| l.contains(word)).collect()
}

// ---------------------------------------------------------------------------------------------
// The agent-server killed mid-run

#[test]
fn a_remote_agent_server_killed_mid_run_is_reported_and_the_outputs_are_written() {
    let repo = git_repo(&[("a.txt", "a\n")]);
    let mut server = common::server::Server::start_in(repo.path());
    let llm = FakeLlm::start(Arc::new(|_, body: &Value| {
        let done = tool_results(body);
        let command = format!("echo step-{done} >> made.txt");
        Reply::ok(openai_call(
            done,
            "terminal",
            &json!({"command": command}).to_string(),
        ))
        .delayed(Duration::from_millis(200))
    }));
    let out = tempfile::tempdir().unwrap();
    let running = Running::spawn(
        run_cmd(&llm, repo.path(), out.path())
            .args(["--workspace", "remote", "--server-url", &server.base])
            .args(["--session-api-key", common::server::KEY])
            .arg("--sandbox-workdir")
            .arg(&server.working_dir),
    );
    wait_until("three model calls", Duration::from_secs(60), || {
        llm.recorded().len() >= 3
    });
    server.kill();
    let r = running.finish();
    assert_eq!(r.code, 1, "the run failed, not bad input: {}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    let result = result_json(out.path());
    assert_eq!(result["status"], "error", "{result}");
    let error = result["error"].as_str().unwrap();
    assert!(error.contains("agent-server"), "names the server: {error}");
    assert!(
        r.stderr
            .lines()
            .any(|l| l.starts_with("sandcrab: ") && l.contains(error)),
        "the error is printed as one line: {}",
        r.stderr
    );
    let events = trajectory(out.path());
    assert!(
        kinds(&events, "ActionEvent").len() >= 2,
        "the trajectory so far is kept: {events:?}"
    );
    // The repository lives on the dead server's side: the runner cannot diff it any more, so
    // changes.patch exists and is empty, with a warning.
    assert!(out.path().join("changes.patch").exists());
    assert!(out.path().join("report.md").exists());
}

// ---------------------------------------------------------------------------------------------
// Commands that never end or print without end

#[test]
fn a_command_that_never_ends_hits_its_timeout_and_the_run_goes_on() {
    let llm = FakeLlm::start(calls(vec![
        ("terminal", json!({"command": "sleep 100000", "timeout": 1})),
        ("terminal", json!({"command": "C-c", "is_input": true})),
        ("terminal", json!({"command": "echo still-here"})),
    ]));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let r = run(&mut run_cmd(&llm, repo.path(), out.path()));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let events = trajectory(out.path());
    let observations = kinds(&events, "ObservationEvent");
    assert_eq!(
        observations[0]["observation"]["timeout"], true,
        "{events:?}"
    );
    let texts = observation_texts(&events);
    assert!(texts[0].contains("timeout of 1 seconds"), "{}", texts[0]);
    assert!(texts[2].contains("still-here"), "{texts:?}");
    assert_eq!(result_json(out.path())["status"], "finished");
}

/// Peak RSS (VmHWM) of a running process, in bytes; `None` once it is gone.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[test]
fn a_command_printing_gigabytes_is_truncated_and_memory_stays_bounded() {
    // 256 MiB of output in lines through the agent's shell: 64 times the shell's 4 MiB
    // buffer cap, so memory is bounded by the cap, not by the volume. (2 GiB takes about ten
    // minutes through the debug build's reader on a loaded 2-core machine: too slow for the
    // suite, and it proves nothing more.)
    let flood = "head -c 268435456 /dev/zero | tr '\\0' 'x' | fold -w 1000";
    let llm = FakeLlm::start(calls(vec![(
        "terminal",
        json!({"command": flood, "timeout": 600}),
    )]));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let out = tempfile::tempdir().unwrap();
    let running = Running::spawn(&mut run_cmd(&llm, repo.path(), out.path()));
    let pid = running.pid();
    let mut peak = 0;
    while let Some(rss) = peak_rss(pid) {
        peak = peak.max(rss);
        // A zombie has no VmHWM line: the loop ends when the process has exited.
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = running.finish();
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(peak > 0, "the RSS was sampled");
    assert!(
        peak < 200 << 20,
        "peak RSS {} MB while 256 MiB went through the shell",
        peak >> 20
    );
    let events = trajectory(out.path());
    let observation = &kinds(&events, "ObservationEvent")[0]["observation"];
    assert_eq!(observation["timeout"], false, "the command ran to its end");
    let text = &observation_texts(&events)[0];
    assert!(text.len() < 40_000, "truncated: {} chars", text.len());
    assert!(
        text.starts_with("xxxx") && text.contains("xxxx\n"),
        "{}",
        &text[..200]
    );
    let model_saw = &llm.recorded()[1].body["messages"];
    assert!(
        model_saw.to_string().len() < 100_000,
        "the model got the truncated text too"
    );
}

// ---------------------------------------------------------------------------------------------
// A full disk under --out

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop; `None` where mounting is
/// not allowed (not root, no CAP_SYS_ADMIN) outside CI.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status();
        if matches!(status, Ok(s) if s.success()) {
            return Some(Tmpfs(dir));
        }
        common::skip("cannot mount a tmpfs here (not root?)");
        None
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.0.path())
            .status();
    }
}

#[test]
fn a_full_disk_under_out_is_one_line_naming_the_file() {
    let Some(disk) = Tmpfs::mount("96k") else {
        return;
    };
    let out = disk.0.path().join("out");
    let llm = FakeLlm::start(calls(vec![(
        "terminal",
        json!({"command": "head -c 300000 /dev/urandom | od -x > big.txt; echo made"}),
    )]));
    let repo = git_repo(&[("a.txt", "a\n")]);
    let r = run(&mut run_cmd(&llm, repo.path(), &out));
    assert_eq!(r.code, 2, "a setup failure: {}", r.stderr);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    let errors = lines_mentioning(&r.stderr, "error");
    assert_eq!(errors.len(), 1, "one line: {}", r.stderr);
    assert!(
        errors[0].contains(out.to_str().unwrap()),
        "names the folder: {}",
        errors[0]
    );
    assert!(
        errors[0].contains("No space left on device"),
        "says why: {}",
        errors[0]
    );
    // The agent's work itself is intact in the repository.
    assert!(repo.path().join("big.txt").metadata().unwrap().len() > 300_000);
}
