//! Headless Chromium for page tests, driven over the DevTools protocol (CDP): open a local
//! HTML file, collect console errors, uncaught exceptions and every network request it makes,
//! read its text, run a line of script in it, and keep screenshots under
//! `target/test-artifacts/<folder>/`. Without a `chromium` (Debian's package; `.ci/run` installs
//! it) a test prints `SKIPPED: <why>` and returns, unless `CI` is set.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The `chromium` binary (`SANDCRAB_CHROMIUM` overrides), or `None` after printing SKIPPED.
pub fn find() -> Option<PathBuf> {
    let candidates = std::env::var_os("SANDCRAB_CHROMIUM")
        .map(PathBuf::from)
        .into_iter()
        .chain(["chromium", "chromium-browser", "google-chrome"].map(PathBuf::from));
    for c in candidates {
        let found = Command::new(&c)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if found {
            return Some(c);
        }
    }
    super::skip("no chromium found (.ci/run installs Debian's chromium; or set SANDCRAB_CHROMIUM)");
    None
}

/// Where the screenshots of `folder` go: `target/test-artifacts/<folder>/`.
pub fn artifacts_dir(folder: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/test-artifacts")
        .join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running headless Chromium; killed (by its pid) when dropped.
pub struct Browser {
    child: Child,
    ws: Socket,
    next_id: u64,
    session: String,
    /// Every event received, in order.
    pub events: Vec<Value>,
    _profile: tempfile::TempDir,
}

/// What a page did while it loaded.
#[derive(Debug, Default)]
pub struct Report {
    /// Console errors, uncaught exceptions and error log entries (CSP violations among them).
    pub errors: Vec<String>,
    /// URLs requested other than the page itself and `data:` URLs.
    pub requests: Vec<String>,
}

impl Browser {
    /// Starts Chromium and attaches to a blank tab.
    pub async fn start(binary: &Path) -> Browser {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new(binary)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chromium starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let (false, Some(at)) = (sent, line.find("ws://")) {
                    let _ = tx.send(line[at..].trim().to_string());
                    sent = true;
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("chromium prints `DevTools listening on ws://...`");
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("the DevTools socket accepts");
        let mut browser = Browser {
            child,
            ws,
            next_id: 0,
            session: String::new(),
            events: Vec::new(),
            _profile: profile,
        };
        let target = browser
            .call("Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let attached = browser
            .call(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        browser.session = attached["sessionId"].as_str().unwrap().to_string();
        for domain in ["Runtime", "Log", "Network", "Page"] {
            browser.call(&format!("{domain}.enable"), json!({})).await;
        }
        browser
    }

    /// Sends one command (to the attached tab once there is one) and returns its result.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.ws.send(Message::text(msg.to_string())).await.unwrap();
        let reply = tokio::time::timeout(CALL_TIMEOUT, async {
            loop {
                let frame = self
                    .ws
                    .next()
                    .await
                    .expect("the DevTools socket stays open");
                let Ok(Message::Text(text)) = frame else {
                    continue;
                };
                let v: Value = serde_json::from_str(&text).unwrap();
                if v["id"] == id {
                    return v;
                }
                self.events.push(v);
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{method} did not answer"));
        assert!(reply["error"].is_null(), "{method}: {}", reply["error"]);
        reply["result"].clone()
    }

    /// Waits until an event `method` arrives (or was already received since `from`).
    async fn wait_for(&mut self, method: &str, from: usize) {
        if self.events[from..].iter().any(|e| e["method"] == method) {
            return;
        }
        tokio::time::timeout(CALL_TIMEOUT, async {
            loop {
                let Some(Ok(Message::Text(text))) = self.ws.next().await else {
                    continue;
                };
                let v: Value = serde_json::from_str(&text).unwrap();
                let done = v["method"] == method;
                self.events.push(v);
                if done {
                    return;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {method}"));
    }

    /// Opens `file` and waits for its load event (plus a moment for late errors); returns what
    /// the page did while loading.
    pub async fn open(&mut self, file: &Path) -> Report {
        let url = url::Url::from_file_path(file.canonicalize().unwrap()).unwrap();
        let from = self.events.len();
        self.call("Page.navigate", json!({"url": url.as_str()}))
            .await;
        self.wait_for("Page.loadEventFired", from).await;
        // Let anything the page would do after load happen, then collect.
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.eval("1").await;
        report(&self.events[from..], url.as_str())
    }

    /// The value of `expression` in the page.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true}),
            )
            .await;
        assert!(
            r["exceptionDetails"].is_null(),
            "{expression}: {}",
            r["exceptionDetails"]
        );
        r["result"]["value"].clone()
    }

    /// Sets the viewport (and the colour scheme) for what follows.
    pub async fn view(&mut self, width: u32, height: u32, mobile: bool, dark: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        )
        .await;
        let scheme = if dark { "dark" } else { "light" };
        self.call(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": scheme}]}),
        )
        .await;
    }

    /// Saves a PNG of the viewport to `path`.
    pub async fn screenshot(&mut self, path: &Path) {
        let shot = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        std::fs::write(path, png).unwrap();
    }
}

fn report(events: &[Value], page_url: &str) -> Report {
    let mut out = Report::default();
    for e in events {
        let p = &e["params"];
        match e["method"].as_str().unwrap_or("") {
            "Runtime.exceptionThrown" => out.errors.push(format!(
                "exception: {}",
                p["exceptionDetails"]["exception"]["description"]
            )),
            "Runtime.consoleAPICalled" if p["type"] == "error" => {
                out.errors.push(format!("console.error: {}", p["args"]))
            }
            "Log.entryAdded" if p["entry"]["level"] == "error" => {
                out.errors.push(format!("log: {}", p["entry"]["text"]))
            }
            "Network.requestWillBeSent" => {
                let url = p["request"]["url"].as_str().unwrap_or("").to_string();
                if url != page_url && !url.starts_with("data:") {
                    out.requests.push(url);
                }
            }
            _ => {}
        }
    }
    out
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
