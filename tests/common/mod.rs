//! Shared test helpers: the built binary, throwaway git repositories, and a fake model server
//! on loopback that answers from a script and records every request.
#![allow(dead_code)]

pub mod action_env;
pub mod apptainer_standin;
pub mod checkout;
pub mod chromium;
pub mod dind;
pub mod docker;
pub mod fake_cloud;
pub mod fake_github;
pub mod fake_runtime_api;
pub mod gitlab_checkout;
pub mod mcp;
pub mod sandbox_proc;
pub mod server;
pub mod strict_github;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

/// `sandcrab run` on `repo` against the scripted model `llm` (OpenAI-compatible), outputs in
/// `out`, retries without waiting; the caller adds the prompt, the key and its own flags.
pub fn run_against(llm: &FakeLlm, repo: &Path, out: &Path) -> Command {
    let mut cmd = sandcrab();
    cmd.args(["run", "--model", "openai/scripted", "--llm-base-url"])
        .arg(llm.openai_url())
        .args(["--llm-retry-min-wait", "0.01", "--repo-dir"])
        .arg(repo)
        .arg("--out")
        .arg(out);
    cmd
}

/// A test that cannot have what it needs (Docker, root, `../shared`, a venv) says so and
/// returns, never passing silently: under `CI` it fails instead (CI must have everything), and
/// elsewhere it prints `SKIPPED: <test>: <why>` and appends that line to
/// `target/tmp/skipped.txt`, which `.ci/run` and the README's test command print at the end.
pub fn skip(why: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    assert!(
        std::env::var_os("CI").is_none(),
        "{test} cannot run here and CI must run it: {why}"
    );
    let line = format!("SKIPPED: {test}: {why}");
    eprintln!("{line}");
    let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped.txt");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        use std::io::Write as _;
        let _ = writeln!(f, "{line}");
    }
}

/// The `sandcrab` binary under test, with a clean environment for LLM settings.
pub fn sandcrab() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sandcrab"));
    for var in [
        "LLM_API_KEY",
        "LLM_MODEL",
        "LLM_BASE_URL",
        "SANDCRAB_MODEL",
        "SANDCRAB_LLM_BASE_URL",
    ] {
        cmd.env_remove(var);
    }
    // Tests run plain unless they set the CI environment themselves (the suite may itself run
    // on GitHub Actions or GitLab CI).
    for var in ["GITHUB_ACTIONS", "GITLAB_CI", "SANDCRAB_CI_PLATFORM"] {
        cmd.env_remove(var);
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

/// Output as text, for assertions.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(cmd: &mut Command) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("sandcrab runs");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// A spawned `sandcrab run` (stdout and stderr captured), killed by its PID if the test ends
/// before it does.
pub struct Running(Option<std::process::Child>);

impl Running {
    pub fn spawn(cmd: &mut Command) -> Self {
        let child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("sandcrab starts");
        Running(Some(child))
    }

    pub fn pid(&self) -> u32 {
        self.0.as_ref().unwrap().id()
    }

    /// Waits for the end; its output as text.
    pub fn finish(mut self) -> Run {
        let output = self.0.take().unwrap().wait_with_output().unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `done` every 50 ms; fails the test, naming `what`, after `limit`.
pub fn wait_until(what: &str, limit: std::time::Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A git repository in a temp dir with `files` committed on `main`.
pub fn git_repo(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    git(dir.path(), &["init", "-q", "-b", "main"]);
    git(dir.path(), &["add", "-A"]);
    git(
        dir.path(),
        &["commit", "-q", "-m", "initial", "--allow-empty"],
    );
    dir
}

pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reads `result.json` of an output folder.
pub fn result_json(out: &Path) -> Value {
    let text = std::fs::read_to_string(out.join("result.json")).expect("result.json written");
    serde_json::from_str(&text).unwrap()
}

/// Events of `trajectory.jsonl`.
pub fn trajectory(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("trajectory.jsonl"))
        .expect("trajectory.jsonl written")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub fn kinds<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

/// One canned HTTP answer.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    pub delay: Duration,
}

impl Reply {
    pub fn ok(body: Value) -> Self {
        Reply {
            status: 200,
            headers: vec![],
            body,
            delay: Duration::ZERO,
        }
    }

    pub fn status(status: u16) -> Self {
        Reply {
            status,
            headers: vec![],
            body: json!({"error": {"message": format!("scripted {status}")}}),
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }

    pub fn delayed(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

/// Decides the reply to request number `n` (0-based) with body `body`.
pub type Script = Arc<dyn Fn(usize, &Value) -> Reply + Send + Sync>;

/// A recorded request.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

/// A fake model provider on 127.0.0.1, serving until dropped (it lives in its own thread).
pub struct FakeLlm {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

#[derive(Clone)]
struct AppState {
    script: Script,
    requests: Arc<Mutex<Vec<Recorded>>>,
}

impl FakeLlm {
    pub fn start(script: Script) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let state = AppState {
            script,
            requests: requests.clone(),
        };
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app = Router::new()
                    .route("/v1/chat/completions", post(handle))
                    .route("/v1/messages", post(handle))
                    .route("/v1/responses", post(handle))
                    .with_state(state);
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = shutdown_rx.await;
                    })
                    .await;
            });
        });
        let addr = addr_rx.recv().unwrap();
        FakeLlm {
            addr,
            requests,
            _shutdown: shutdown,
        }
    }

    /// `http://127.0.0.1:PORT/v1`, for `--llm-base-url` of OpenAI-compatible clients.
    pub fn openai_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// `http://127.0.0.1:PORT`, for Anthropic (`/v1/messages` is appended by the client).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }
}

