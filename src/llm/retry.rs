//! Sending one HTTP request to a model provider with retries, shared by the HTTP clients.
//!
//! The policy is [`crate::http::retry`]'s, with the values of `--llm-num-retries`,
//! `--llm-retry-min-wait` and `--llm-retry-max-wait`: retried are HTTP 408, 409, 429 and 5xx
//! (Anthropic's 529 "overloaded" included), connection errors and timeouts, up to
//! `num_retries` times after the first attempt (a completion creates nothing on the provider,
//! so it is an idempotent call). The wait before a retry honours the provider's `Retry-After`
//! header (capped at [`MAX_RETRY_AFTER`]); without one it is an exponential backoff from
//! `retry_min_wait`, doubling per retry and capped at `retry_max_wait`, plus up to 10% jitter.
//! Every retry logs one `warn` line.
//!
//! The API key never appears in an error or a log line: every text taken from the provider is
//! scrubbed of it before it is kept.

use std::time::Duration;

use crate::http::retry::{self, Idempotency, Jitter, RetryPolicy, Statuses, Verdict};
use crate::http::{error_chain, ClientSpec};

use super::{LlmConfig, LlmError, LlmSetupError};

/// The longest `Retry-After` wait we honour.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// How many characters of an error body an [`LlmError::Http`] keeps.
const MAX_ERROR_BODY_CHARS: usize = 500;

/// How many characters of an error body a retry log line shows.
const MAX_LOG_BODY_CHARS: usize = 160;

/// The retry policy of the configured values (`num_retries` after the first attempt, backoff
/// from `retry_min_wait` doubling up to `retry_max_wait`, 10% jitter, `Retry-After` up to
/// [`MAX_RETRY_AFTER`], the model providers' retryable statuses).
pub fn policy(config: &LlmConfig) -> RetryPolicy {
    RetryPolicy::new(
        config.num_retries.saturating_add(1),
        config.retry_min_wait,
        2.0,
    )
    .cap(config.retry_max_wait)
    .jitter(Jitter::Add(0.1))
    .retry_after_cap(MAX_RETRY_AFTER)
    .statuses(Statuses::ModelProvider)
}

/// Builds the `reqwest` client every HTTP model client uses; `timeout` is per request.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, LlmSetupError> {
    ClientSpec::new()
        .timeout(timeout)
        .build("")
        .map_err(|e| LlmSetupError::Http(e.reason))
}

