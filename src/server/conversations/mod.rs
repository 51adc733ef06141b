//! `/api/conversations`: create, get, search, delete, send a message, run, pause, final
//! response, secrets, condense, and the event search — OpenHands' paths, fields and status codes.

mod confirmation;
pub mod service;
pub mod spec;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

pub use service::{ConversationService, Handle};
use spec::{SendMessage, StartRequest};

use super::error::{ApiError, ApiResult};
use super::AppState;
use crate::protocol::event::Event;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/conversations", post(create).get(batch_get))
        .route("/conversations/search", get(search))
        .route("/conversations/count", get(count))
        .route("/conversations/{id}", get(info).delete(delete))
        .route("/conversations/{id}/events", post(send_message))
        .route("/conversations/{id}/events/search", get(search_events))
        .route("/conversations/{id}/events/count", get(count_events))
        .route("/conversations/{id}/events/{event_id}", get(get_event))
        .route("/conversations/{id}/run", post(run))
        .route("/conversations/{id}/pause", post(pause))
        .route("/conversations/{id}/interrupt", post(pause))
        .route(
            "/conversations/{id}/agent_final_response",
            get(final_response),
        )
        .route("/conversations/{id}/secrets", post(update_secrets))
        .route("/conversations/{id}/condense", post(condense))
        .route(
            "/conversations/{id}/events/respond_to_confirmation",
            post(confirmation::respond_to_confirmation),
        )
        .route(
            "/conversations/{id}/confirmation_policy",
            post(confirmation::set_confirmation_policy),
        )
        .route(
            "/conversations/{id}/security_analyzer",
            post(confirmation::set_security_analyzer),
        )
}

fn success() -> Json<Value> {
    Json(json!({"success": true}))
}

fn find(state: &AppState, id: &str) -> ApiResult<Arc<Handle>> {
    state
        .conversations
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("Conversation not found: {id}")))
}

async fn create(
    State(state): State<AppState>,
    Json(request): Json<StartRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (handle, created) = state.conversations.create(request).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(handle.info())))
}

async fn info(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(find(&state, &id)?.info()))
}

/// `GET /conversations?ids=A&ids=B`: each, or null when unknown.
async fn batch_get(State(state): State<AppState>, RawQuery(query): RawQuery) -> Json<Value> {
    let query = query.unwrap_or_default();
    let infos: Vec<Value> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "ids")
        .map(|(_, id)| {
            state
                .conversations
                .get(&id)
                .map_or(Value::Null, |h| h.info())
        })
        .collect();
    Json(Value::Array(infos))
}

#[derive(Debug, Deserialize)]
struct SearchQuery {
    page_id: Option<String>,
    limit: Option<usize>,
    status: Option<String>,
    sort_order: Option<String>,
}

async fn search(State(state): State<AppState>, Query(q): Query<SearchQuery>) -> Json<Value> {
    let mut all: Vec<Value> = state
        .conversations
        .list()
        .iter()
        .map(|h| h.info())
        .collect();
    if let Some(status) = &q.status {
        all.retain(|info| info["execution_status"] == status.as_str());
    }
    if q.sort_order.as_deref().is_some_and(|o| o.ends_with("DESC")) {
        all.reverse();
    }
    Json(page(all, q.page_id.as_deref(), q.limit))
}

async fn count(State(state): State<AppState>, Query(q): Query<SearchQuery>) -> Json<usize> {
    let all = state.conversations.list();
    let n = all
        .iter()
        .filter(|h| {
            q.status
                .as_deref()
                .is_none_or(|s| h.view().status.as_str() == s)
        })
        .count();
    Json(n)
}

/// `{items, next_page_id}` where the page id is the index of the next item.
fn page(items: Vec<Value>, page_id: Option<&str>, limit: Option<usize>) -> Value {
    let start = page_id
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(0)
        .min(items.len());
    let limit = limit.unwrap_or(100).clamp(1, 100);
    let end = (start + limit).min(items.len());
    let next = (end < items.len()).then(|| end.to_string());
    json!({"items": items[start..end], "next_page_id": next})
}

