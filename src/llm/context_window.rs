//! Context windows: how many input tokens a model takes (a table of common models, overridable),
//! and whether a provider's error means the prompt did not fit (so the agent condenses and
//! retries instead of failing).
//!
//! The classifier knows Anthropic's `prompt is too long`, OpenAI's `context_length_exceeded`,
//! LiteLLM proxies' `ContextWindowExceededError` bodies, and the strings OpenHands' SDK 1.58
//! classifier looks for (`sdk/llm/exceptions/classifier.py`).

use super::LlmError;

/// The window assumed for a model the table does not know and no `--context-window` names.
pub const DEFAULT_CONTEXT_WINDOW: u64 = 128_000;

/// Input-token windows by model-name fragment; the first fragment found in the model name wins,
/// so more specific names come first.
const WINDOWS: &[(&str, u64)] = &[
    ("claude", 200_000),
    ("gpt-4.1", 1_047_576),
    ("gpt-5", 272_000),
    ("gpt-4o", 128_000),
    ("gpt-4-turbo", 128_000),
    ("gpt-4-32k", 32_768),
    ("gpt-4", 8_192),
    ("gpt-3.5", 16_385),
    ("o1-mini", 128_000),
    ("o1", 200_000),
    ("o3", 200_000),
    ("o4", 200_000),
    ("gemini", 1_048_576),
    ("llama-3-", 8_192),
    ("llama3:", 8_192),
    ("llama", 128_000),
    ("deepseek", 128_000),
    ("qwen", 32_768),
    ("mistral", 128_000),
    ("codestral", 256_000),
];

/// The input window of `model` (any provider prefix is ignored) from the table, if known.
pub fn known_window(model: &str) -> Option<u64> {
    let name = model
        .rsplit('/')
        .next()
        .unwrap_or(model)
        .to_ascii_lowercase();
    WINDOWS
        .iter()
        .find(|(fragment, _)| name.starts_with(fragment) || name.contains(&format!("-{fragment}")))
        .or_else(|| WINDOWS.iter().find(|(fragment, _)| name.contains(fragment)))
        .map(|(_, window)| *window)
}

/// The window to plan with: the override, else the table, else [`DEFAULT_CONTEXT_WINDOW`].
pub fn window_for(model: &str, override_tokens: Option<u64>) -> u64 {
    override_tokens
        .filter(|n| *n > 0)
        .or_else(|| known_window(model))
        .unwrap_or(DEFAULT_CONTEXT_WINDOW)
}

/// Lower-cased fragments that mark a context-window error in a provider's or proxy's body.
const MARKERS: &[&str] = &[
    // OpenHands 1.58's classifier.
    "contextwindowexceedederror",
    "prompt is too long",
    "input length and `max_tokens` exceed context limit",
    "please reduce the length of",
    "exceeds the available context size",
    "context length exceeded",
    "input exceeds the context window",
    "context window exceeds limit",
    // OpenAI's error code and message; other OpenAI-compatible servers.
    "context_length_exceeded",
    "maximum context length",
    "context_window_exceeded",
    "prompt is too long for the model",
];

/// Whether a failed completion means the prompt did not fit the model's window.
pub fn is_context_window_error(error: &LlmError) -> bool {
    match error {
        LlmError::Http { status, body, .. } => {
            matches!(status, 400 | 413 | 422 | 500) && mentions_window(body)
        }
        LlmError::Transport { .. } | LlmError::Decode(_) | LlmError::Script(_) => false,
    }
}

fn mentions_window(body: &str) -> bool {
    let lower = body.to_ascii_lowercase();
    MARKERS.iter().any(|m| lower.contains(m))
}

/// What an overflow error tells about the window: `(prompt tokens, limit)` when the body
/// states them (Anthropic: `prompt is too long: 61234 tokens > 60000 maximum`; OpenAI:
/// `maximum context length is 60000 tokens. However, your messages resulted in 61234 tokens`).
pub fn overflow_figures(error: &LlmError) -> (Option<u64>, Option<u64>) {
    let LlmError::Http { body, .. } = error else {
        return (None, None);
    };
    let lower = body.to_ascii_lowercase();
    if let Some(rest) = after(&lower, "prompt is too long:") {
        let prompt = first_number(rest);
        let limit = rest.find('>').and_then(|i| first_number(&rest[i..]));
        return (prompt, limit);
    }
    let limit = after(&lower, "maximum context length is").and_then(first_number);
    let prompt = after(&lower, "resulted in").and_then(first_number);
    (prompt, limit)
}

fn after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    text.find(marker).map(|i| &text[i + marker.len()..])
}

/// The first run of digits in `text` (within its first 40 characters), as a number.
fn first_number(text: &str) -> Option<u64> {
    let head: String = text.chars().take(40).collect();
    let start = head.find(|c: char| c.is_ascii_digit())?;
    let digits: String = head[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16, body: &str) -> LlmError {
        LlmError::Http {
            status,
            body: body.into(),
            attempts: 1,
        }
    }

    #[test]
    fn provider_and_proxy_bodies_are_window_errors() {
        let anthropic = r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 61234 tokens > 60000 maximum"}}"#;
        let openai = r#"{"error":{"message":"This model's maximum context length is 60000 tokens. However, your messages resulted in 61234 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
        let litellm = r#"{"error":{"message":"litellm.ContextWindowExceededError: litellm.BadRequestError: ...","type":null,"param":null,"code":"400"}}"#;
        let vllm = r#"{"object":"error","message":"This model's maximum context length is 32768 tokens. However, you requested 40000 tokens","code":400}"#;
        for body in [anthropic, openai, litellm, vllm] {
            assert!(is_context_window_error(&http(400, body)), "{body}");
        }
        assert_eq!(
            overflow_figures(&http(400, anthropic)),
            (Some(61234), Some(60000))
        );
        assert_eq!(
            overflow_figures(&http(400, openai)),
            (Some(61234), Some(60000))
        );
        assert_eq!(overflow_figures(&http(400, vllm)).1, Some(32768));
    }

    #[test]
    fn other_errors_are_not_window_errors() {
        assert!(!is_context_window_error(&http(
            400,
            r#"{"error":{"message":"invalid model"}}"#
        )));
        assert!(!is_context_window_error(&http(401, "prompt is too long")));
        let transport = LlmError::Transport {
            message: "prompt is too long".into(),
            attempts: 1,
        };
        assert!(!is_context_window_error(&transport));
    }

    #[test]
    fn windows_come_from_the_table_or_the_override() {
        assert_eq!(window_for("anthropic/claude-sonnet-4-5", None), 200_000);
        assert_eq!(window_for("openai/gpt-4o-mini", None), 128_000);
        assert_eq!(window_for("openai/gpt-4.1", None), 1_047_576);
        assert_eq!(window_for("openai/gpt-5-mini", None), 272_000);
        assert_eq!(window_for("openai/o3-mini", None), 200_000);
        assert_eq!(
            window_for("openrouter/google/gemini-2.5-pro", None),
            1_048_576
        );
        assert_eq!(window_for("ollama/llama3.1:8b", None), 128_000);
        assert_eq!(window_for("my-own-model", None), DEFAULT_CONTEXT_WINDOW);
        assert_eq!(window_for("my-own-model", Some(32_000)), 32_000);
        assert_eq!(
            window_for("anthropic/claude-sonnet-4-5", Some(60_000)),
            60_000
        );
    }
}
