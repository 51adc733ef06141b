//! `/api/bash`: shell commands run in the background, their output recorded as `BashOutput`
//! events that clients poll, as OpenHands' bash router answers (kept in memory here).
//!
//! A command runs as `/bin/sh -c` in its own process group, without the runner's secrets in its
//! environment. Its output comes out as events numbered 0, 1, 2... (`order`): pending output is
//! sent 100 ms after it arrives, or at once in 1 MiB pieces; the last event carries the exit
//! code (-1 on timeout, -N when killed by signal N). A fast command thus gives one event.
//! Each command keeps at most 10 MiB of output: the first 5 MiB and the last 5 MiB, the gap
//! shown by a marker; old finished commands are forgotten past 256 MiB or 10,000 commands.
//!
//! Here are the routes, their handlers and the reading of their requests (422s as FastAPI
//! gives them, from `super::validation`); `service` runs the commands, `events` keeps and
//! searches their events.

mod events;
mod service;

pub use service::BashService;

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::{NaiveDate, NaiveDateTime};
use serde::Serialize;
use serde_json::{json, Value};

use self::events::{BashEvent, ExecuteBashRequest, Filter};
use super::error::ApiError;
use super::validation::{invalid, Answer, Failure};
use super::AppState;

/// The default `timeout` of a request, in seconds.
const DEFAULT_TIMEOUT: i64 = 300;
/// The default and largest page of a search.
const MAX_PAGE: usize = 100;

// ---------------------------------------------------------------------------------------------
// Reading requests, answered as FastAPI does

fn parse_request(body: &[u8]) -> Answer<ExecuteBashRequest> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(invalid(
            json!(["body"]),
            "missing",
            "Field required",
            Value::Null,
        ));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        let loc = json!(["body", e.column()]);
        let error = invalid(loc, "json_invalid", "JSON decode error", json!({}));
        error.with_ctx(json!({"error": e.to_string()}))
    })?;
    let Some(fields) = value.as_object() else {
        let msg = "Input should be a valid dictionary or object to extract fields from";
        return Err(invalid(
            json!(["body"]),
            "model_attributes_type",
            msg,
            value,
        ));
    };
    let command = match fields.get("command") {
        Some(Value::String(c)) => c.clone(),
        Some(other) => return Err(not_a_string("command", other)),
        None => {
            return Err(invalid(
                json!(["body", "command"]),
                "missing",
                "Field required",
                value,
            ))
        }
    };
    let cwd = match fields.get("cwd") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) => Some(c.clone()),
        Some(other) => return Err(not_a_string("cwd", other)),
    };
    let timeout = match fields.get("timeout") {
        None => DEFAULT_TIMEOUT,
        Some(t) => integer(t)?,
    };
    Ok(ExecuteBashRequest {
        command,
        cwd,
        timeout,
    })
}

fn not_a_string(field: &str, value: &Value) -> Failure {
    let msg = "Input should be a valid string";
    invalid(json!(["body", field]), "string_type", msg, value.clone())
}

/// The `timeout`: an integer, or a float without a fraction, as pydantic accepts.
fn integer(value: &Value) -> Answer<i64> {
    let loc = json!(["body", "timeout"]);
    if let Some(n) = value.as_i64() {
        return Ok(n);
    }
    if let Value::String(text) = value {
        return int_text(text, loc);
    }
    match value.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
        Some(_) => {
            let msg = "Input should be a valid integer, got a number with a fractional part";
            Err(invalid(loc, "int_from_float", msg, value.clone()))
        }
        None => {
            let msg = "Input should be a valid integer";
            Err(invalid(loc, "int_type", msg, value.clone()))
        }
    }
}

/// A command id as stored (32 hex digits), from any UUID spelling.
fn command_id(text: &str, loc: Value) -> Answer<String> {
    uuid::Uuid::parse_str(text)
        .map(|u| u.simple().to_string())
        .map_err(|e| {
            let msg = format!("Input should be a valid UUID, {e}");
            invalid(loc, "uuid_parsing", msg, json!(text)).with_ctx(json!({"error": e.to_string()}))
        })
}

