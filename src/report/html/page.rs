//! What the page shows, gathered from the trajectory, `result.json` (when there is one) and
//! the patch: the task, the outcome, figures and timings, the task list, the conversation and
//! the diff. A trajectory alone (an OpenHands SDK one) gives all but the figures only a run
//! knows (timings, workspace).

use serde::Serialize;
use serde_json::Value;

use super::chart::{self, Chart};
use super::diff::{self, FileDiff};
use super::steps::{self, Entry};
use super::text::{clean, fold, preview, Folded};
use crate::protocol::event::text_of;

#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub title: String,
    pub status: String,
    /// `ok`, `bad` or `unknown`: the colour of the status badge.
    pub tone: &'static str,
    pub task: Folded,
    pub summary: Option<Folded>,
    pub error: Option<Folded>,
    pub model: String,
    pub workspace: String,
    pub conversation_id: String,
    pub version: String,
    pub figures: Vec<(String, String)>,
    pub timings: Vec<(String, String)>,
    pub chart: Option<Chart>,
    pub tasks: Vec<Task>,
    pub entries: Vec<Entry>,
    pub actions: usize,
    pub files: Vec<FileDiff>,
    pub added: usize,
    pub removed: usize,
    pub tools: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Task {
    pub title: String,
    pub status: String,
    pub notes: String,
}

/// The page of a run: `events` (JSON of each event), `result` (`result.json`, if any), and the
/// patch (empty if none).
pub fn page(events: &[Value], result: Option<&Value>, patch: &str) -> Page {
    let empty = Value::Null;
    let r = result.unwrap_or(&empty);
    let stats = last_stats(events);
    let order: Vec<String> = events
        .iter()
        .filter_map(|e| e["llm_response_id"].as_str().map(str::to_string))
        .collect();
    let calls = stats.map_or_else(Vec::new, |s| chart::calls(s, &order));
    let entries = steps::entries(events, &calls);
    let task = first_user_message(events).unwrap_or_default();
    let status = r["status"]
        .as_str()
        .map(str::to_string)
        .or_else(|| last_execution_status(events))
        .unwrap_or_else(|| "unknown".into());
    let tone = match status.as_str() {
        "finished" => "ok",
        "unknown" | "running" | "idle" | "paused" | "interrupted" => "unknown",
        _ => "bad",
    };
    let model = r["model"]
        .as_str()
        .map(str::to_string)
        .or_else(|| model_of(stats))
        .unwrap_or_else(|| "unknown".into());
    let files = diff::files(patch);
    let (added, removed) = files
        .iter()
        .fold((0, 0), |(a, d), f| (a + f.added, d + f.removed));
    Page {
        title: preview(&task, 80),
        status: clean(&status),
        tone,
        task: fold(&task),
        summary: r["summary"]
            .as_str()
            .or_else(|| final_message(events))
            .filter(|s| !s.trim().is_empty())
            .map(fold),
        error: r["error"].as_str().map(fold),
        model: clean(&model),
        workspace: match (
            r["workspace"]["kind"].as_str(),
            r["workspace"]["working_dir"].as_str(),
        ) {
            (Some(kind), Some(dir)) => clean(&format!("{kind} · {dir}")),
            _ => "unknown".into(),
        },
        conversation_id: clean(r["conversation_id"].as_str().unwrap_or("")),
        version: clean(r["sandcrab_version"].as_str().unwrap_or("")),
        figures: figures(r, &calls, events),
        timings: timings(r),
        chart: chart::chart(&calls),
        tasks: tasks(events),
        actions: entries.iter().filter(|e| e.kind == "action").count(),
        entries,
        files,
        added,
        removed,
        tools: tools(events),
    }
}

/// The value of the last `stats` update (or of a `full_state` update's `stats`).
fn last_stats(events: &[Value]) -> Option<&Value> {
    events.iter().rev().find_map(|e| {
        if e["kind"] != "ConversationStateUpdateEvent" {
            return None;
        }
        match e["key"].as_str() {
            Some("stats") if e["value"]["usage_to_metrics"].is_object() => Some(&e["value"]),
            Some("full_state") if e["value"]["stats"]["usage_to_metrics"].is_object() => {
                Some(&e["value"]["stats"])
            }
            _ => None,
        }
    })
}

/// The status of the last `execution_status` update, or of a `full_state` snapshot.
fn last_execution_status(events: &[Value]) -> Option<String> {
    events.iter().rev().find_map(|e| {
        if e["kind"] != "ConversationStateUpdateEvent" {
            return None;
        }
        match e["key"].as_str() {
            Some("execution_status") => e["value"].as_str(),
            Some("full_state") => e["value"]["execution_status"].as_str(),
            _ => None,
        }
        .map(str::to_string)
    })
}

