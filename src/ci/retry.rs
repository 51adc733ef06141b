//! Sending one HTTP request to a CI service (GitHub's artifact service and blob store, GitLab's
//! API) with retries on HTTP 429, 500, 502, 503, 504 and on connection errors and timeouts.
//!
//! The wait grows by a factor per retry from a first wait (GitHub's artifact client: 5
//! attempts, 3 s, x1.5); a `Retry-After` header wins, capped at [`MAX_RETRY_AFTER`]. Log lines
//! and errors name the operation, never the URL: signed URLs carry a signature and GitLab
//! URLs may carry project paths only, but one rule for all is simpler to keep.

use std::time::Duration;

use reqwest::header::RETRY_AFTER;

use crate::llm::retry::parse_retry_after;

/// The longest `Retry-After` wait honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How many attempts, and the waits between them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Attempts in all (the first included); at least 1.
    pub attempts: u32,
    /// The wait before the first retry.
    pub first_wait: Duration,
    /// How much each wait grows over the one before.
    pub factor: f64,
}

impl Default for Backoff {
    /// GitHub's artifact client: 5 attempts, 3 s, x1.5.
    fn default() -> Self {
        Backoff {
            attempts: 5,
            first_wait: Duration::from_secs(3),
            factor: 1.5,
        }
    }
}

impl Backoff {
    /// The wait before retry number `retry` (1 = the first retry).
    pub fn wait(&self, retry: u32) -> Duration {
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        self.first_wait.mul_f64(self.factor.powi(exponent).min(1e6))
    }
}

/// Whether an answer with this status is worth another attempt.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

/// Sends the request `build` makes (once per attempt) until an answer is not retryable or the
/// attempts are spent. Returns the last answer whatever its status (the caller judges it), or
/// the last transport failure as one line without the URL.
pub async fn send(
    backoff: &Backoff,
    what: &str,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, String> {
    let attempts = backoff.attempts.max(1);
    let mut attempt = 1;
    loop {
        let (outcome, retry_after) = match build().send().await {
            Ok(response) if !is_retryable_status(response.status().as_u16()) => {
                return Ok(response)
            }
            Ok(response) => {
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, chrono::Utc::now()));
                (Ok(response), retry_after)
            }
            Err(e) => (Err(transport_error(e)), None),
        };
        if attempt >= attempts {
            return outcome;
        }
        let reason = match &outcome {
            Ok(response) => format!("HTTP {}", response.status().as_u16()),
            Err(e) => e.clone(),
        };
        let wait = retry_after.map_or_else(|| backoff.wait(attempt), |w| w.min(MAX_RETRY_AFTER));
        tracing::warn!(
            "{what}: {reason}; retrying in {:.1}s (attempt {} of {attempts})",
            wait.as_secs_f64(),
            attempt + 1
        );
        tokio::time::sleep(wait).await;
        attempt += 1;
    }
}

/// A transport error as one line, without the URL (`reqwest` puts it in its message).
pub fn transport_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_by_the_factor() {
        let b = Backoff::default();
        assert_eq!(b.wait(1), Duration::from_secs(3));
        assert_eq!(b.wait(2), Duration::from_millis(4500));
        assert_eq!(b.wait(3), Duration::from_millis(6750));
    }

    #[test]
    fn only_rate_limits_and_server_errors_are_retried() {
        for s in [429, 500, 502, 503, 504] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [200, 201, 400, 401, 403, 404, 409, 501] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }
}