fn parse_filter(query: &HashMap<String, String>) -> Answer<Filter> {
    let param = |name: &str| query.get(name).map(String::as_str);
    let kind = match param("kind__eq") {
        None => None,
        Some("BashCommand") => Some("BashCommand"),
        Some("BashOutput") => Some("BashOutput"),
        Some(other) => {
            let expected = "'BashCommand' or 'BashOutput'";
            let msg = format!("Input should be {expected}");
            let loc = json!(["query", "kind__eq"]);
            let error = invalid(loc, "literal_error", msg, json!(other));
            return Err(error.with_ctx(json!({"expected": expected})));
        }
    };
    let descending = match param("sort_order") {
        None | Some("TIMESTAMP") => false,
        Some("TIMESTAMP_DESC") => true,
        Some(other) => {
            let expected = "'TIMESTAMP' or 'TIMESTAMP_DESC'";
            let msg = format!("Input should be {expected}");
            let error = invalid(json!(["query", "sort_order"]), "enum", msg, json!(other));
            return Err(error.with_ctx(json!({"expected": expected})));
        }
    };
    Ok(Filter {
        kind,
        command_id: param("command_id__eq")
            .map(|c| command_id(c, json!(["query", "command_id__eq"])))
            .transpose()?,
        since: param("timestamp__gte")
            .map(|t| datetime("timestamp__gte", t))
            .transpose()?,
        before: param("timestamp__lt")
            .map(|t| datetime("timestamp__lt", t))
            .transpose()?,
        order_after: param("order__gt")
            .map(|n| int_param("order__gt", n))
            .transpose()?,
        descending,
        page: param("page_id").and_then(|p| p.parse().ok()),
        limit: limit(param("limit"))?,
    })
}

fn int_param(name: &str, text: &str) -> Answer<i64> {
    int_text(text, json!(["query", name]))
}

/// An integer written as text, as pydantic reads it.
fn int_text(text: &str, loc: Value) -> Answer<i64> {
    text.trim().parse().map_err(|_| {
        let msg = "Input should be a valid integer, unable to parse string as an integer";
        invalid(loc, "int_parsing", msg, json!(text))
    })
}

fn limit(text: Option<&str>) -> Answer<usize> {
    let Some(text) = text else {
        return Ok(MAX_PAGE);
    };
    let n = int_param("limit", text)?;
    let loc = json!(["query", "limit"]);
    if n <= 0 {
        let msg = "Input should be greater than 0";
        let error = invalid(loc, "greater_than", msg, json!(text));
        return Err(error.with_ctx(json!({"gt": 0})));
    }
    if n > MAX_PAGE as i64 {
        let msg = "Input should be less than or equal to 100";
        let error = invalid(loc, "less_than_equal", msg, json!(text));
        return Err(error.with_ctx(json!({"le": MAX_PAGE})));
    }
    Ok(n as usize)
}

/// An ISO 8601 date or date-time; one with an offset is taken to UTC, one without is UTC.
fn datetime(name: &str, text: &str) -> Answer<NaiveDateTime> {
    let text = text.trim();
    let parsed = chrono::DateTime::parse_from_rfc3339(&text.replacen(' ', "T", 1))
        .map(|t| t.naive_utc())
        .ok()
        .or_else(|| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok())
        .or_else(|| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f").ok())
        .or_else(|| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M").ok())
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        });
    parsed.ok_or_else(|| {
        let msg = "Input should be a valid datetime or date, invalid format";
        let loc = json!(["query", name]);
        let error = invalid(loc, "datetime_from_date_parsing", msg, json!(text));
        error.with_ctx(json!({"error": "invalid format"}))
    })
}

