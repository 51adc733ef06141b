//! Tokens, cost and cache hits over the model calls of a run, from the last `stats` state
//! update of the trajectory (OpenHands' `ConversationStats`: one `token_usages` record per
//! completion, `costs` alongside when every call was priced). The SVG geometry is computed
//! here; the template only draws it.

use serde::Serialize;
use serde_json::Value;

/// The drawing area of the chart, in SVG units.
pub const WIDTH: f64 = 720.0;
pub const HEIGHT: f64 = 160.0;
const TOP: f64 = 14.0;

/// One completion of the run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Call {
    /// Which LLM of the run (`agent`, `condenser`...).
    pub usage: String,
    pub response_id: String,
    pub prompt: u64,
    pub completion: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    /// USD, when priced.
    pub cost: Option<f64>,
    /// Seconds the answer took, when known.
    pub latency: Option<f64>,
}

/// A bar of the chart: the call's uncached input, cache hits and output, stacked.
#[derive(Debug, Clone, Serialize)]
pub struct Bar {
    pub x: f64,
    pub w: f64,
    /// y and height of each stacked part.
    pub cached: (f64, f64),
    pub uncached: (f64, f64),
    pub output: (f64, f64),
    pub label: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    pub width: f64,
    pub height: f64,
    pub bars: Vec<Bar>,
    /// `x,y x,y ...` of the cumulative cost (empty when a call was not priced).
    pub cost_line: String,
    pub max_tokens: u64,
    pub total_cost: Option<f64>,
    /// `$0.1234` when every call was priced.
    pub cost_label: Option<String>,
    pub calls: usize,
}

/// The calls recorded in `stats` (a `ConversationStats` value), ordered by where their
/// response appears in `response_order` (the trajectory's `llm_response_id`s); calls not found
/// there keep their recorded order at the end.
pub fn calls(stats: &Value, response_order: &[String]) -> Vec<Call> {
    let mut calls: Vec<(usize, usize, Call)> = Vec::new();
    let Some(metrics) = stats["usage_to_metrics"].as_object() else {
        return Vec::new();
    };
    for (usage, m) in metrics {
        let usages = m["token_usages"].as_array().map_or(&[][..], |v| v);
        let costs = m["costs"].as_array().map_or(&[][..], |v| v);
        // Costs carry no response id: they line up with the calls only when every call has one.
        let priced = costs.len() == usages.len();
        let latencies = m["response_latencies"].as_array().map_or(&[][..], |v| v);
        for (i, u) in usages.iter().enumerate() {
            let response_id = u["response_id"].as_str().unwrap_or_default().to_string();
            let latency = latencies
                .iter()
                .find(|l| l["response_id"] == u["response_id"])
                .and_then(|l| l["latency"].as_f64());
            let order = response_order
                .iter()
                .position(|r| *r == response_id && !r.is_empty())
                .unwrap_or(usize::MAX);
            let n = |k: &str| u[k].as_u64().unwrap_or(0);
            calls.push((
                order,
                calls.len(),
                Call {
                    usage: usage.clone(),
                    response_id,
                    prompt: n("prompt_tokens"),
                    completion: n("completion_tokens"),
                    cache_read: n("cache_read_tokens"),
                    cache_write: n("cache_write_tokens"),
                    cost: priced.then(|| costs[i]["cost"].as_f64()).flatten(),
                    latency,
                },
            ));
        }
    }
    calls.sort_by_key(|(order, seq, _)| (*order, *seq));
    calls.into_iter().map(|(_, _, c)| c).collect()
}

