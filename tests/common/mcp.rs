//! A real MCP server for the tests: `tests/fixtures/mcp/notes_server.py` on the official `mcp`
//! package from PyPI, run by the Python of `SANDCRAB_MCP_PYTHON` (default
//! `/var/tmp/sandcrab-mcp-venv/bin/python`, which `.ci/run` sets up), over stdio or, started
//! here on a loopback port, over streamable HTTP (`HttpServer`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python that has `mcp`, or `None` after printing `SKIPPED` (under CI it must be there).
pub fn python() -> Option<PathBuf> {
    let python = std::env::var("SANDCRAB_MCP_PYTHON")
        .unwrap_or_else(|_| "/var/tmp/sandcrab-mcp-venv/bin/python".into());
    let usable = Path::new(&python).exists()
        && Command::new(&python)
            .args(["-c", "import mcp.server"])
            .output()
            .is_ok_and(|o| o.status.success());
    if usable {
        return Some(PathBuf::from(python));
    }
    let why = format!("no Python with the `mcp` package at {python} (set SANDCRAB_MCP_PYTHON)");
    super::skip(&format!("the MCP test server: {why}"));
    None
}

/// The test server's script.
pub fn notes_server() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mcp/notes_server.py")
}

/// The test server over MCP's streamable-HTTP transport on a free loopback port, started by a
/// test and killed (by its pid) when dropped.
pub struct HttpServer {
    child: std::process::Child,
    pub port: u16,
    /// Its working directory, where its notes go.
    pub dir: tempfile::TempDir,
}

impl HttpServer {
    /// Starts `notes_server.py NAME --http PORT`; with `bearer`, it answers 401 to any request
    /// without `Authorization: Bearer BEARER`. Returns once the port accepts connections.
    pub fn start(python: &Path, name: &str, bearer: Option<&str>) -> HttpServer {
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(python);
        cmd.arg(notes_server())
            .current_dir(dir.path())
            .args([name, "--http", &port.to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        if let Some(token) = bearer {
            cmd.env("NOTES_BEARER", token);
        }
        let child = cmd.spawn().expect("start the streamable-HTTP test server");
        let mut server = HttpServer { child, port, dir };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("the streamable-HTTP test server exited: {status}");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the streamable-HTTP test server did not listen on {port} within 30 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        server
    }

    /// Its MCP endpoint.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on (the OS picked it free a moment ago).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
