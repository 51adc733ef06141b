//! LLM clients: OpenAI-compatible chat completions, the OpenAI Responses API, Anthropic
//! Messages and a scripted model, chosen from the model string (with an `--llm-api` override),
//! with retries, prompt caching, reasoning settings and token/cost metrics.

pub mod anthropic;
pub mod budget;
pub mod context_window;
pub mod openai;
pub mod prices;
pub mod relay;
pub mod responses;
pub mod retry;
pub mod scripted;
pub mod settings;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use crate::protocol::llm::{
    ChatMessage, ChatRequest, ChatResponse, Role, ToolCall, ToolSpec, Usage,
};

/// A chat model that can call tools.
#[async_trait]
pub trait LlmClient: Send + Sync {
    /// The model name as reported in metrics (e.g. `openai/gpt-4o`, `scripted:fix.yaml`).
    fn model_name(&self) -> &str;

    /// One completion. Retries (429, 5xx, timeouts) happen inside; an `Err` is final.
    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError>;
}

/// Why a completion failed for good.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The provider answered with an HTTP error that retrying will not fix (400, 401, 404...),
    /// or a retryable one after the retry budget was spent.
    #[error("the model provider answered HTTP {status} after {attempts} attempt(s): {body}")]
    Http {
        status: u16,
        body: String,
        attempts: u32,
    },
    /// No answer: connection refused, reset, DNS, or a timeout, after every retry.
    #[error("could not reach the model provider after {attempts} attempt(s): {message}")]
    Transport { message: String, attempts: u32 },
    /// The provider answered 200 with a body we cannot read.
    #[error("the model provider's answer could not be read: {0}")]
    Decode(String),
    /// The scripted model has no step for this request.
    #[error("scripted model: {0}")]
    Script(String),
}

/// How to reach a model; built by `RunConfig`.
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// `anthropic/NAME`, `openai/NAME`, `openrouter/NAME`, `ollama/NAME`, `scripted:FILE.yaml`,
    /// or any name when `base_url` is set (vLLM, LiteLLM proxies...).
    pub model: String,
    pub base_url: Option<String>,
    pub api_key: Option<String>,
    /// Retries after the first attempt, on 429, 5xx, timeouts and connection errors.
    pub num_retries: u32,
    /// First backoff; doubles each retry, capped at `retry_max_wait`, with jitter.
    pub retry_min_wait: Duration,
    pub retry_max_wait: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
    pub max_output_tokens: Option<u32>,
    pub temperature: Option<f32>,
    /// USD per input / output token, for cost when the provider does not report it.
    pub input_cost_per_token: Option<f64>,
    pub output_cost_per_token: Option<f64>,
    /// USD per cache-read / cache-write input token, overriding the price table.
    pub cache_read_cost_per_token: Option<f64>,
    pub cache_write_cost_per_token: Option<f64>,
    /// Prompt caching: Anthropic `cache_control` breakpoints, OpenAI `prompt_cache_key`.
    pub prompt_caching: bool,
    /// Lifetime of Anthropic cache entries.
    pub prompt_cache_ttl: CacheTtl,
    /// `reasoning_effort` (chat) / `reasoning.effort` (Responses) for OpenAI reasoning models.
    pub reasoning_effort: Option<ReasoningEffort>,
    /// Anthropic extended thinking with this many budget tokens (`None`: off).
    pub thinking_budget_tokens: Option<u32>,
    /// Which wire API to speak; `None` picks it from the model string.
    pub api: Option<LlmApi>,
}

/// How long an Anthropic prompt-cache entry lives (`cache_control.ttl`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CacheTtl {
    /// 5 minutes, refreshed on every hit (cache writes at 1.25× the input price).
    #[default]
    #[value(name = "5m")]
    FiveMinutes,
    /// 1 hour (cache writes at 2× the input price): for runs with long pauses between calls.
    #[value(name = "1h")]
    OneHour,
}

/// OpenAI's reasoning effort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReasoningEffort {
    Low,
    Medium,
    High,
}

impl ReasoningEffort {
    pub fn as_str(self) -> &'static str {
        match self {
            ReasoningEffort::Low => "low",
            ReasoningEffort::Medium => "medium",
            ReasoningEffort::High => "high",
        }
    }
}

/// The wire API of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LlmApi {
    /// OpenAI-compatible `POST /chat/completions`.
    Chat,
    /// OpenAI `POST /responses` (GPT-5 family, o-series: reasoning carried between calls).
    Responses,
    /// Anthropic `POST /v1/messages`.
    Messages,
}

