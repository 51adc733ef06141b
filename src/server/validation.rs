//! FastAPI's error answers, shared by the `/api` routes: `{"detail": "..."}` for an
//! [`ApiError`], and the 422 `{"detail": [...]}` pydantic gives for a request that fails
//! validation (a missing field, a value of the wrong type...), its fields in FastAPI's order.

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};

use super::error::ApiError;

/// An error answer: `{"detail": "..."}`, or FastAPI's 422 `{"detail": [...]}`.
pub(super) enum Failure {
    Api(ApiError),
    Invalid(Box<ValidationError>),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Failure::Api(e) => e.into_response(),
            Failure::Invalid(error) => {
                let body = Json(Invalid { detail: [*error] });
                (StatusCode::UNPROCESSABLE_ENTITY, body).into_response()
            }
        }
    }
}

/// FastAPI's 422 body.
#[derive(Serialize)]
struct Invalid {
    detail: [ValidationError; 1],
}

pub(super) type Answer<T> = Result<T, Failure>;

/// One of FastAPI's validation errors, its fields in FastAPI's order.
#[derive(Serialize)]
pub(super) struct ValidationError {
    #[serde(rename = "type")]
    kind: &'static str,
    loc: Value,
    msg: String,
    input: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    ctx: Option<Value>,
}

impl Failure {
    /// Adds the error's context (`{"gt": 0}`...), as pydantic gives it.
    pub(super) fn with_ctx(mut self, ctx: Value) -> Self {
        if let Failure::Invalid(error) = &mut self {
            error.ctx = Some(ctx);
        }
        self
    }
}

/// A 422 with one validation error at `loc` (e.g. `["query", "path"]`).
pub(super) fn invalid(
    loc: Value,
    kind: &'static str,
    msg: impl Into<String>,
    input: Value,
) -> Failure {
    let error = ValidationError {
        kind,
        loc,
        msg: msg.into(),
        input,
        ctx: None,
    };
    Failure::Invalid(Box::new(error))
}

/// A 422 for a required parameter that is absent.
pub(super) fn missing(place: &str, name: &str) -> Failure {
    invalid(
        json!([place, name]),
        "missing",
        "Field required",
        Value::Null,
    )
}

/// A required query parameter.
pub(super) fn required<'a>(query: &'a HashMap<String, String>, name: &str) -> Answer<&'a str> {
    query
        .get(name)
        .map(String::as_str)
        .ok_or_else(|| missing("query", name))
}
