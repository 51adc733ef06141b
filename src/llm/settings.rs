//! The caching, price and reasoning settings of an [`LlmConfig`] as fields of OpenHands' `LLM`
//! JSON (`agent.llm` of a start-conversation request), both ways, so a sandbox's agent-server
//! calls the model exactly as a local run would.
//!
//! OpenHands' own names where it has the setting (`caching_prompt`, `input_cost_per_token`,
//! `output_cost_per_token`, `reasoning_effort`, `extended_thinking_budget`, `api_mode` for
//! chat/responses); LiteLLM's for the cache prices (`cache_read_input_token_cost`,
//! `cache_creation_input_token_cost`); `prompt_cache_ttl` and `llm_api: "messages"` (OpenHands'
//! `api_mode` has no such value) otherwise. OpenHands' `LLM`
//! ignores fields it does not know, so the request stays valid for its agent-server. Only
//! settings that differ from "unset" are sent: OpenHands' own defaults (reasoning effort
//! `high`, a 200k thinking budget) are not imposed on a sandcrab server by their absence.

use serde_json::{json, Map, Value};

use super::{CacheTtl, LlmApi, LlmConfig, ReasoningEffort};

/// The fields to add to `agent.llm` for `config`.
pub fn to_openhands(config: &LlmConfig) -> Map<String, Value> {
    let mut llm = Map::new();
    llm.insert("caching_prompt".into(), json!(config.prompt_caching));
    if config.prompt_cache_ttl == CacheTtl::OneHour {
        llm.insert("prompt_cache_ttl".into(), json!("1h"));
    }
    let prices = [
        ("input_cost_per_token", config.input_cost_per_token),
        ("output_cost_per_token", config.output_cost_per_token),
        (
            "cache_read_input_token_cost",
            config.cache_read_cost_per_token,
        ),
        (
            "cache_creation_input_token_cost",
            config.cache_write_cost_per_token,
        ),
    ];
    for (name, price) in prices {
        if let Some(price) = price {
            llm.insert(name.into(), json!(price));
        }
    }
    if let Some(effort) = config.reasoning_effort {
        llm.insert("reasoning_effort".into(), json!(effort.as_str()));
    }
    if let Some(budget) = config.thinking_budget_tokens {
        llm.insert("extended_thinking_budget".into(), json!(budget));
    }
    match config.api {
        Some(LlmApi::Chat) => _ = llm.insert("api_mode".into(), json!("chat")),
        Some(LlmApi::Responses) => _ = llm.insert("api_mode".into(), json!("responses")),
        Some(LlmApi::Messages) => _ = llm.insert("llm_api".into(), json!("messages")),
        None => {}
    }
    llm
}

/// Reads the fields [`to_openhands`] writes from an `agent.llm` object into `config`; absent
/// or unreadable fields leave the config as it is.
pub fn apply_openhands(llm: &Value, config: &mut LlmConfig) {
    if let Some(on) = llm["caching_prompt"].as_bool() {
        config.prompt_caching = on;
    }
    if llm["prompt_cache_ttl"] == "1h" {
        config.prompt_cache_ttl = CacheTtl::OneHour;
    }
    let price = |name: &str| llm[name].as_f64().filter(|p| p.is_finite() && *p >= 0.0);
    config.input_cost_per_token = price("input_cost_per_token");
    config.output_cost_per_token = price("output_cost_per_token");
    config.cache_read_cost_per_token = price("cache_read_input_token_cost");
    config.cache_write_cost_per_token = price("cache_creation_input_token_cost");
    config.reasoning_effort = match llm["reasoning_effort"].as_str() {
        Some("low") => Some(ReasoningEffort::Low),
        Some("medium") => Some(ReasoningEffort::Medium),
        Some("high") => Some(ReasoningEffort::High),
        _ => None,
    };
    config.thinking_budget_tokens = llm["extended_thinking_budget"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| *n >= 1024);
    config.api = match (llm["api_mode"].as_str(), llm["llm_api"].as_str()) {
        (_, Some("messages")) => Some(LlmApi::Messages),
        (Some("chat"), _) => Some(LlmApi::Chat),
        (Some("responses"), _) => Some(LlmApi::Responses),
        _ => None,
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_survives_the_round_trip() {
        let mut config = LlmConfig::new("anthropic/claude-sonnet-4-5");
        config.prompt_caching = false;
        config.prompt_cache_ttl = CacheTtl::OneHour;
        config.input_cost_per_token = Some(3e-6);
        config.output_cost_per_token = Some(1.5e-5);
        config.cache_read_cost_per_token = Some(3e-7);
        config.cache_write_cost_per_token = Some(6e-6);
        config.reasoning_effort = Some(ReasoningEffort::Medium);
        config.thinking_budget_tokens = Some(4096);
        config.api = Some(LlmApi::Messages);
        let llm = Value::Object(to_openhands(&config));
        assert_eq!(llm["caching_prompt"], false);
        assert_eq!(llm["extended_thinking_budget"], 4096);
        let mut back = LlmConfig::new("anthropic/claude-sonnet-4-5");
        apply_openhands(&llm, &mut back);
        assert_eq!(format!("{back:?}"), format!("{config:?}"));
    }

    #[test]
    fn a_plain_config_sends_only_the_caching_switch() {
        let llm = to_openhands(&LlmConfig::new("openai/gpt-4o"));
        assert_eq!(Value::Object(llm), json!({"caching_prompt": true}));
    }
}
