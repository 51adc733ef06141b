//! Flags of `sandcrab run` that tune the model calls: prompt caching, cache prices, the USD
//! budget, reasoning (OpenAI effort, Anthropic thinking) and the wire API.

use clap::Args;

use crate::error::BadInput;
use crate::llm::{CacheTtl, LlmApi, LlmConfig, ReasoningEffort};

/// Caching, prices, budget and reasoning flags.
#[derive(Debug, Clone, Args)]
pub struct LlmTuningArgs {
    /// Turn off prompt caching (Anthropic cache_control breakpoints, OpenAI prompt_cache_key).
    #[arg(long, env = "SANDCRAB_NO_PROMPT_CACHE")]
    pub no_prompt_cache: bool,

    /// Lifetime of Anthropic prompt-cache entries: 5m, or 1h (writes cost 2× input instead of
    /// 1.25×; worth it when calls are minutes apart).
    #[arg(
        long,
        value_enum,
        default_value = "5m",
        env = "SANDCRAB_PROMPT_CACHE_TTL"
    )]
    pub prompt_cache_ttl: CacheTtl,

    /// USD per million cache-read input tokens [default: the price table's for the model]
    #[arg(long, env = "SANDCRAB_CACHE_READ_COST_PER_MTOK")]
    pub cache_read_cost_per_mtok: Option<f64>,

    /// USD per million cache-write input tokens [default: the price table's for the model]
    #[arg(long, env = "SANDCRAB_CACHE_WRITE_COST_PER_MTOK")]
    pub cache_write_cost_per_mtok: Option<f64>,

    /// Stop the run once its model calls cost this many USD (the agent is told to wrap up at
    /// 80%); the partial work is still published. Exit code 3.
    #[arg(long, env = "SANDCRAB_MAX_BUDGET_USD")]
    pub max_budget_usd: Option<f64>,

    /// Reasoning effort of OpenAI reasoning models (GPT-5 family, o-series).
    #[arg(long, value_enum, env = "SANDCRAB_REASONING_EFFORT")]
    pub reasoning_effort: Option<ReasoningEffort>,

    /// Anthropic extended thinking with this many budget tokens (≥ 1024; 0 = off).
    #[arg(long, env = "SANDCRAB_THINKING_BUDGET_TOKENS")]
    pub thinking_budget_tokens: Option<u32>,

    /// The wire API: chat (OpenAI chat completions), responses (OpenAI Responses), messages
    /// (Anthropic) [default: from the model: anthropic/ → messages, openai/gpt-5*, o1/o3/o4,
    /// codex → responses, else chat]
    #[arg(long, value_enum, env = "SANDCRAB_LLM_API")]
    pub llm_api: Option<LlmApi>,
}

impl LlmTuningArgs {
    /// Puts the caching, price, reasoning and API settings into `llm`.
    pub fn apply(&self, llm: &mut LlmConfig) -> Result<(), BadInput> {
        llm.prompt_caching = !self.no_prompt_cache;
        llm.prompt_cache_ttl = self.prompt_cache_ttl;
        let price = |name: &str, v: Option<f64>| match v {
            Some(p) if !p.is_finite() || p < 0.0 => Err(BadInput::new(format!(
                "{name} is {p}: use a price in USD per million tokens ≥ 0"
            ))),
            other => Ok(other.map(|p| p / 1e6)),
        };
        llm.cache_read_cost_per_token =
            price("--cache-read-cost-per-mtok", self.cache_read_cost_per_mtok)?;
        llm.cache_write_cost_per_token = price(
            "--cache-write-cost-per-mtok",
            self.cache_write_cost_per_mtok,
        )?;
        llm.reasoning_effort = self.reasoning_effort;
        llm.thinking_budget_tokens = match self.thinking_budget_tokens {
            Some(0) | None => None,
            Some(n) if n < 1024 => {
                return Err(BadInput::new(format!(
                    "--thinking-budget-tokens is {n}: Anthropic needs at least 1024 (0 turns thinking off)"
                )))
            }
            Some(n) => Some(n),
        };
        llm.api = self.llm_api;
        Ok(())
    }

    /// The budget in USD, checked.
    pub fn max_budget_usd(&self) -> Result<Option<f64>, BadInput> {
        match self.max_budget_usd {
            Some(b) if !b.is_finite() || b <= 0.0 => Err(BadInput::new(format!(
                "--max-budget-usd is {b}: use an amount in USD > 0 (leave it unset for no budget)"
            ))),
            other => Ok(other),
        }
    }
}
