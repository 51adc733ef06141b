//! The one retry policy: how many attempts, the waits between them, and which failures are
//! worth another attempt.
//!
//! Waits: `base * factor^(retry-1)`, capped at `cap`, with [`Jitter`]; a `Retry-After` header
//! (delta-seconds or an HTTP-date) wins over the backoff, capped at `retry_after_cap`.
//!
//! Which failures are retried depends on whether the call is [`Idempotency::Idempotent`]:
//! - a connection that could not be established: always (the request never reached the
//!   server, so it cannot have been carried out);
//! - HTTP 429 (the server refused to do the work): always;
//! - a timeout, a connection lost mid-call, HTTP 502, 503, 504 (and 500, and whatever the
//!   policy's [`Statuses`] add): only an idempotent call. A POST that creates something is
//!   never sent again once it may have reached the server: a 5xx or a timeout can come after
//!   the server made the object, and a second POST would make it twice.
//!
//! [`Schedule`] is the same backoff as a sequence of waits, for polling loops.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// Whether sending a call twice does the same as sending it once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// GET, PUT, PATCH, DELETE, and POSTs that create nothing (a model completion, a token).
    Idempotent,
    /// A POST that creates something: retried only when it never reached the server.
    NonIdempotent,
}

/// How the backoff is spread, so that clients that failed together do not retry together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// The backoff as computed.
    None,
    /// Anywhere between zero and the backoff.
    Full,
    /// Half the backoff, plus anywhere up to the other half.
    Equal,
    /// The backoff plus up to this fraction of it (still capped).
    Add(f64),
}

/// Which HTTP statuses an idempotent call retries (a non-idempotent one: 429 only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Statuses {
    /// 429, 500, 502, 503, 504.
    Gateway,
    /// 408, 409, 429 and every 5xx (model providers: Anthropic's 529 "overloaded").
    ModelProvider,
}

/// How often and how long to wait between attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (0 counts as 1).
    pub attempts: u32,
    /// The backoff before the first retry.
    pub base: Duration,
    /// How much each backoff grows over the one before.
    pub factor: f64,
    /// The longest backoff.
    pub cap: Duration,
    pub jitter: Jitter,
    /// The longest `Retry-After` honoured.
    pub retry_after_cap: Duration,
    pub statuses: Statuses,
}

impl RetryPolicy {
    /// `attempts` in all, waits from `base` growing by `factor`, capped at 60 s, no jitter, a
    /// `Retry-After` honoured up to 60 s, [`Statuses::Gateway`].
    pub const fn new(attempts: u32, base: Duration, factor: f64) -> Self {
        RetryPolicy {
            attempts,
            base,
            factor,
            cap: Duration::from_secs(60),
            jitter: Jitter::None,
            retry_after_cap: Duration::from_secs(60),
            statuses: Statuses::Gateway,
        }
    }

    pub const fn cap(mut self, cap: Duration) -> Self {
        self.cap = cap;
        self
    }

    pub const fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    pub const fn retry_after_cap(mut self, cap: Duration) -> Self {
        self.retry_after_cap = cap;
        self
    }

    pub const fn statuses(mut self, statuses: Statuses) -> Self {
        self.statuses = statuses;
        self
    }

    /// Attempts in all, at least 1.
    pub fn max_attempts(&self) -> u32 {
        self.attempts.max(1)
    }

    /// The backoff before retry number `retry` (1 = the first retry), without jitter.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exponent = i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX);
        let seconds = self.base.as_secs_f64() * self.factor.powi(exponent);
        Duration::try_from_secs_f64(seconds)
            .unwrap_or(self.cap)
            .min(self.cap)
    }

    /// The wait before retry number `retry`: the server's `Retry-After` (capped) when it sent
    /// one, else the backoff with jitter.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.retry_after_cap);
        }
        let backoff = self.backoff(retry);
        match self.jitter {
            Jitter::None => backoff,
            Jitter::Full => backoff.mul_f64(fastrand::f64()),
            Jitter::Equal => backoff / 2 + (backoff / 2).mul_f64(fastrand::f64()),
            Jitter::Add(fraction) => {
                (backoff + backoff.mul_f64(fastrand::f64() * fraction.max(0.0))).min(self.cap)
            }
        }
    }

    /// Whether an answer with `status` is worth another attempt.
    pub fn retries_status(&self, status: u16, idempotency: Idempotency) -> bool {
        if status == 429 {
            return true;
        }
        if idempotency == Idempotency::NonIdempotent {
            return false;
        }
        match self.statuses {
            Statuses::Gateway => matches!(status, 500 | 502 | 503 | 504),
            Statuses::ModelProvider => matches!(status, 408 | 409 | 500..=599),
        }
    }

    /// Whether a call that failed without an answer is worth another attempt: a connection
    /// never made always; a timeout or a lost connection only when the call is idempotent.
    pub fn retries_error(&self, error: &reqwest::Error, idempotency: Idempotency) -> bool {
        error.is_connect() || idempotency == Idempotency::Idempotent
    }

    /// The waits of this policy one after another, for a polling loop.
    pub fn schedule(&self) -> Schedule {
        Schedule {
            policy: *self,
            retry: 0,
        }
    }
}

