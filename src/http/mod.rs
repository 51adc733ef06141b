//! The one HTTP layer every API client of the crate stands on (the agent-server and the sandbox
//! providers' control planes, GitHub, GitLab, the artifact service and blob store, the model
//! providers and the LLM relay): [`ClientSpec`] builds a `reqwest` client and reports a client
//! that cannot be built as an error (never a panic, never a silent fallback); [`retry`] is the
//! one retry policy (backoff with jitter, `Retry-After`, idempotency); [`detail`] is the one
//! reading of an error body and [`error_chain`] the one formatting of an error with its causes;
//! [`same_secret`] the one constant-time comparison of a presented key or token.
//!
//! A leaf module: it imports nothing of the crate, so every layer may use it.

pub mod retry;

use std::time::Duration;

use serde_json::Value;

/// The `User-Agent` of every request (GitHub refuses requests without one).
pub const USER_AGENT: &str = concat!("sandcrab/", env!("CARGO_PKG_VERSION"));

/// How many characters of an error body [`detail`] keeps.
const MAX_DETAIL_CHARS: usize = 300;

/// The settings of one pooled client. Every client sends [`USER_AGENT`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientSpec {
    timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    no_redirects: bool,
}

/// A client could not be built (TLS roots, resolver): what failed and why, on one line.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot set up the HTTP client{for_what} (TLS roots or resolver): {reason}")]
pub struct ClientError {
    for_what: String,
    pub reason: String,
}

impl ClientSpec {
    pub const fn new() -> Self {
        ClientSpec {
            timeout: None,
            connect_timeout: None,
            no_redirects: false,
        }
    }

    /// The whole-request timeout (connect, send, and read the answer).
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The timeout of establishing a connection.
    pub const fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Redirects are answered to the caller, never followed.
    pub const fn no_redirects(mut self) -> Self {
        self.no_redirects = true;
        self
    }

    /// A new client with its own connection pool; `for_what` names it in the error.
    pub fn build(self, for_what: &str) -> Result<reqwest::Client, ClientError> {
        let mut builder = reqwest::Client::builder().user_agent(USER_AGENT);
        if let Some(timeout) = self.timeout {
            builder = builder.timeout(timeout);
        }
        if let Some(timeout) = self.connect_timeout {
            builder = builder.connect_timeout(timeout);
        }
        if self.no_redirects {
            builder = builder.redirect(reqwest::redirect::Policy::none());
        }
        builder.build().map_err(|e| ClientError {
            for_what: if for_what.is_empty() {
                String::new()
            } else {
                format!(" for {for_what}")
            },
            reason: error_chain(&e),
        })
    }
}

/// An error and its causes on one line (`reqwest` keeps "connection refused" in the sources);
/// a cause whose text is already there is not repeated.
pub fn error_chain(error: &dyn std::error::Error) -> String {
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

/// A transport error as one line without the URL (`reqwest` puts it in its message, and a
/// signed or project URL does not belong in a log).
pub fn transport_error(error: reqwest::Error) -> String {
    error_chain(&error.without_url())
}

/// The short reason of an error answer: a JSON body's `detail` (FastAPI), `message` (GitHub,
/// GitLab) or `error` (a string, or an object with a `message`, as OpenAI sends), with
/// OpenHands' `exception` after it when there is one; else the first line of the body. At most
/// 300 characters; "(no detail)" for an empty body. Callers that hold secrets redact it.
pub fn detail(body: &str) -> String {
    let json = serde_json::from_str::<Value>(body).unwrap_or_default();
    let field = ["detail", "message", "error"]
        .iter()
        .find_map(|name| json.get(name).filter(|v| !v.is_null()));
    let text = match field {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) if o.get("message").is_some_and(Value::is_string) => {
            o["message"].as_str().unwrap_or_default().to_string()
        }
        Some(other) => other.to_string(),
        None => body.trim().lines().next().unwrap_or_default().to_string(),
    };
    let text = match json.get("exception").and_then(Value::as_str) {
        Some(exception) => format!("{text}: {}", exception.trim_matches('"')),
        None => text,
    };
    let text = text.trim();
    if text.is_empty() {
        return "(no detail)".into();
    }
    text.chars().take(MAX_DETAIL_CHARS).collect()
}

/// Whether a presented secret (a session key, a relay token) equals the expected one, in time
/// that depends on the lengths only, not on where the bytes differ.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_secret_needs_every_byte_and_the_length() {
        assert!(same_secret(b"alpha", b"alpha"));
        assert!(!same_secret(b"alpha", b"alphb"));
        assert!(!same_secret(b"alpha", b"alph"));
        assert!(!same_secret(b"alph", b"alpha"));
        assert!(same_secret(b"", b""));
    }

    #[test]
    fn detail_reads_the_usual_error_bodies() {
        assert_eq!(detail(r#"{"detail":"Unauthorized"}"#), "Unauthorized");
        assert_eq!(detail(r#"{"detail":[{"msg":"x"}]}"#), r#"[{"msg":"x"}]"#);
        assert_eq!(detail(r#"{"message":"Not Found"}"#), "Not Found");
        assert_eq!(detail(r#"{"error":"invalid_token"}"#), "invalid_token");
        assert_eq!(
            detail(r#"{"error":{"message":"model overloaded","type":"x"}}"#),
            "model overloaded"
        );
        assert_eq!(detail("plain text\nsecond line"), "plain text");
        assert_eq!(detail(""), "(no detail)");
        assert_eq!(detail("  \n "), "(no detail)");
        assert_eq!(detail(&"x".repeat(1_000)).len(), 300);
        let crash = r#"{"detail":"Internal Server Error","exception":"\"ToolDefinition 'X' is not registered\""}"#;
        assert_eq!(
            detail(crash),
            "Internal Server Error: ToolDefinition 'X' is not registered"
        );
    }

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn error_chain_joins_causes_once() {
        let e = Layer(
            "error sending request",
            Some(Box::new(Layer(
                "connection refused",
                Some(Box::new(Layer("refused", None))),
            ))),
        );
        assert_eq!(error_chain(&e), "error sending request: connection refused");
    }

    #[tokio::test]
    async fn clients_build_and_send_the_user_agent() {
        let client = ClientSpec::new()
            .timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(1))
            .no_redirects()
            .build("a test")
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route(
            "/",
            axum::routing::get(|headers: axum::http::HeaderMap| async move {
                headers["user-agent"].to_str().unwrap().to_string()
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let agent = client
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(agent, USER_AGENT);
    }
}
