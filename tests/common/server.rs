//! A `sandcrab serve` child on a free loopback port, with a session key, and a client for it.
//! The child is killed (by its PID) when the `Server` is dropped.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

/// The key every test server requires.
pub const KEY: &str = "test-session-key";

pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub working_dir: PathBuf,
    client: reqwest::Client,
    _dirs: Vec<tempfile::TempDir>,
}

impl Server {
    /// A server working in a fresh temporary directory.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().canonicalize().unwrap();
        Self::spawn(&path, vec![dir])
    }

    /// A server working in `dir`.
    pub fn start_in(dir: &Path) -> Self {
        Self::spawn(&dir.canonicalize().unwrap(), Vec::new())
    }

    /// A server working in `dir` over an existing conversations folder (a restart).
    pub fn start_with(dir: &Path, conversations: &Path) -> Self {
        let mut server = Self::spawn_over(&dir.canonicalize().unwrap(), conversations);
        server._dirs.clear();
        server
    }

    fn spawn(working_dir: &Path, mut dirs: Vec<tempfile::TempDir>) -> Self {
        let conversations = tempfile::tempdir().unwrap();
        let mut server = Self::spawn_over(working_dir, conversations.path());
        dirs.push(conversations);
        server._dirs = dirs;
        server
    }

    fn spawn_over(working_dir: &Path, conversations: &Path) -> Self {
        let mut child = super::sandcrab()
            .args(["serve", "--port", "0", "--working-dir"])
            .arg(working_dir)
            .arg("--conversations-dir")
            .arg(conversations)
            .env("SESSION_API_KEY", KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("sandcrab serve starts");
        let base = listening_address(&mut child);
        Server {
            child,
            base,
            working_dir: working_dir.to_path_buf(),
            client: reqwest::Client::new(),
            _dirs: Vec::new(),
        }
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A request with the session key.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.bare(method, path).header("X-Session-API-Key", KEY)
    }

    /// A request without a key.
    pub fn bare(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.request(Method::POST, path)
    }

    /// `GET path` with the key, expecting 200 and JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        json_of(self.get(path).send().await.unwrap(), 200).await
    }

    /// `POST path` with a JSON body and the key, expecting 200 and JSON.
    pub async fn post_json(&self, path: &str, body: &Value) -> Value {
        json_of(self.post(path).json(body).send().await.unwrap(), 200).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The response's JSON, after checking its status.
pub async fn json_of(response: Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Reads `sandcrab serve: listening on http://ADDR (...)` from the child's stdout, then keeps
/// reading it (so the child never writes to a closed or full pipe).
fn listening_address(child: &mut Child) -> String {
    let started = Instant::now();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let Some(rest) = line.trim().strip_prefix("sandcrab serve: listening on ") else {
        let _ = child.kill();
        panic!("unexpected first line {line:?} (stderr above)");
    };
    assert!(started.elapsed() < Duration::from_secs(10));
    rest.split_whitespace().next().unwrap().to_string()
}
