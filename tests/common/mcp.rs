//! A real MCP server for the tests: `tests/fixtures/mcp/notes_server.py` on the official `mcp`
//! package from PyPI, run by the Python of `SANDCRAB_MCP_PYTHON` (default
//! `/var/tmp/sandcrab-mcp-venv/bin/python`, which `.ci/run` sets up).

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
