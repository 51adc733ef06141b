//! `file_editor` as the model calls it: arbitrary JSON arguments are parsed and validated, then
//! executed with the path moved into a scratch directory (the fuzzer must not write on the host
//! elsewhere). Parsing must never panic, and neither must view ranges, insert lines or
//! replacements on whatever file content an earlier input left there.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sandcrab::agent::tools::file_editor::FileEditorTool;
use sandcrab::agent::tools::{Tool, ToolContext};
use serde_json::Value;

fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

/// `path` reduced to at most two plain components under the scratch directory.
fn confined(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != "." && *p != "..")
        .take(2)
        .collect();
    scratch().join(parts.join("/")).display().to_string()
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut args) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let tool = FileEditorTool::new(ToolContext::new(scratch()));
    if let Some(Value::String(path)) = args.get("path").cloned() {
        args["path"] = Value::String(confined(&path));
    }
    let Ok(action) = tool.parse_action(&args) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(tool.execute(&action));
});
