//! Sending one HTTP request to a model provider with retries, shared by the HTTP clients.
//!
//! Retried: HTTP 408, 409, 429 and 5xx (Anthropic's 529 "overloaded" included), connection
//! errors and timeouts, up to `num_retries` times after the first attempt. The wait before a
//! retry honours the provider's `Retry-After` header (capped at [`MAX_RETRY_AFTER`]); without
//! one it is an exponential backoff from `retry_min_wait`, doubling per retry and capped at
//! `retry_max_wait`, plus up to 10% jitter. Every retry logs one `warn` line.
//!
//! The API key never appears in an error or a log line: every text taken from the provider is
//! scrubbed of it before it is kept.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::{LlmConfig, LlmError, LlmSetupError};

/// The longest `Retry-After` wait we honour.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// How many characters of an error body an [`LlmError::Http`] keeps.
const MAX_ERROR_BODY_CHARS: usize = 500;

/// How many characters of an error body a retry log line shows.
const MAX_LOG_BODY_CHARS: usize = 160;

/// How often and how long to wait between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub num_retries: u32,
    /// Backoff before the first retry.
    pub min_wait: Duration,
    /// Longest backoff (the `Retry-After` cap is [`MAX_RETRY_AFTER`] instead).
    pub max_wait: Duration,
}

impl RetryPolicy {
    pub fn from_config(config: &LlmConfig) -> Self {
        RetryPolicy {
            num_retries: config.num_retries,
            min_wait: config.retry_min_wait,
            max_wait: config.retry_max_wait,
        }
    }

    /// The backoff before retry number `retry` (1 = the first retry), without jitter:
    /// `min_wait * 2^(retry-1)`, capped at `max_wait`.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1));
        self.min_wait
            .checked_mul(factor)
            .unwrap_or(Duration::MAX)
            .min(self.max_wait)
    }

    /// The wait before retry number `retry`: the provider's `Retry-After` (capped at
    /// [`MAX_RETRY_AFTER`]) when it sent one, else the backoff plus up to 10% jitter (still
    /// capped at `max_wait`).
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(MAX_RETRY_AFTER);
        }
        let base = self.backoff(retry);
        (base + base.mul_f64(fastrand::f64() * 0.1)).min(self.max_wait)
    }
}

/// Whether an HTTP status is worth retrying: timeouts, conflicts, rate limits, server errors.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 409 | 429 | 500..=599)
}

/// Parses a `Retry-After` value: delta-seconds (fractions allowed) or an HTTP-date (IMF-fixdate,
/// as of `now`; a date in the past means "now"). `None` when it is neither.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let date = DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&Utc) - now;
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// Builds the `reqwest` client every HTTP model client uses; `timeout` is per request.
pub fn http_client(timeout: Duration) -> Result<reqwest::Client, LlmSetupError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("sandcrab/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| LlmSetupError::Http(error_chain(&e)))
}

/// Sends the request `build` makes (once per attempt) until it succeeds, fails for good, or
/// the retry budget is spent. Returns the body of the 2xx answer. `secret` (the API key) is
/// scrubbed from every error and log line.
pub async fn send_with_retries(
    policy: &RetryPolicy,
    secret: Option<&str>,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<String, LlmError> {
    let attempts_allowed = policy.num_retries.saturating_add(1);
    let mut attempt = 1;
    loop {
        let failure = match send_once(build()).await {
            Ok(body) => return Ok(body),
            Err(failure) => failure.scrubbed(secret),
        };
        if attempt >= attempts_allowed || !failure.is_retryable() {
            return Err(failure.into_error(attempt));
        }
        let wait = policy.delay(attempt, failure.retry_after());
        tracing::warn!(
            "{}; retrying in {:.1}s (attempt {} of {})",
            failure.describe(),
            wait.as_secs_f64(),
            attempt + 1,
            attempts_allowed
        );
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
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
    fn is_retryable(&self) -> bool {
        match self {
            Failure::Status { status, .. } => is_retryable_status(*status),
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
    let retry_after = retry_after_header(response.headers());
    let body = response.text().await.unwrap_or_default();
    Err(Failure::Status {
        status,
        body,
        retry_after,
    })
}

fn retry_after_header(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, Utc::now())
}

fn transport_failure(error: reqwest::Error) -> Failure {
    let message = if error.is_timeout() {
        format!("timed out: {}", error_chain(&error))
    } else {
        error_chain(&error)
    };
    Failure::Transport(message)
}

/// An error and its causes on one line (reqwest hides "connection refused" in the sources).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
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

    fn policy(min_ms: u64, max_ms: u64) -> RetryPolicy {
        RetryPolicy {
            num_retries: 5,
            min_wait: Duration::from_millis(min_ms),
            max_wait: Duration::from_millis(max_ms),
        }
    }

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn retry_after_accepts_delta_seconds() {
        let now = Utc::now();
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
    }

    #[test]
    fn retry_after_rejects_garbage_and_negative_values() {
        let now = Utc::now();
        assert_eq!(parse_retry_after("-3", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn retry_after_accepts_http_dates() {
        let now = at("2015-10-21T07:28:00Z");
        let future = parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now);
        assert_eq!(future, Some(Duration::from_secs(30)));
        let past = parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now);
        assert_eq!(past, Some(Duration::ZERO));
    }

    #[test]
    fn backoff_doubles_from_min_and_stops_at_max() {
        let p = policy(2_000, 60_000);
        let waits: Vec<u64> = (1..=7).map(|r| p.backoff(r).as_secs()).collect();
        assert_eq!(waits, vec![2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(p.backoff(200), Duration::from_secs(60));
    }

    #[test]
    fn delay_adds_at_most_ten_percent_jitter() {
        let p = policy(1_000, 60_000);
        for _ in 0..50 {
            let wait = p.delay(2, None);
            assert!(wait >= Duration::from_secs(2), "{wait:?}");
            assert!(wait <= Duration::from_millis(2_200), "{wait:?}");
        }
        assert_eq!(p.delay(10, None), Duration::from_secs(60));
    }

    #[test]
    fn delay_honours_retry_after_up_to_five_minutes() {
        let p = policy(1_000, 2_000);
        let given = Some(Duration::from_secs(30));
        assert_eq!(p.delay(1, given), Duration::from_secs(30));
        let huge = Some(Duration::from_secs(3_600));
        assert_eq!(p.delay(1, huge), MAX_RETRY_AFTER);
    }

    #[test]
    fn retryable_statuses() {
        for status in [408, 409, 429, 500, 502, 503, 529] {
            assert!(is_retryable_status(status), "{status}");
        }
        for status in [400, 401, 403, 404, 422] {
            assert!(!is_retryable_status(status), "{status}");
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