// ---------------------------------------------------------------------------------------------
// Routes

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/bash/start_bash_command", post(start_command))
        .route("/bash/execute_bash_command", post(execute_command))
        .route("/bash/bash_events/search", get(search_events))
        .route("/bash/bash_events/", get(batch_get_events))
        .route("/bash/bash_events/{event_id}", get(get_event))
        .route("/bash/bash_events", delete(clear_events))
        .route("/bash/bash_commands/{command_id}/stop", post(stop_command))
}

/// `POST /bash/start_bash_command`: the `BashCommand`, at once.
async fn start_command(State(state): State<AppState>, body: Bytes) -> Answer<Response> {
    let request = parse_request(&body)?;
    let (command, _task) = state.bash.start(request);
    Ok(Json(command.as_ref()).into_response())
}

/// `POST /bash/execute_bash_command`: waits for the command; all its output in one event.
async fn execute_command(State(state): State<AppState>, body: Bytes) -> Answer<Response> {
    let request = parse_request(&body)?;
    let (command, task) = state.bash.start(request);
    task.await
        .map_err(|e| ApiError::internal(format!("the command's runner failed: {e}")))?;
    let output = state.bash.store().aggregate(&command.id);
    let output = output.ok_or_else(|| ApiError::internal("the command's output is gone"))?;
    Ok(Json(output).into_response())
}

/// OpenHands' `BashEventPage`.
#[derive(Serialize)]
struct EventPage {
    items: Vec<BashEvent>,
    next_page_id: Option<String>,
}

/// `GET /bash/bash_events/search`: `BashEventPage`.
async fn search_events(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Answer<Response> {
    let filter = parse_filter(&query)?;
    let (items, next_page_id) = state.bash.store().search(&filter);
    Ok(Json(EventPage {
        items,
        next_page_id,
    })
    .into_response())
}

/// `GET /bash/bash_events/` with a JSON list of ids: each event or `null`.
async fn batch_get_events(State(state): State<AppState>, body: Bytes) -> Answer<Response> {
    let ids: Vec<String> = serde_json::from_slice(&body).map_err(|_| {
        let input = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
        invalid(
            json!(["body"]),
            "list_type",
            "Input should be a valid list",
            input,
        )
    })?;
    let events: Vec<Option<BashEvent>> = {
        let store = state.bash.store();
        ids.iter().map(|id| store.get(id)).collect()
    };
    Ok(Json(events).into_response())
}

/// `GET /bash/bash_events/{event_id}`.
async fn get_event(
    State(state): State<AppState>,
    UrlPath(event_id): UrlPath<String>,
) -> Answer<Response> {
    let event = state.bash.store().get(&event_id);
    let event = event.ok_or_else(|| ApiError::not_found("Not Found"))?;
    Ok(Json(event).into_response())
}

/// `DELETE /bash/bash_events`: `{"cleared_count": n}`.
async fn clear_events(State(state): State<AppState>) -> Json<Value> {
    let count = state.bash.store().clear();
    Json(json!({"cleared_count": count}))
}

/// `POST /bash/bash_commands/{command_id}/stop`: `{"success": true}`, or 404.
async fn stop_command(
    State(state): State<AppState>,
    UrlPath(command_id): UrlPath<String>,
) -> Answer<Json<Value>> {
    let id = self::command_id(&command_id, json!(["path", "command_id"]))?;
    let found = state.bash.store().stop(&id);
    found.ok_or_else(|| ApiError::not_found("Not Found"))?;
    Ok(Json(json!({"success": true})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse_with_and_without_zone() {
        let a = datetime("t", "2026-01-02T03:04:05.123456Z").ok().unwrap();
        let b = datetime("t", "2026-01-02T03:04:05.123456").ok().unwrap();
        let c = datetime("t", "2026-01-02T05:04:05.123456+02:00")
            .ok()
            .unwrap();
        assert_eq!((a, a), (b, c));
        assert!(datetime("t", "bad").is_err());
    }
}