/// The agent's model (usage id `agent`), else the first model of the stats.
fn model_of(stats: Option<&Value>) -> Option<String> {
    let metrics = stats?["usage_to_metrics"].as_object()?;
    metrics.get("agent").or_else(|| metrics.values().next())?["model_name"]
        .as_str()
        .map(str::to_string)
}

fn message_text(event: &Value) -> String {
    text_of(
        event["llm_message"]["content"]
            .as_array()
            .map_or(&[][..], |v| v),
    )
}

fn first_user_message(events: &[Value]) -> Option<String> {
    events
        .iter()
        .find(|e| e["kind"] == "MessageEvent" && e["source"] == "user")
        .map(message_text)
}

/// The `finish` action's message, for trajectories without `result.json`.
fn final_message(events: &[Value]) -> Option<&str> {
    events.iter().rev().find_map(|e| {
        (e["kind"] == "ActionEvent" && e["tool_name"] == "finish")
            .then(|| e["action"]["message"].as_str())
            .flatten()
    })
}

fn tools(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .find(|e| e["kind"] == "SystemPromptEvent")
        .and_then(|e| e["tools"].as_array())
        .map_or_else(Vec::new, |tools| {
            tools
                .iter()
                .filter_map(|t| {
                    t["name"]
                        .as_str()
                        .or(t["function"]["name"].as_str())
                        .or(t["title"].as_str())
                        .map(clean)
                })
                .collect()
        })
}

fn tasks(events: &[Value]) -> Vec<Task> {
    let list = events.iter().rev().find_map(|e| {
        (e["kind"] == "ObservationEvent" && e["tool_name"] == "task_tracker")
            .then(|| e["observation"]["task_list"].as_array())
            .flatten()
    });
    list.map_or_else(Vec::new, |tasks| {
        tasks
            .iter()
            .map(|t| Task {
                title: clean(t["title"].as_str().unwrap_or("?")),
                status: clean(t["status"].as_str().unwrap_or("todo")),
                notes: clean(t["notes"].as_str().unwrap_or("")),
            })
            .collect()
    })
}

fn figures(r: &Value, calls: &[chart::Call], events: &[Value]) -> Vec<(String, String)> {
    let sum = |f: fn(&chart::Call) -> u64| calls.iter().map(f).sum::<u64>();
    let tokens = &r["tokens"];
    let n = |key: &str, fallback: u64| tokens[key].as_u64().unwrap_or(fallback);
    let prompt = n("prompt", sum(|c| c.prompt));
    let completion = n("completion", sum(|c| c.completion));
    let cache_read = n("cache_read", sum(|c| c.cache_read));
    let cache_write = n("cache_write", sum(|c| c.cache_write));
    let hits = tokens["cache_hit_ratio"]
        .as_f64()
        .or_else(|| (prompt > 0).then(|| cache_read as f64 / prompt as f64));
    let cost = r["cost"].as_f64().or_else(|| {
        (!calls.is_empty() && calls.iter().all(|c| c.cost.is_some()))
            .then(|| calls.iter().filter_map(|c| c.cost).sum())
    });
    let actions = events.iter().filter(|e| e["kind"] == "ActionEvent").count();
    let mut out = vec![
        ("model calls".into(), calls.len().to_string()),
        ("actions".into(), actions.to_string()),
    ];
    if let Some(i) = r["iterations"].as_u64() {
        out.push(("iterations".into(), i.to_string()));
    }
    out.extend([
        ("input tokens".into(), prompt.to_string()),
        ("output tokens".into(), completion.to_string()),
        ("cache reads".into(), cache_read.to_string()),
        ("cache writes".into(), cache_write.to_string()),
        (
            "cache hits".into(),
            hits.map_or("—".into(), |h| format!("{:.0}%", h * 100.0)),
        ),
        (
            "cost".into(),
            cost.map_or("unknown".into(), |c| format!("${c:.4}")),
        ),
    ]);
    out
}

fn timings(r: &Value) -> Vec<(String, String)> {
    let t = &r["timings"];
    [
        ("setup", "setup_ms"),
        ("agent run", "run_ms"),
        ("of which model", "llm_ms"),
        ("report", "report_ms"),
        ("total", "total_ms"),
    ]
    .iter()
    .filter_map(|(label, key)| {
        t[*key]
            .as_f64()
            .map(|ms| (label.to_string(), format_ms(ms)))
    })
    .collect()
}

fn format_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}