/// Sends the request `build` makes (once per attempt) until it succeeds, fails for good, or
/// the retry budget is spent. Returns the body of the 2xx answer. `secret` (the API key) is
/// scrubbed from every error and log line.
pub async fn send_with_retries(
    policy: &RetryPolicy,
    secret: Option<&str>,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<String, LlmError> {
    let attempts = policy.max_attempts();
    let mut made = 0;
    let outcome = retry::retry(
        policy,
        |number| {
            made = number;
            let request = build();
            async move { send_once(request).await.map_err(|f| f.scrubbed(secret)) }
        },
        |outcome| match outcome {
            Ok(_) => Verdict::Done,
            Err(failure) if failure.is_retryable(policy) => Verdict::Retry(failure.retry_after()),
            Err(_) => Verdict::Done,
        },
        |outcome, wait, next| {
            if let Err(failure) = outcome {
                tracing::warn!(
                    "{}; retrying in {:.1}s (attempt {next} of {attempts})",
                    failure.describe(),
                    wait.as_secs_f64(),
                );
            }
        },
    )
    .await;
    outcome.map_err(|failure| failure.into_error(made))
}

/// Why one attempt failed.
#[derive(Debug)]
enum Failure {
    Status {
        status: u16,
        body: String,
        retry_after: Option<Duration>,
    },
    Transport(String),
}

impl Failure {
    fn is_retryable(&self, policy: &RetryPolicy) -> bool {
        match self {
            Failure::Status { status, .. } => {
                policy.retries_status(*status, Idempotency::Idempotent)
            }
            Failure::Transport(_) => true,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Failure::Status { retry_after, .. } => *retry_after,
            Failure::Transport(_) => None,
        }
    }

    fn scrubbed(self, secret: Option<&str>) -> Self {
        match self {
            Failure::Status {
                status,
                body,
                retry_after,
            } => Failure::Status {
                status,
                body: redact(&body, secret),
                retry_after,
            },
            Failure::Transport(message) => Failure::Transport(redact(&message, secret)),
        }
    }

    /// One line for the retry log.
    fn describe(&self) -> String {
        match self {
            Failure::Status { status, body, .. } => {
                let snippet = truncate_chars(&one_line(body), MAX_LOG_BODY_CHARS);
                if snippet.is_empty() {
                    format!("model provider answered {status}")
                } else {
                    format!("model provider answered {status} ({snippet})")
                }
            }
            Failure::Transport(message) => {
                format!("could not reach the model provider ({message})")
            }
        }
    }

    fn into_error(self, attempts: u32) -> LlmError {
        match self {
            Failure::Status { status, body, .. } => LlmError::Http {
                status,
                body: truncate_chars(&body, MAX_ERROR_BODY_CHARS),
                attempts,
            },
            Failure::Transport(message) => LlmError::Transport { message, attempts },
        }
    }
}

/// One attempt: the body of a 2xx answer, or why it failed.
async fn send_once(request: reqwest::RequestBuilder) -> Result<String, Failure> {
    let response = request.send().await.map_err(transport_failure)?;
    let status = response.status().as_u16();
    if response.status().is_success() {
        return response.text().await.map_err(transport_failure);
    }
    let retry_after = retry::retry_after(response.headers(), chrono::Utc::now());
    let body = response.text().await.unwrap_or_default();
    Err(Failure::Status {
        status,
        body,
        retry_after,
    })
}

fn transport_failure(error: reqwest::Error) -> Failure {
    let message = if error.is_timeout() {
        format!("timed out: {}", error_chain(&error))
    } else {
        error_chain(&error)
    };
    Failure::Transport(message)
}

/// `text` with every occurrence of `secret` replaced (secrets shorter than 4 characters are
/// left alone: replacing them would mangle ordinary text and protect nothing).
fn redact(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(secret) if secret.len() >= 4 => text.replace(secret, "[redacted]"),
        _ => text.to_string(),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most `max` characters of `text`, marking a cut with "… (truncated)".
fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}… (truncated)", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(num_retries: u32, min_ms: u64, max_ms: u64) -> LlmConfig {
        LlmConfig {
            num_retries,
            retry_min_wait: Duration::from_millis(min_ms),
            retry_max_wait: Duration::from_millis(max_ms),
            ..LlmConfig::new("m")
        }
    }

    #[test]
    fn the_configured_values_make_the_policy() {
        let p = policy(&config(5, 2_000, 60_000));
        assert_eq!(p.max_attempts(), 6);
        let waits: Vec<u64> = (1..=7).map(|r| p.backoff(r).as_secs()).collect();
        assert_eq!(waits, vec![2, 4, 8, 16, 32, 60, 60]);
        for _ in 0..50 {
            let wait = p.delay(2, None);
            assert!(wait >= Duration::from_secs(4), "{wait:?}");
            assert!(wait <= Duration::from_millis(4_400), "{wait:?}");
        }
        let huge = Some(Duration::from_secs(3_600));
        assert_eq!(p.delay(1, huge), MAX_RETRY_AFTER);
        for status in [408, 409, 429, 500, 502, 503, 529] {
            assert!(
                p.retries_status(status, Idempotency::Idempotent),
                "{status}"
            );
        }
        for status in [400, 401, 403, 404, 422] {
            assert!(
                !p.retries_status(status, Idempotency::Idempotent),
                "{status}"
            );
        }
    }

    #[test]
    fn errors_are_scrubbed_and_truncated() {
        let failure = Failure::Status {
            status: 401,
            body: format!("bad key sk-secret-123 {}", "x".repeat(1_000)),
            retry_after: None,
        };
        let error = failure.scrubbed(Some("sk-secret-123")).into_error(1);
        let LlmError::Http { body, .. } = error else {
            panic!("not an HTTP error: {error:?}")
        };
        assert!(body.starts_with("bad key [redacted] xxx"), "{body}");
        assert!(body.ends_with("… (truncated)"));
        assert!(body.chars().count() < 520);
    }
}
