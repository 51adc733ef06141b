//! Confirmation on the agent-server, OpenHands' routes: `POST .../events/respond_to_confirmation
//! {accept, reason}`, `POST .../confirmation_policy {policy}` and `POST .../security_analyzer
//! {security_analyzer}`.

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use super::{find, success};
use crate::agent::security::{ConfirmationPolicy, SecurityAnalyzer};
use crate::server::error::{ApiError, ApiResult};
use crate::server::AppState;

/// OpenHands' `ConfirmationResponseRequest`.
#[derive(Debug, Deserialize)]
pub struct ConfirmationResponse {
    accept: bool,
    #[serde(default = "default_reason")]
    reason: String,
}

fn default_reason() -> String {
    "User rejected the action.".into()
}

pub async fn respond_to_confirmation(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<ConfirmationResponse>,
) -> ApiResult<Json<Value>> {
    find(&state, &id)?
        .respond_to_confirmation(body.accept, &body.reason)
        .await?;
    Ok(success())
}

#[derive(Debug, Deserialize)]
pub struct SetPolicy {
    policy: Value,
}

pub async fn set_confirmation_policy(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<SetPolicy>,
) -> ApiResult<Json<Value>> {
    let handle = find(&state, &id)?;
    let policy = ConfirmationPolicy::from_wire(&body.policy).map_err(unprocessable)?;
    handle.update_security(|s| s.policy = policy);
    Ok(success())
}

#[derive(Debug, Deserialize)]
pub struct SetAnalyzer {
    security_analyzer: Value,
}

pub async fn set_security_analyzer(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<SetAnalyzer>,
) -> ApiResult<Json<Value>> {
    let handle = find(&state, &id)?;
    let analyzer = SecurityAnalyzer::from_wire(&body.security_analyzer).map_err(unprocessable)?;
    handle.update_security(|s| s.analyzer = analyzer);
    Ok(success())
}

fn unprocessable(detail: String) -> ApiError {
    ApiError::new(axum::http::StatusCode::UNPROCESSABLE_ENTITY, detail)
}