impl LlmConfig {
    /// A config with the defaults of a real run for `model`.
    pub fn new(model: impl Into<String>) -> Self {
        LlmConfig {
            model: model.into(),
            base_url: None,
            api_key: None,
            num_retries: 5,
            retry_min_wait: Duration::from_secs(2),
            retry_max_wait: Duration::from_secs(60),
            timeout: Duration::from_secs(300),
            max_output_tokens: None,
            temperature: None,
            input_cost_per_token: None,
            output_cost_per_token: None,
            cache_read_cost_per_token: None,
            cache_write_cost_per_token: None,
            prompt_caching: true,
            prompt_cache_ttl: CacheTtl::FiveMinutes,
            reasoning_effort: None,
            thinking_budget_tokens: None,
            api: None,
        }
    }

    /// The prices a completion is charged at: the configured ones, else the price table's
    /// for this model (see [`prices`]).
    pub fn prices(&self) -> prices::Prices {
        let mine = prices::Prices {
            input: self.input_cost_per_token,
            output: self.output_cost_per_token,
            cache_read: self.cache_read_cost_per_token,
            cache_write: self.cache_write_cost_per_token,
        };
        let one_hour = self.prompt_cache_ttl == CacheTtl::OneHour;
        mine.or(prices::list_prices(&self.model, one_hour))
    }
}

/// Why a model could not be set up (bad input: the run exits 2).
#[derive(Debug, thiserror::Error)]
pub enum LlmSetupError {
    #[error("unknown model '{model}': use anthropic/NAME, openai/NAME, openrouter/NAME, ollama/NAME, scripted:FILE.yaml, or pass --llm-base-url for an OpenAI-compatible server")]
    UnknownModel { model: String },
    #[error("model '{model}' needs an API key: set LLM_API_KEY or pass --llm-api-key")]
    MissingApiKey { model: String },
    #[error("scripted model {path}: {reason}")]
    Script { path: String, reason: String },
    #[error("could not build the HTTP client: {0}")]
    Http(String),
}

/// Builds the client the model string names.
pub fn build_client(config: &LlmConfig) -> Result<Arc<dyn LlmClient>, LlmSetupError> {
    build_client_for_workspace(config, None)
}

/// Builds the client the model string names; a scripted model replaces `${WORKSPACE}` in its
/// arguments with `workspace` (see [`scripted`]). HTTP models ignore `workspace`.
pub fn build_client_for_workspace(
    config: &LlmConfig,
    workspace: Option<&Path>,
) -> Result<Arc<dyn LlmClient>, LlmSetupError> {
    Ok(match ModelSpec::parse(config)? {
        ModelSpec::Scripted { path } => Arc::new(load_script(&config.model, &path, workspace)?),
        ModelSpec::Anthropic { model, base_url } => {
            Arc::new(anthropic::AnthropicClient::new(config, &model, &base_url)?)
        }
        ModelSpec::OpenAi { model, base_url } => {
            Arc::new(openai::OpenAiClient::new(config, &model, &base_url)?)
        }
        ModelSpec::Responses { model, base_url } => {
            Arc::new(responses::ResponsesClient::new(config, &model, &base_url)?)
        }
    })
}

fn load_script(
    name: &str,
    path: &str,
    workspace: Option<&Path>,
) -> Result<scripted::ScriptedModel, LlmSetupError> {
    let script_error = |reason: String| LlmSetupError::Script {
        path: path.to_string(),
        reason,
    };
    let yaml = std::fs::read_to_string(path)
        .map_err(|e| script_error(format!("could not read the file: {e}")))?;
    scripted::ScriptedModel::from_yaml(name, &yaml, workspace.map(Path::to_path_buf))
        .map_err(script_error)
}

/// Where a model's requests go: a script file, or an HTTP server speaking Anthropic Messages or
/// OpenAI chat completions (what a relay in front of it must forward to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Scripted { path: String },
    Http { anthropic: bool, base_url: String },
}

/// The endpoint `config` names, with the provider's default server filled in.
pub fn endpoint(config: &LlmConfig) -> Result<Endpoint, LlmSetupError> {
    Ok(match ModelSpec::parse(config)? {
        ModelSpec::Scripted { path } => Endpoint::Scripted { path },
        ModelSpec::Anthropic { base_url, .. } => Endpoint::Http {
            anthropic: true,
            base_url,
        },
        ModelSpec::OpenAi { base_url, .. } | ModelSpec::Responses { base_url, .. } => {
            Endpoint::Http {
                anthropic: false,
                base_url,
            }
        }
    })
}