/// What one attempt's outcome calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Final: success, or a failure another attempt would not fix.
    Done,
    /// Another attempt, after the server's `Retry-After` when it gave one.
    Retry(Option<Duration>),
}

/// The verdict on an answer under `policy` (its status and `Retry-After`).
pub fn judge_response(
    policy: &RetryPolicy,
    idempotency: Idempotency,
    response: &reqwest::Response,
) -> Verdict {
    let status = response.status().as_u16();
    if policy.retries_status(status, idempotency) {
        Verdict::Retry(retry_after(response.headers(), Utc::now()))
    } else {
        Verdict::Done
    }
}

/// Runs `attempt` (given its number, from 1) until `judge` says done or the policy's attempts
/// are spent, and returns the last outcome. Before each wait, `on_retry` gets the outcome, the
/// wait and the number of the next attempt (for one log line).
pub async fn retry<T, Fut>(
    policy: &RetryPolicy,
    mut attempt: impl FnMut(u32) -> Fut,
    judge: impl Fn(&T) -> Verdict,
    mut on_retry: impl FnMut(&T, Duration, u32),
) -> T
where
    Fut: Future<Output = T>,
{
    let attempts = policy.max_attempts();
    let mut number = 1;
    loop {
        let outcome = attempt(number).await;
        let Verdict::Retry(retry_after) = judge(&outcome) else {
            return outcome;
        };
        if number >= attempts {
            return outcome;
        }
        let wait = policy.delay(number, retry_after);
        on_retry(&outcome, wait, number + 1);
        tokio::time::sleep(wait).await;
        number += 1;
    }
}

/// Sends the request `build` makes (once per attempt) until an answer is final or the attempts
/// are spent. Returns the last answer whatever its status (the caller judges it), or the last
/// transport error as one line without the URL. Each retry logs one `warn` line naming
/// `what`, never the URL.
pub async fn send(
    policy: &RetryPolicy,
    idempotency: Idempotency,
    what: &str,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, String> {
    let attempts = policy.max_attempts();
    retry(
        policy,
        |_| async {
            build().send().await.map_err(|e| {
                let retryable = policy.retries_error(&e, idempotency);
                (super::transport_error(e), retryable)
            })
        },
        |outcome| match outcome {
            Ok(response) => judge_response(policy, idempotency, response),
            Err((_, true)) => Verdict::Retry(None),
            Err((_, false)) => Verdict::Done,
        },
        |outcome, wait, next| {
            let reason = match outcome {
                Ok(response) => format!("HTTP {}", response.status().as_u16()),
                Err((message, _)) => message.clone(),
            };
            tracing::warn!(
                "{what}: {reason}; retrying in {:.1}s (attempt {next} of {attempts})",
                wait.as_secs_f64()
            );
        },
    )
    .await
    .map_err(|(message, _)| message)
}

/// The `Retry-After` of an answer, as of `now` (uncapped: the policy caps it).
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, now)
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

/// The waits of a policy one after another (the attempts do not limit it: the caller's
/// deadline does).
#[derive(Debug, Clone)]
pub struct Schedule {
    policy: RetryPolicy,
    retry: u32,
}

impl Schedule {
    /// The next wait.
    pub fn next_wait(&mut self) -> Duration {
        self.retry = self.retry.saturating_add(1);
        self.policy.delay(self.retry, None)
    }