async fn handle(
    State(state): State<AppState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let n = {
        let mut reqs = state.requests.lock().unwrap();
        reqs.push(Recorded {
            path: uri.path().to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect(),
            body: body.clone(),
        });
        reqs.len() - 1
    };
    let reply = (state.script)(n, &body);
    tokio::time::sleep(reply.delay).await;
    let mut response = (
        StatusCode::from_u16(reply.status).unwrap(),
        axum::Json(reply.body),
    )
        .into_response();
    for (k, v) in reply.headers {
        response.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    response
}

/// Number of tool results in an OpenAI request: the scripted step to play.
pub fn tool_results(body: &Value) -> usize {
    body["messages"]
        .as_array()
        .map_or(0, |m| m.iter().filter(|m| m["role"] == "tool").count())
}

/// `../shared/bench/scripted_llm.py --steps N` on a free loopback port; killed when dropped,
/// also when the test panics.
pub struct SharedScriptedLlm {
    child: std::process::Child,
    port: u16,
}

impl SharedScriptedLlm {
    /// Starts it, or `None` (with a note) when `../shared` is not beside the clone; CI must
    /// have it.
    pub fn start(steps: usize) -> Option<Self> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/scripted_llm.py");
        if !script.exists() {
            skip(&format!(
                "{} not found (../shared beside the clone)",
                script.display()
            ));
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("python3")
            .arg(&script)
            .args(["--port", &port.to_string(), "--steps", &steps.to_string()])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("python3 runs scripted_llm.py");
        let server = SharedScriptedLlm { child, port };
        for _ in 0..400 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(server);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("scripted_llm.py does not listen on {port}");
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn openai_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }
}

impl Drop for SharedScriptedLlm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The scripted model of `shared/bench/scripted_llm.py`, served by a `FakeLlm`: `steps` calls
/// of `terminal` (`echo step-i`, the step chosen by the tool results already in the request),
/// then `finish` ("finished after N steps"); each answer after `delay`.
pub fn terminal_steps(steps: usize, delay: Duration) -> Script {
    Arc::new(move |_, body: &Value| {
        let done = tool_results(body);
        let call = if done < steps {
            openai_call(
                done,
                "terminal",
                &json!({"command": format!("echo step-{done}")}).to_string(),
            )
        } else {
            openai_call(
                done,
                "finish",
                &json!({"message": format!("finished after {done} steps")}).to_string(),
            )
        };
        Reply::ok(call).delayed(delay)
    })
}

/// An OpenAI chat completion calling one tool.
pub fn openai_call(step: usize, name: &str, arguments: &str) -> Value {
    json!({
        "id": format!("chatcmpl-{step}"), "object": "chat.completion", "model": "scripted",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": null,
            "tool_calls": [{"id": format!("call_{step}"), "type": "function",
                            "function": {"name": name, "arguments": arguments}}]}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    })
}

/// An Anthropic message calling one tool.
pub fn anthropic_call(step: usize, name: &str, input: Value) -> Value {
    json!({
        "id": format!("msg_{step}"), "type": "message", "role": "assistant", "model": "scripted",
        "content": [{"type": "tool_use", "id": format!("toolu_{step}"), "name": name, "input": input}],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 100, "output_tokens": 20}
    })
}

/// The workspace-scripts folder of this crate (`examples/`).
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}