/// What a model string names: which client, which model on the wire, which server.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ModelSpec {
    Scripted { path: String },
    Anthropic { model: String, base_url: String },
    OpenAi { model: String, base_url: String },
    Responses { model: String, base_url: String },
}

/// A provider prefix: its default server and whether that server needs a key.
struct Provider {
    prefix: &'static str,
    anthropic: bool,
    default_base_url: &'static str,
    needs_key: bool,
}

const PROVIDERS: [Provider; 4] = [
    Provider {
        prefix: "anthropic/",
        anthropic: true,
        default_base_url: "https://api.anthropic.com",
        needs_key: true,
    },
    Provider {
        prefix: "openai/",
        anthropic: false,
        default_base_url: "https://api.openai.com/v1",
        needs_key: true,
    },
    Provider {
        prefix: "openrouter/",
        anthropic: false,
        default_base_url: "https://openrouter.ai/api/v1",
        needs_key: true,
    },
    Provider {
        prefix: "ollama/",
        anthropic: false,
        default_base_url: "http://localhost:11434/v1",
        needs_key: false,
    },
];

impl ModelSpec {
    /// Reads `config.model`. An empty `base_url` or `api_key` counts as unset, and trailing
    /// slashes of `base_url` are dropped.
    fn parse(config: &LlmConfig) -> Result<ModelSpec, LlmSetupError> {
        let model = config.model.trim();
        if let Some(path) = model.strip_prefix("scripted:") {
            return Ok(ModelSpec::Scripted {
                path: path.to_string(),
            });
        }
        let base_url = non_empty(&config.base_url).map(|url| url.trim_end_matches('/'));
        let has_key = non_empty(&config.api_key).is_some();
        let unknown = || LlmSetupError::UnknownModel {
            model: config.model.clone(),
        };
        let Some((provider, name)) = split_provider(model) else {
            let base_url = base_url.ok_or_else(unknown)?;
            let api = config.api.unwrap_or(LlmApi::Chat);
            return Ok(ModelSpec::http(api, model, base_url));
        };
        if name.is_empty() {
            return Err(unknown());
        }
        if provider.needs_key && !has_key && base_url.is_none() {
            return Err(LlmSetupError::MissingApiKey {
                model: config.model.clone(),
            });
        }
        let base_url = base_url.unwrap_or(provider.default_base_url);
        let api = config.api.unwrap_or(match provider.anthropic {
            true => LlmApi::Messages,
            false if provider.prefix == "openai/" && needs_responses_api(name) => LlmApi::Responses,
            false => LlmApi::Chat,
        });
        Ok(ModelSpec::http(api, name, base_url))
    }

    fn http(api: LlmApi, model: &str, base_url: &str) -> ModelSpec {
        let (model, base_url) = (model.to_string(), base_url.to_string());
        match api {
            LlmApi::Messages => ModelSpec::Anthropic { model, base_url },
            LlmApi::Chat => ModelSpec::OpenAi { model, base_url },
            LlmApi::Responses => ModelSpec::Responses { model, base_url },
        }
    }
}

/// OpenAI models that keep their reasoning between calls only through the Responses API: the
/// GPT-5 family, the o-series and the codex models (OpenHands' `api_mode` auto rule).
pub fn needs_responses_api(model: &str) -> bool {
    let name = model.rsplit('/').next().unwrap_or(model);
    name.starts_with("gpt-5")
        || name.contains("codex")
        || ["o1", "o3", "o4"]
            .iter()
            .any(|o| name == *o || name.starts_with(&format!("{o}-")))
}

/// Whether `config` talks to OpenAI itself (or OpenRouter), which take `prompt_cache_key`;
/// other OpenAI-compatible servers may reject unknown fields.
pub fn takes_prompt_cache_key(config: &LlmConfig) -> bool {
    let model = config.model.trim();
    model.starts_with("openai/") || model.starts_with("openrouter/")
}

