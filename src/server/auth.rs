//! The session key: with keys configured, every `/api/*` request must carry one of them in the
//! `X-Session-API-Key` header, else it gets OpenHands' `401 {"detail": "Unauthorized"}`. No key
//! configured means no check (only sensible on loopback).

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::AppState;

/// The header clients send the key in (matched case-insensitively, as all header names).
pub const SESSION_KEY_HEADER: &str = "x-session-api-key";

/// Middleware of the `/api` routes: lets the request through only with an accepted key.
pub async fn require_session_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let keys = &state.config.session_api_keys;
    let given = request.headers().get(SESSION_KEY_HEADER);
    if keys.is_empty() || given.is_some_and(|key| accepted(keys, key.as_bytes())) {
        return next.run(request).await;
    }
    ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized").into_response()
}

/// Whether `presented` is one of `keys` (also the WebSocket's check).
pub fn key_accepted(keys: &[String], presented: &str) -> bool {
    accepted(keys, presented.as_bytes())
}

/// Whether `given` is one of `keys`, comparing every key in constant time.
fn accepted(keys: &[String], given: &[u8]) -> bool {
    keys.iter().fold(false, |found, key| {
        found | crate::http::same_secret(key.as_bytes(), given)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_a_configured_key() {
        let keys = vec!["alpha".to_string(), "beta".to_string()];
        assert!(accepted(&keys, b"alpha"));
        assert!(accepted(&keys, b"beta"));
        assert!(!accepted(&keys, b"alph"));
        assert!(!accepted(&keys, b"alphaa"));
        assert!(!accepted(&keys, b"gamma"));
        assert!(!accepted(&keys, b""));
    }
}