    /// Sleeps the next wait.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_wait()).await;
    }

    /// Starts over from the first wait (after a success).
    pub fn reset(&mut self) {
        self.retry = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut headers = HeaderMap::new();
        headers.insert(
            RETRY_AFTER,
            "Wed, 21 Oct 2015 07:38:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(600)));
    }

    #[test]
    fn retry_after_is_capped_by_the_policy() {
        let p = RetryPolicy::new(5, Duration::from_secs(1), 2.0)
            .retry_after_cap(Duration::from_secs(30));
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(3_600))),
            Duration::from_secs(30)
        );
        assert_eq!(
            p.delay(4, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn backoff_grows_by_the_factor_and_stops_at_the_cap() {
        let p = RetryPolicy::new(5, Duration::from_secs(3), 1.5);
        assert_eq!(p.backoff(1), Duration::from_secs(3));
        assert_eq!(p.backoff(2), Duration::from_millis(4500));
        assert_eq!(p.backoff(3), Duration::from_millis(6750));
        let p = RetryPolicy::new(5, Duration::from_secs(2), 2.0).cap(Duration::from_secs(60));
        let waits: Vec<u64> = (1..=7).map(|r| p.backoff(r).as_secs()).collect();
        assert_eq!(waits, vec![2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(p.backoff(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn jitter_stays_in_its_bounds() {
        let base = RetryPolicy::new(5, Duration::from_secs(1), 2.0);
        let two = Duration::from_secs(2);
        let (mut full_low, mut equal_spread) = (false, false);
        for _ in 0..200 {
            let full = base.jitter(Jitter::Full).delay(2, None);
            assert!(full <= two, "{full:?}");
            full_low |= full < Duration::from_millis(900);
            let equal = base.jitter(Jitter::Equal).delay(2, None);
            assert!(equal >= two / 2 && equal <= two, "{equal:?}");
            equal_spread |= equal > Duration::from_millis(1_100);
            let added = base.jitter(Jitter::Add(0.1)).delay(2, None);
            assert!(
                added >= two && added <= Duration::from_millis(2_200),
                "{added:?}"
            );
        }
        assert!(full_low && equal_spread, "the jitter never varied");
        assert_eq!(base.jitter(Jitter::None).delay(2, None), two);
        let capped = base.cap(Duration::from_secs(60)).jitter(Jitter::Add(0.1));
        assert_eq!(capped.delay(10, None), Duration::from_secs(60));
    }

    #[test]
    fn only_idempotent_calls_retry_server_errors() {
        let gateway = RetryPolicy::new(5, Duration::from_secs(1), 2.0);
        let provider = gateway.statuses(Statuses::ModelProvider);
        use Idempotency::*;
        for s in [429, 500, 502, 503, 504] {
            assert!(gateway.retries_status(s, Idempotent), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 408, 409, 422, 501] {
            assert!(!gateway.retries_status(s, Idempotent), "{s}");
        }
        for s in [408, 409, 429, 500, 529] {
            assert!(provider.retries_status(s, Idempotent), "{s}");
        }
        assert!(gateway.retries_status(429, NonIdempotent));
        for s in [408, 500, 502, 503, 504, 529] {
            assert!(!gateway.retries_status(s, NonIdempotent), "{s}");
            assert!(!provider.retries_status(s, NonIdempotent), "{s}");
        }
    }

    #[tokio::test]
    async fn connect_errors_retry_any_call_and_timeouts_only_idempotent_ones() {
        let p = RetryPolicy::new(3, Duration::ZERO, 1.0);
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let refused = format!("http://{}/", closed.local_addr().unwrap());
        drop(closed);
        let e = reqwest::Client::new()
            .post(&refused)
            .send()
            .await
            .unwrap_err();
        assert!(p.retries_error(&e, Idempotency::NonIdempotent), "{e}");
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", silent.local_addr().unwrap());
        let e = reqwest::Client::new()
            .post(&url)
            .timeout(Duration::from_millis(100))
            .send()
            .await
            .unwrap_err();
        assert!(e.is_timeout(), "{e}");
        assert!(!p.retries_error(&e, Idempotency::NonIdempotent), "{e}");
        assert!(p.retries_error(&e, Idempotency::Idempotent), "{e}");
    }

    #[tokio::test]
    async fn retry_stops_at_the_attempts_or_when_done() {
        let p = RetryPolicy::new(4, Duration::ZERO, 1.0);
        let mut retried = Vec::new();
        let last = retry(
            &p,
            |n| async move { n },
            |_| Verdict::Retry(None),
            |_, _, next| retried.push(next),
        )
        .await;
        assert_eq!((last, retried), (4, vec![2, 3, 4]));
        let last = retry(
            &p,
            |n| async move { n },
            |n| {
                if *n == 2 {
                    Verdict::Done
                } else {
                    Verdict::Retry(None)
                }
            },
            |_, _, _| {},
        )
        .await;
        assert_eq!(last, 2);
    }

    #[test]
    fn a_schedule_walks_the_backoff_and_starts_over() {
        let p = RetryPolicy::new(1, Duration::from_millis(100), 2.0).cap(Duration::from_secs(2));
        let mut s = p.schedule();
        let waits: Vec<u128> = (0..7).map(|_| s.next_wait().as_millis()).collect();
        assert_eq!(waits, vec![100, 200, 400, 800, 1600, 2000, 2000]);
        s.reset();
        assert_eq!(s.next_wait(), Duration::from_millis(100));
    }
}