/// The chart of `calls`; `None` without any.
pub fn chart(calls: &[Call]) -> Option<Chart> {
    if calls.is_empty() {
        return None;
    }
    let max_tokens = calls
        .iter()
        .map(|c| c.prompt + c.completion)
        .max()
        .unwrap_or(0)
        .max(1);
    let scale = (HEIGHT - TOP) / max_tokens as f64;
    let step = WIDTH / calls.len() as f64;
    let w = (step * 0.8).max(0.5);
    let all_priced = calls.iter().all(|c| c.cost.is_some());
    let total_cost = all_priced.then(|| calls.iter().filter_map(|c| c.cost).sum::<f64>());
    let mut bars = Vec::with_capacity(calls.len());
    let mut points = Vec::new();
    let mut spent = 0.0;
    for (i, c) in calls.iter().enumerate() {
        let x = round(i as f64 * step + (step - w) / 2.0);
        let cached = c.cache_read.min(c.prompt) as f64 * scale;
        let uncached = c.prompt.saturating_sub(c.cache_read) as f64 * scale;
        let output = c.completion as f64 * scale;
        let mut y = HEIGHT;
        let mut part = |h: f64| {
            y -= h;
            (round(y), round(h))
        };
        let cached = part(cached);
        let uncached = part(uncached);
        let output = part(output);
        let ratio = if c.prompt > 0 {
            format!(
                ", {:.0}% cached",
                c.cache_read as f64 * 100.0 / c.prompt as f64
            )
        } else {
            String::new()
        };
        let cost = c.cost.map_or(String::new(), |v| format!(", ${v:.4}"));
        let latency = c.latency.map_or(String::new(), |s| format!(", {s:.2} s"));
        bars.push(Bar {
            x,
            w: round(w),
            cached,
            uncached,
            output,
            label: format!(
                "call {} ({}): {} in{ratio}, {} out{cost}{latency}",
                i + 1,
                c.usage,
                c.prompt,
                c.completion
            ),
        });
        if let (Some(cost), Some(total)) = (c.cost, total_cost) {
            spent += cost;
            let y = if total > 0.0 {
                HEIGHT - spent / total * (HEIGHT - TOP)
            } else {
                HEIGHT
            };
            points.push(format!("{},{}", round(x + w / 2.0), round(y)));
        }
    }
    Some(Chart {
        width: WIDTH,
        height: HEIGHT,
        bars,
        cost_line: points.join(" "),
        max_tokens,
        total_cost,
        cost_label: total_cost.map(|c| format!("${c:.4}")),
        calls: calls.len(),
    })
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stats() -> Value {
        json!({"usage_to_metrics": {
            "agent": {"model_name": "m", "accumulated_cost": 0.3,
                "token_usages": [
                    {"prompt_tokens": 100, "completion_tokens": 10, "cache_read_tokens": 0, "response_id": "r1"},
                    {"prompt_tokens": 200, "completion_tokens": 20, "cache_read_tokens": 150, "response_id": "r3"}],
                "costs": [{"model": "m", "cost": 0.1, "timestamp": 1.0}, {"model": "m", "cost": 0.2, "timestamp": 2.0}],
                "response_latencies": [{"model": "m", "latency": 1.5, "response_id": "r3"}]},
            "condenser": {"model_name": "m",
                "token_usages": [{"prompt_tokens": 50, "completion_tokens": 5, "response_id": "r2"}],
                "costs": []}}})
    }

    #[test]
    fn calls_follow_the_trajectory_and_costs_line_up_only_when_all_priced() {
        let order = ["r1".to_string(), "r2".into(), "r3".into()];
        let calls = calls(&stats(), &order);
        let ids: Vec<&str> = calls.iter().map(|c| c.response_id.as_str()).collect();
        assert_eq!(ids, ["r1", "r2", "r3"]);
        assert_eq!(calls[1].usage, "condenser");
        assert_eq!(calls[1].cost, None);
        assert_eq!(calls[2].cost, Some(0.2));
        assert_eq!(calls[2].latency, Some(1.5));
        let chart = chart(&calls).unwrap();
        // One unpriced call: no total, no cost line.
        assert_eq!((chart.total_cost, chart.cost_line.as_str()), (None, ""));
        assert_eq!(chart.max_tokens, 220);
        // The tallest bar fills the drawing height; cache hits are the bottom part.
        let tall = &chart.bars[2];
        assert_eq!(tall.output.0, TOP);
        assert!((tall.cached.1 - 150.0 * (HEIGHT - TOP) / 220.0).abs() < 0.1);
        assert!(tall.label.contains("75% cached"), "{}", tall.label);
    }

    #[test]
    fn priced_runs_draw_the_cumulative_cost() {
        let mut s = stats();
        s["usage_to_metrics"]
            .as_object_mut()
            .unwrap()
            .remove("condenser");
        let drawn = chart(&calls(&s, &[])).unwrap();
        assert_eq!(drawn.cost_line.split(' ').count(), 2);
        assert!(drawn.cost_line.ends_with(&format!(",{TOP}")));
        assert!((drawn.total_cost.unwrap() - 0.3).abs() < 1e-9);
        assert!(chart(&[]).is_none());
    }
}