/// The provider a model string starts with, and the model name after its prefix.
fn split_provider(model: &str) -> Option<(&'static Provider, &str)> {
    PROVIDERS
        .iter()
        .find_map(|p| model.strip_prefix(p.prefix).map(|name| (p, name)))
}

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(model: &str, base_url: Option<&str>, key: Option<&str>) -> ModelSpec {
        let mut config = LlmConfig::new(model);
        config.base_url = base_url.map(str::to_string);
        config.api_key = key.map(str::to_string);
        ModelSpec::parse(&config).unwrap()
    }

    fn spec_error(model: &str, base_url: Option<&str>, key: Option<&str>) -> LlmSetupError {
        let mut config = LlmConfig::new(model);
        config.base_url = base_url.map(str::to_string);
        config.api_key = key.map(str::to_string);
        ModelSpec::parse(&config).unwrap_err()
    }

    fn openai(model: &str, base_url: &str) -> ModelSpec {
        ModelSpec::OpenAi {
            model: model.into(),
            base_url: base_url.into(),
        }
    }

    #[test]
    fn provider_prefixes_pick_client_model_and_default_server() {
        let anthropic = ModelSpec::Anthropic {
            model: "claude-sonnet-4-5".into(),
            base_url: "https://api.anthropic.com".into(),
        };
        assert_eq!(
            spec("anthropic/claude-sonnet-4-5", None, Some("k")),
            anthropic
        );
        let gpt = openai("gpt-4o", "https://api.openai.com/v1");
        assert_eq!(spec("openai/gpt-4o", None, Some("k")), gpt);
        let router = openai("meta-llama/llama-3-70b", "https://openrouter.ai/api/v1");
        assert_eq!(
            spec("openrouter/meta-llama/llama-3-70b", None, Some("k")),
            router
        );
        let local = openai("qwen2.5-coder", "http://localhost:11434/v1");
        assert_eq!(spec("ollama/qwen2.5-coder", None, None), local);
    }

    #[test]
    fn base_url_overrides_and_loses_trailing_slashes() {
        let vllm = openai("Qwen/Qwen3-8B", "http://gpu:8000/v1");
        assert_eq!(
            spec("Qwen/Qwen3-8B", Some("http://gpu:8000/v1//"), None),
            vllm
        );
        let proxy = openai("gpt-4o", "http://proxy:4000");
        assert_eq!(
            spec("openai/gpt-4o", Some("http://proxy:4000/"), None),
            proxy
        );
    }

    #[test]
    fn reasoning_models_pick_the_responses_api_unless_overridden() {
        let responses = |m: &str| ModelSpec::Responses {
            model: m.into(),
            base_url: "https://api.openai.com/v1".into(),
        };
        for name in ["gpt-5", "gpt-5.1-codex-mini", "o3", "o4-mini"] {
            let model = format!("openai/{name}");
            assert_eq!(spec(&model, None, Some("k")), responses(name), "{name}");
        }
        for name in ["gpt-4o", "gpt-4.1", "omni"] {
            let model = format!("openai/{name}");
            assert!(matches!(
                spec(&model, None, Some("k")),
                ModelSpec::OpenAi { .. }
            ));
        }
        let mut config = LlmConfig::new("openai/gpt-5");
        config.api_key = Some("k".into());
        config.api = Some(LlmApi::Chat);
        assert!(matches!(
            ModelSpec::parse(&config),
            Ok(ModelSpec::OpenAi { .. })
        ));
        config.model = "openai/gpt-4o".into();
        config.api = Some(LlmApi::Responses);
        assert!(matches!(
            ModelSpec::parse(&config),
            Ok(ModelSpec::Responses { .. })
        ));
    }

    #[test]
    fn scripted_paths_are_kept_verbatim() {
        let scripted = ModelSpec::Scripted {
            path: "demo/fix.yaml".into(),
        };
        assert_eq!(spec("scripted:demo/fix.yaml", None, None), scripted);
    }

    #[test]
    fn unknown_models_and_missing_keys_are_errors() {
        let unknown = spec_error("gpt-4o", None, Some("k"));
        assert!(matches!(unknown, LlmSetupError::UnknownModel { model } if model == "gpt-4o"));
        let empty_base = spec_error("gpt-4o", Some(" "), None);
        assert!(matches!(empty_base, LlmSetupError::UnknownModel { .. }));
        let no_name = spec_error("openai/", None, Some("k"));
        assert!(matches!(no_name, LlmSetupError::UnknownModel { .. }));
        for model in ["anthropic/claude", "openai/gpt-4o", "openrouter/x/y"] {
            let error = spec_error(model, None, Some(""));
            assert!(
                matches!(error, LlmSetupError::MissingApiKey { .. }),
                "{model}"
            );
        }
    }
}
