//! The strict fake GitHub of `../shared/github/fake_github.py` (REST judged against GitHub's
//! published description, git over smart HTTP behind the token), started for one test on a
//! free loopback port with a bare repository under its git root. Python comes from
//! `SANDCRAB_FAKE_GITHUB_PYTHON` (default `/var/tmp/fake-github-venv/bin/python`); without it
//! (or the script) a test prints `SKIPPED: <why>` and returns, unless `CI` is set.
//!
//! [`StrictGithub::requests`] asserts that every logged request has an empty `problems` list.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const OWNER: &str = "Codertocat";
pub const NAME: &str = "Hello-World";
pub const REPO: &str = "Codertocat/Hello-World";
pub const DEFAULT_BRANCH: &str = "master";
pub const TOKEN: &str = "ghs_STRICTtoken1234567890abcdefXYZ";
pub const LLM_KEY: &str = "sk-strict-llm-key-0987654321-secret";

pub struct StrictGithub {
    child: Child,
    pub port: u16,
    pub root: tempfile::TempDir,
    log: PathBuf,
}

/// The fake's Python (its venv also holds PyJWT and cryptography, see `.ci/run`).
pub fn python() -> String {
    std::env::var("SANDCRAB_FAKE_GITHUB_PYTHON")
        .unwrap_or_else(|_| "/var/tmp/fake-github-venv/bin/python".into())
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/github/fake_github.py")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/github-events")
}

/// Says SKIPPED (or fails under `CI`, see [`super::skip`]) and returns `None`.
fn skip(why: &str) -> Option<StrictGithub> {
    super::skip(&format!("the strict fake GitHub: {why}"));
    None
}

/// A GitHub App installed on the served repository (`tests/fakes/github_app.py`): the fake
/// then accepts `token` only once the run has minted it with a JWT signed by the App's key,
/// and no longer once it is revoked.
pub struct App<'a> {
    pub id: &'a str,
    pub public_key_pem: &'a Path,
    pub installation_id: u64,
    /// `name=read|write`, the permissions the installation was granted.
    pub permissions: &'a [&'a str],
    /// The installation token the fake mints.
    pub token: &'a str,
    /// The workflow's `GITHUB_TOKEN`: good for actions/checkout's fetch, refused (and a
    /// problem) on a push or an API call.
    pub job_token: &'a str,
    /// Strings no request may carry (lines of the App's key).
    pub secrets: &'a [&'a str],
}

impl StrictGithub {
    /// Starts the fake over `bare` (moved to `{root}/OWNER/NAME.git`); `perms` as `login=perm`.
    pub fn start(bare: &Path, perms: &[&str]) -> Option<Self> {
        Self::launch(bare, perms, None)
    }

    /// The fake with a GitHub App installed (see [`App`]).
    pub fn start_with_app(bare: &Path, perms: &[&str], app: &App<'_>) -> Option<Self> {
        Self::launch(bare, perms, Some(app))
    }

    fn launch(bare: &Path, perms: &[&str], app: Option<&App<'_>>) -> Option<Self> {
        let python = python();
        if !Path::new(&python).exists() {
            return skip(&format!("no python for the fake GitHub at {python}"));
        }
        if !script().exists() {
            return skip(&format!("{} is missing", script().display()));
        }
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join(OWNER)).unwrap();
        let at = root.path().join(OWNER).join(format!("{NAME}.git"));
        let status = Command::new("cp")
            .arg("-a")
            .arg(bare)
            .arg(&at)
            .status()
            .unwrap();
        assert!(status.success());
        let port = free_port();
        let log = root.path().join("requests.jsonl");
        let mut cmd = Command::new(&python);
        match app {
            None => {
                cmd.arg(script()).args(["--token", TOKEN]);
            }
            Some(app) => {
                let wrapper =
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fakes/github_app.py");
                cmd.arg(wrapper)
                    .env("SANDCRAB_SHARED_GITHUB", script().parent().unwrap())
                    .args(["--token", app.token, "--app-id", app.id])
                    .arg("--app-public-key")
                    .arg(app.public_key_pem)
                    .args(["--installation-id", &app.installation_id.to_string()])
                    .args(["--job-token", app.job_token]);
                for p in app.permissions {
                    cmd.args(["--app-permission", p]);
                }
                for s in app.secrets {
                    cmd.args(["--secret", s]);
                }
            }
        }
        cmd.args(["--port", &port.to_string()])
            .arg("--git-root")
            .arg(root.path())
            .arg("--fixtures")
            .arg(fixtures())
            .args(["--repo", REPO, "--secret", LLM_KEY])
            .arg("--log")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for p in perms {
            cmd.args(["--perm", p]);
        }
        let child = cmd.spawn().unwrap();
        let mut fake = StrictGithub {
            child,
            port,
            root,
            log,
        };
        fake.wait_ready();
        Some(fake)
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the fake GitHub exited ({status}) before it was ready");
            }
            if answers_ready(self.port) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("the fake GitHub did not get ready on port {}", self.port);
    }

    /// `GITHUB_SERVER_URL` (git lives at `{server}/OWNER/NAME.git`).
    pub fn server_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `GITHUB_API_URL`.
    pub fn api_url(&self) -> String {
        format!("{}/api/v3", self.server_url())
    }

    pub fn clone_url(&self) -> String {
        format!("{}/{REPO}.git", self.server_url())
    }

    /// The served bare repository.
    pub fn bare(&self) -> PathBuf {
        self.root.path().join(OWNER).join(format!("{NAME}.git"))
    }

    /// Every logged request, each asserted to have no problem.
    pub fn requests(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for r in &all {
            assert_eq!(
                r["problems"],
                Value::Array(vec![]),
                "the fake GitHub found problems in {} {}",
                r["method"],
                r["path"]
            );
        }
        all
    }

    /// The ref updates of every push.
    pub fn pushes(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter_map(|r| r.get("updates").cloned())
            .flat_map(|u| u.as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// REST requests as (method, path, body).
    pub fn api_calls(&self) -> Vec<(String, String, String)> {
        self.requests()
            .into_iter()
            .filter(|r| r["kind"] == "api")
            .map(|r| {
                (
                    r["method"].as_str().unwrap_or("").to_string(),
                    r["path"].as_str().unwrap_or("").to_string(),
                    r.get("body").map(|b| b.to_string()).unwrap_or_default(),
                )
            })
            .collect()
    }

    /// git in the served bare repository.
    pub fn git(&self, args: &[&str]) -> String {
        super::git(&self.bare(), args)
    }
}

impl Drop for StrictGithub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `GET /_fake/ready` answers 200 (plain HTTP/1.0 over a socket: no host program).
fn answers_ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut socket) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = socket.set_read_timeout(Some(Duration::from_secs(5)));
    let request = "GET /_fake/ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    let mut answer = String::new();
    socket.write_all(request.as_bytes()).is_ok()
        && socket.read_to_string(&mut answer).is_ok()
        && answer.split(' ').nth(1) == Some("200")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
