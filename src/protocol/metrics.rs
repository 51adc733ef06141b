//! Token and cost metrics, in OpenHands' `Metrics` / `ConversationStats` shapes, so a
//! `stats` state update reads the same from our agent-server as from theirs.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::llm::{ChatResponse, Usage};

/// USD per token for each kind of token; `None` when unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Prices {
    pub input: Option<f64>,
    pub output: Option<f64>,
    pub cache_read: Option<f64>,
    pub cache_write: Option<f64>,
}

impl Prices {
    /// These prices where set, `fallback`'s elsewhere.
    pub fn or(self, fallback: Prices) -> Prices {
        Prices {
            input: self.input.or(fallback.input),
            output: self.output.or(fallback.output),
            cache_read: self.cache_read.or(fallback.cache_read),
            cache_write: self.cache_write.or(fallback.cache_write),
        }
    }

    /// The USD cost of `usage`, or `None` without an input and an output price.
    pub fn cost(&self, usage: &Usage) -> Option<f64> {
        let input = self.input?;
        let output = self.output?;
        let read = usage.cache_read_tokens;
        let write = usage.cache_write_tokens;
        let uncached = usage.prompt_tokens.saturating_sub(read + write);
        Some(
            uncached as f64 * input
                + read as f64 * self.cache_read.unwrap_or(input)
                + write as f64 * self.cache_write.unwrap_or(input)
                + usage.completion_tokens as f64 * output,
        )
    }
}

/// OpenHands' `TokenUsage`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TokenUsage {
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub cache_read_tokens: u64,
    #[serde(default)]
    pub cache_write_tokens: u64,
    #[serde(default)]
    pub reasoning_tokens: u64,
    #[serde(default)]
    pub context_window: u64,
    #[serde(default)]
    pub per_turn_token: u64,
    #[serde(default)]
    pub response_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub model: String,
    pub cost: f64,
    pub timestamp: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseLatency {
    pub model: String,
    pub latency: f64,
    pub response_id: String,
}

/// OpenHands' `Metrics`: totals plus one record per completion.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub model_name: String,
    pub accumulated_cost: f64,
    #[serde(default)]
    pub max_budget_per_task: Option<f64>,
    pub accumulated_token_usage: TokenUsage,
    #[serde(default)]
    pub costs: Vec<Cost>,
    #[serde(default)]
    pub response_latencies: Vec<ResponseLatency>,
    #[serde(default)]
    pub token_usages: Vec<TokenUsage>,
}

impl Metrics {
    pub fn new(model_name: &str) -> Self {
        Metrics {
            model_name: model_name.into(),
            accumulated_token_usage: TokenUsage {
                model: model_name.into(),
                ..TokenUsage::default()
            },
            ..Metrics::default()
        }
    }

    /// Adds one completion's usage, cost and latency.
    pub fn record(&mut self, response: &ChatResponse, latency: Duration, prices: Prices) {
        let turn = self.token_usage(&response.usage, &response.id);
        add_usage(&mut self.accumulated_token_usage, &turn);
        self.token_usages.push(turn);
        let cost = response.cost.or_else(|| prices.cost(&response.usage));
        if let Some(cost) = cost {
            self.accumulated_cost += cost;
            self.costs.push(Cost {
                model: self.model_name.clone(),
                cost,
                timestamp: unix_now(),
            });
        }
        self.response_latencies.push(ResponseLatency {
            model: self.model_name.clone(),
            latency: latency.as_secs_f64(),
            response_id: response.id.clone(),
        });
    }

    fn token_usage(&self, usage: &Usage, response_id: &str) -> TokenUsage {
        TokenUsage {
            model: self.model_name.clone(),
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            cache_read_tokens: usage.cache_read_tokens,
            cache_write_tokens: usage.cache_write_tokens,
            reasoning_tokens: usage.reasoning_tokens,
            context_window: 0,
            per_turn_token: usage.prompt_tokens + usage.completion_tokens,
            response_id: response_id.into(),
        }
    }

    /// Total tokens, prompt plus completion.
    pub fn total_tokens(&self) -> u64 {
        let u = &self.accumulated_token_usage;
        u.prompt_tokens + u.completion_tokens
    }

    /// The accumulated cost, or `None` when some completion had no known price (no cost from
    /// the provider and no configured price): every priced completion has a `costs` record.
    pub fn known_cost(&self) -> Option<f64> {
        (self.costs.len() == self.token_usages.len()).then_some(self.accumulated_cost)
    }
}

