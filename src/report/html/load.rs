//! `sandcrab report PATH`: reads what a page is made from — an output folder of `sandcrab run`
//! (`trajectory.jsonl`, `result.json`, `changes.patch`), a conversation folder (sandcrab's
//! `events.jsonl`, or the OpenHands SDK's `events/*.json`), or one trajectory file (JSON lines,
//! or a JSON array of events as an OpenHands SDK script dumps them) — and writes `report.html`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// The inputs of a page.
#[derive(Debug, Default)]
pub struct Inputs {
    pub events: Vec<Value>,
    pub result: Option<Value>,
    pub patch: String,
    /// Where the page goes unless told otherwise: `report.html` beside the inputs.
    pub default_out: PathBuf,
}

/// Reads the inputs at `path` (a folder or a trajectory file).
pub fn load(path: &Path) -> Result<Inputs> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_dir() {
        let dir = path.parent().unwrap_or(Path::new("."));
        return Ok(Inputs {
            events: read_trajectory(path)?,
            default_out: dir.join("report.html"),
            ..Inputs::default()
        });
    }
    let events = if path.join("trajectory.jsonl").is_file() {
        read_trajectory(&path.join("trajectory.jsonl"))?
    } else if path.join("events.jsonl").is_file() {
        read_trajectory(&path.join("events.jsonl"))?
    } else if path.join("events").is_dir() {
        read_event_files(&path.join("events"))?
    } else {
        bail!(
            "{} holds no trajectory.jsonl, events.jsonl or events/ folder; give the --out folder of a sandcrab run, a conversation folder or a trajectory file",
            path.display()
        );
    };
    let result = match std::fs::read_to_string(path.join("result.json")) {
        Ok(text) => Some(
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.join("result.json").display()))?,
        ),
        Err(_) => None,
    };
    Ok(Inputs {
        events,
        result,
        patch: std::fs::read_to_string(path.join("changes.patch")).unwrap_or_default(),
        default_out: path.join("report.html"),
    })
}

/// Events of a JSON-lines file, or of a file holding one JSON array.
pub fn read_trajectory(path: &Path) -> Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if text.trim_start().starts_with('[') {
        let events: Vec<Value> = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a JSON array of events", path.display()))?;
        return checked(events, path);
    }
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let event: Value = serde_json::from_str(line).with_context(|| {
            format!(
                "{} line {} is not JSON; give a trajectory.jsonl (one event per line)",
                path.display(),
                i + 1
            )
        })?;
        events.push(event);
    }
    checked(events, path)
}

/// The OpenHands SDK's persisted events: one JSON file per event, named in order.
fn read_event_files(dir: &Path) -> Result<Vec<Value>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut events = Vec::with_capacity(files.len());
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        events.push(
            serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", file.display()))?,
        );
    }
    checked(events, dir)
}

/// Every event must be an object with a `kind`.
fn checked(events: Vec<Value>, path: &Path) -> Result<Vec<Value>> {
    if let Some(i) = events.iter().position(|e| !e["kind"].is_string()) {
        bail!(
            "{}: event {} has no \"kind\"; this is not a sandcrab or OpenHands trajectory",
            path.display(),
            i + 1
        );
    }
    Ok(events)
}

/// `sandcrab report PATH [--out FILE]`: writes the page and returns where.
pub fn report_command(path: &Path, out: Option<&Path>) -> Result<PathBuf> {
    let inputs = load(path)?;
    let html = super::render(
        &inputs.events,
        inputs.result.as_ref(),
        &inputs.patch,
        &|s| s.to_string(),
    )?;
    let out = out.map_or(inputs.default_out, Path::to_path_buf);
    std::fs::write(&out, html).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_layout_a_trajectory_comes_in() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // The OpenHands SDK's persisted conversation: one file per event, named in order.
        std::fs::create_dir(d.join("events")).unwrap();
        for (i, kind) in ["MessageEvent", "ActionEvent", "ObservationEvent"]
            .iter()
            .enumerate()
        {
            let name = format!("event-{i:05}-x.json");
            std::fs::write(
                d.join("events").join(name),
                format!("{{\"kind\": \"{kind}\"}}"),
            )
            .unwrap();
        }
        std::fs::write(d.join("events").join("notes.txt"), "not an event").unwrap();
        let inputs = load(d).unwrap();
        let kinds: Vec<&str> = inputs
            .events
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["MessageEvent", "ActionEvent", "ObservationEvent"]);
        assert_eq!(inputs.default_out, d.join("report.html"));
        assert!(inputs.result.is_none() && inputs.patch.is_empty());
        // A JSON array, and JSON lines with blank lines.
        let array = d.join("dump.json");
        std::fs::write(&array, "[{\"kind\": \"A\"}, {\"kind\": \"B\"}]").unwrap();
        assert_eq!(load(&array).unwrap().events.len(), 2);
        let lines = d.join("t.jsonl");
        std::fs::write(&lines, "{\"kind\": \"A\"}\n\n{\"kind\": \"B\"}\n").unwrap();
        assert_eq!(load(&lines).unwrap().events.len(), 2);
        // Not a trajectory: one line saying which event.
        std::fs::write(&lines, "{\"kind\": \"A\"}\n{\"type\": \"B\"}\n").unwrap();
        let e = load(&lines).unwrap_err().to_string();
        assert!(e.contains("event 2 has no \"kind\""), "{e}");
    }
}