async fn delete(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    state.conversations.delete(&id).await?;
    Ok(success())
}

async fn send_message(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(message): Json<SendMessage>,
) -> ApiResult<Json<Value>> {
    let handle = find(&state, &id)?;
    if message.role != "user" {
        return Err(ApiError::bad_request(format!(
            "only user messages can be sent, not '{}'",
            message.role
        )));
    }
    handle.send_message(message.text(), message.run).await?;
    Ok(success())
}

#[derive(Debug, Deserialize)]
struct EventQuery {
    page_id: Option<String>,
    limit: Option<usize>,
    kind: Option<String>,
    source: Option<String>,
    body: Option<String>,
    sort_order: Option<String>,
    #[serde(rename = "timestamp__gte")]
    timestamp_gte: Option<String>,
    #[serde(rename = "timestamp__lt")]
    timestamp_lt: Option<String>,
}

fn matching_events(handle: &Handle, q: &EventQuery) -> Vec<Value> {
    let view = handle.view();
    let mut items: Vec<Value> = view
        .events
        .iter()
        .filter(|e| event_matches(e, q))
        .filter_map(|e| serde_json::to_value(e).ok())
        .filter(|v| q.body.as_deref().is_none_or(|b| v.to_string().contains(b)))
        .collect();
    if q.sort_order.as_deref().is_some_and(|o| o.ends_with("DESC")) {
        items.reverse();
    }
    items
}

fn event_matches(e: &Event, q: &EventQuery) -> bool {
    let source = serde_json::to_value(e.source).ok();
    q.kind.as_deref().is_none_or(|k| e.kind() == k)
        && q.source
            .as_deref()
            .is_none_or(|s| source.as_ref().and_then(Value::as_str) == Some(s))
        && q.timestamp_gte
            .as_deref()
            .is_none_or(|t| e.timestamp.as_str() >= t)
        && q.timestamp_lt
            .as_deref()
            .is_none_or(|t| e.timestamp.as_str() < t)
}

async fn search_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<EventQuery>,
) -> ApiResult<Json<Value>> {
    let handle = find(&state, &id)?;
    Ok(Json(page(
        matching_events(&handle, &q),
        q.page_id.as_deref(),
        q.limit,
    )))
}

async fn count_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<EventQuery>,
) -> ApiResult<Json<usize>> {
    let handle = find(&state, &id)?;
    Ok(Json(matching_events(&handle, &q).len()))
}

async fn get_event(
    State(state): State<AppState>,
    Path((id, event_id)): Path<(String, String)>,
) -> ApiResult<Json<Event>> {
    let handle = find(&state, &id)?;
    let view = handle.view();
    let event = view.events.iter().find(|e| e.id == event_id).cloned();
    event
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("Event not found: {event_id}")))
}

async fn run(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    find(&state, &id)?.start_run()?;
    Ok(success())
}

async fn pause(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    find(&state, &id)?.pause().await?;
    Ok(success())
}

async fn condense(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    find(&state, &id)?.condense().await?;
    Ok(success())
}

async fn final_response(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let handle = find(&state, &id)?;
    Ok(Json(json!({"response": handle.final_response()})))
}

#[derive(Debug, Deserialize)]
struct SecretsRequest {
    secrets: BTreeMap<String, Value>,
}

async fn update_secrets(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<SecretsRequest>,
) -> ApiResult<Json<Value>> {
    let handle = find(&state, &id)?;
    handle.add_secrets(
        spec::secret_values(&body.secrets)
            .into_iter()
            .map(|(_, v)| v)
            .collect(),
    );
    Ok(success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_chain_through_next_page_id() {
        let items: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let first = page(items.clone(), None, Some(2));
        assert_eq!(first["items"], json!([0, 1]));
        assert_eq!(first["next_page_id"], "2");
        let last = page(items, Some("4"), Some(2));
        assert_eq!(last["items"], json!([4]));
        assert!(last["next_page_id"].is_null());
    }
}
