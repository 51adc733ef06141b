//! What a model's tokens cost: a table of list prices (input, output, cache read, cache write;
//! USD per million tokens) for the common Anthropic and OpenAI models, the user's overrides on
//! top, and the cost of one completion's usage.
//!
//! A completion's `prompt_tokens` counts every input token, cached or not (both clients
//! normalise to that), so its cost is
//! `uncached × input + cache_read × cache_read_price + cache_write × cache_write_price +
//! completion × output`. Anthropic bills a 5-minute cache write at 1.25× the input price and a
//! 1-hour one at 2×; OpenAI bills no cache write (its cache is automatic) and reads at a
//! discount. A price the table does not know and the user did not give falls back: cache
//! prices to the input price, and no input or output price at all means "cost unknown".

pub use crate::protocol::metrics::Prices;

/// One row of the table: a model-name prefix and its list prices in USD per million tokens
/// (cache write at the 5-minute TTL).
struct Row {
    prefix: &'static str,
    input: f64,
    output: f64,
    cache_read: f64,
    cache_write: f64,
}

const fn row(prefix: &'static str, input: f64, output: f64, read: f64, write: f64) -> Row {
    Row {
        prefix,
        input,
        output,
        cache_read: read,
        cache_write: write,
    }
}

/// List prices (USD per million tokens). The longest matching prefix wins, so
/// `gpt-4o-mini` is not priced as `gpt-4o`.
const TABLE: &[Row] = &[
    // Anthropic: cache read 0.1×, 5-minute cache write 1.25× the input price.
    row("claude-opus-4-5", 5.0, 25.0, 0.50, 6.25),
    row("claude-opus-4-6", 5.0, 25.0, 0.50, 6.25),
    row("claude-opus-4-7", 5.0, 25.0, 0.50, 6.25),
    row("claude-opus-4", 15.0, 75.0, 1.50, 18.75),
    row("claude-sonnet-4", 3.0, 15.0, 0.30, 3.75),
    row("claude-haiku-4", 1.0, 5.0, 0.10, 1.25),
    row("claude-3-7-sonnet", 3.0, 15.0, 0.30, 3.75),
    row("claude-3-5-sonnet", 3.0, 15.0, 0.30, 3.75),
    row("claude-3-5-haiku", 0.80, 4.0, 0.08, 1.0),
    row("claude-3-opus", 15.0, 75.0, 1.50, 18.75),
    row("claude-3-haiku", 0.25, 1.25, 0.03, 0.30),
    // OpenAI: automatic caching, no write surcharge.
    row("gpt-4o", 2.50, 10.0, 1.25, 2.50),
    row("gpt-4o-mini", 0.15, 0.60, 0.075, 0.15),
    row("gpt-4.1", 2.0, 8.0, 0.50, 2.0),
    row("gpt-4.1-mini", 0.40, 1.60, 0.10, 0.40),
    row("gpt-4.1-nano", 0.10, 0.40, 0.025, 0.10),
    row("gpt-5", 1.25, 10.0, 0.125, 1.25),
    row("gpt-5-mini", 0.25, 2.0, 0.025, 0.25),
    row("gpt-5-nano", 0.05, 0.40, 0.005, 0.05),
    row("gpt-5.1", 1.25, 10.0, 0.125, 1.25),
    row("gpt-5.1-codex-mini", 0.25, 2.0, 0.025, 0.25),
    row("o1", 15.0, 60.0, 7.50, 15.0),
    row("o1-mini", 1.10, 4.40, 0.55, 1.10),
    row("o3", 2.0, 8.0, 0.50, 2.0),
    row("o3-mini", 1.10, 4.40, 0.55, 1.10),
    row("o4-mini", 1.10, 4.40, 0.275, 1.10),
];

/// The list prices of `model` (a model string with or without its provider prefix:
/// `anthropic/claude-sonnet-4-5-20250929`, `openrouter/anthropic/claude-sonnet-4.5`,
/// `gpt-4o`), per token; all `None` for a model the table does not know. With
/// `one_hour_cache`, an Anthropic cache write costs 2× the input price instead of 1.25×.
pub fn list_prices(model: &str, one_hour_cache: bool) -> Prices {
    let name = model.rsplit('/').next().unwrap_or(model);
    let best = TABLE
        .iter()
        .filter(|r| name.starts_with(r.prefix) || name.replace('.', "-").starts_with(r.prefix))
        .max_by_key(|r| r.prefix.len());
    let Some(r) = best else {
        return Prices::default();
    };
    let anthropic = r.prefix.starts_with("claude");
    let write = if anthropic && one_hour_cache {
        r.input * 2.0
    } else {
        r.cache_write
    };
    let per_token = |per_mtok: f64| Some(per_mtok / 1e6);
    Prices {
        input: per_token(r.input),
        output: per_token(r.output),
        cache_read: per_token(r.cache_read),
        cache_write: per_token(write),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::llm::Usage;

    fn mtok(price: Option<f64>) -> f64 {
        (price.unwrap() * 1e6 * 1000.0).round() / 1000.0
    }

    #[test]
    fn the_longest_prefix_wins_and_names_are_normalised() {
        let mini = list_prices("openai/gpt-4o-mini-2024-07-18", false);
        assert_eq!(mtok(mini.input), 0.15);
        let full = list_prices("gpt-4o", false);
        assert_eq!(mtok(full.cache_read), 1.25);
        let sonnet = list_prices("openrouter/anthropic/claude-sonnet-4.5", false);
        assert_eq!((mtok(sonnet.input), mtok(sonnet.cache_write)), (3.0, 3.75));
        let opus = list_prices("anthropic/claude-opus-4-5-20251101", false);
        assert_eq!(mtok(opus.output), 25.0);
        assert_eq!(mtok(list_prices("claude-opus-4-1", false).input), 15.0);
        assert_eq!(list_prices("mistral/large", false), Prices::default());
    }

    #[test]
    fn a_one_hour_anthropic_cache_write_costs_twice_the_input() {
        let sonnet = list_prices("anthropic/claude-sonnet-4-5", true);
        assert_eq!(mtok(sonnet.cache_write), 6.0);
        assert_eq!(mtok(list_prices("openai/gpt-5", true).cache_write), 1.25);
    }

    #[test]
    fn cost_charges_each_kind_of_token_at_its_price() {
        let prices = list_prices("anthropic/claude-sonnet-4-5", false);
        let usage = Usage {
            prompt_tokens: 1_000_000 + 2_000_000 + 10_000_000,
            completion_tokens: 100_000,
            cache_read_tokens: 10_000_000,
            cache_write_tokens: 2_000_000,
            reasoning_tokens: 0,
        };
        // 1M uncached × 3 + 2M write × 3.75 + 10M read × 0.30 + 0.1M out × 15
        let cost = prices.cost(&usage).unwrap();
        assert!((cost - (3.0 + 7.5 + 3.0 + 1.5)).abs() < 1e-9, "{cost}");
        let flat = Prices {
            input: Some(1e-6),
            output: Some(2e-6),
            ..Prices::default()
        };
        assert!((flat.cost(&usage).unwrap() - (13.0 + 0.2)).abs() < 1e-9);
        assert_eq!(Prices::default().cost(&usage), None);
    }

    #[test]
    fn overrides_win_over_the_table() {
        let mine = Prices {
            input: Some(9e-6),
            ..Prices::default()
        };
        let merged = mine.or(list_prices("gpt-4o", false));
        assert_eq!((mtok(merged.input), mtok(merged.output)), (9.0, 10.0));
    }
}
