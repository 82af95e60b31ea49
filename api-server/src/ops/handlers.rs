//! Handlers of the operations endpoints.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::{ApiError, Result};
use crate::state::AppState;

/// Liveness: the process answers.
pub async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(json!({ "status": "ok" }))
}

/// Readiness: the MySQL writer answers within two seconds. Redis is reported, not required:
/// feeds and likes have MySQL fallbacks.
pub async fn readyz(State(state): State<AppState>) -> Result<axum::Json<serde_json::Value>> {
    let redis = match &state.kv {
        None => "not configured",
        Some(kv) => match kv.ping().await {
            Ok(()) => "up",
            Err(_) => "down",
        },
    };
    match tokio::time::timeout(Duration::from_secs(2), state.db.ping_writer()).await {
        Ok(Ok(())) => Ok(axum::Json(
            json!({ "status": "ready", "mysql": "up", "redis": redis }),
        )),
        Ok(Err(error)) => {
            tracing::warn!(%error, "not ready: MySQL writer unreachable");
            Err(mysql_unavailable())
        }
        Err(_) => {
            tracing::warn!("not ready: MySQL writer did not answer in time");
            Err(mysql_unavailable())
        }
    }
}

fn mysql_unavailable() -> ApiError {
    ApiError::Unavailable {
        what: "mysql",
        retry_after: Duration::from_secs(5),
    }
}

/// Prometheus metrics in the text exposition format.
pub async fn metrics(State(state): State<AppState>) -> Result<Response> {
    let body = state
        .metrics
        .render(&state.db, state.kv.as_ref())
        .map_err(|error| ApiError::Internal(error.into()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response())
}

/// The OpenAPI document.
pub async fn openapi(document: Arc<String>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document.as_str().to_owned(),
    )
        .into_response()
}