fn add_usage(total: &mut TokenUsage, turn: &TokenUsage) {
    total.prompt_tokens += turn.prompt_tokens;
    total.completion_tokens += turn.completion_tokens;
    total.cache_read_tokens += turn.cache_read_tokens;
    total.cache_write_tokens += turn.cache_write_tokens;
    total.reasoning_tokens += turn.reasoning_tokens;
    total.per_turn_token = turn.per_turn_token;
    total.response_id = turn.response_id.clone();
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// OpenHands' `ConversationStats`: metrics per usage id (`agent` for the main model).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConversationStats {
    pub usage_to_metrics: BTreeMap<String, Metrics>,
}

impl ConversationStats {
    /// The metrics of the agent's own model.
    pub fn agent(&mut self, model_name: &str) -> &mut Metrics {
        self.usage_to_metrics
            .entry("agent".into())
            .or_insert_with(|| Metrics::new(model_name))
    }

    /// Records one completion of the model `model_name` under `usage_id` (`agent`,
    /// `condenser`...): every LLM call site goes through here, so the budget sees them all.
    pub fn record(
        &mut self,
        usage_id: &str,
        model_name: &str,
        response: &ChatResponse,
        latency: Duration,
        prices: Prices,
    ) {
        self.usage_to_metrics
            .entry(usage_id.into())
            .or_insert_with(|| Metrics::new(model_name))
            .record(response, latency, prices);
    }

    /// The USD spent so far over every usage id (completions of unknown price count 0),
    /// OpenHands' `get_combined_metrics().accumulated_cost`: what a budget is checked against.
    pub fn accumulated_cost(&self) -> f64 {
        self.usage_to_metrics
            .values()
            .map(|m| m.accumulated_cost)
            .fold(0.0, |total, cost| total + cost)
    }

    /// Cache-read tokens over every input token, over every usage id; `None` before any
    /// input was sent.
    pub fn cache_hit_ratio(&self) -> Option<f64> {
        let (read, prompt) = self.usage_to_metrics.values().fold((0, 0), |(r, p), m| {
            let u = &m.accumulated_token_usage;
            (r + u.cache_read_tokens, p + u.prompt_tokens)
        });
        (prompt > 0).then(|| read as f64 / prompt as f64)
    }

    /// Seconds spent waiting for completions, over every usage id.
    pub fn total_latency(&self) -> f64 {
        self.usage_to_metrics
            .values()
            .flat_map(|m| m.response_latencies.iter().map(|l| l.latency))
            .sum()
    }

    /// Totals over every usage id: (prompt+completion tokens, cost if known).
    pub fn totals(&self) -> (u64, Option<f64>) {
        let tokens = self
            .usage_to_metrics
            .values()
            .map(Metrics::total_tokens)
            .sum();
        let cost = self
            .usage_to_metrics
            .values()
            .map(Metrics::known_cost)
            .try_fold(0.0, |total, cost| cost.map(|c| total + c));
        (tokens, cost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(prompt: u64, completion: u64, cost: Option<f64>) -> ChatResponse {
        ChatResponse {
            id: "r".into(),
            usage: Usage {
                prompt_tokens: prompt,
                completion_tokens: completion,
                ..Usage::default()
            },
            cost,
            ..ChatResponse::default()
        }
    }

    #[test]
    fn provider_cost_wins_over_prices() {
        let mut m = Metrics::new("m");
        let prices = Prices {
            input: Some(1.0),
            output: Some(1.0),
            ..Prices::default()
        };
        m.record(&response(10, 5, Some(0.5)), Duration::ZERO, prices);
        assert_eq!(m.known_cost(), Some(0.5));
        assert_eq!(m.total_tokens(), 15);
    }

    #[test]
    fn prices_compute_cost_and_missing_prices_make_it_unknown() {
        let mut m = Metrics::new("m");
        let prices = Prices {
            input: Some(0.001),
            output: Some(0.002),
            ..Prices::default()
        };
        m.record(&response(1000, 500, None), Duration::ZERO, prices);
        assert!((m.accumulated_cost - 2.0).abs() < 1e-9);
        m.record(&response(1, 1, None), Duration::ZERO, Prices::default());
        assert_eq!(m.known_cost(), None);
        assert_eq!(m.token_usages.len(), 2);
    }
}
