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

/// How long `/readyz` waits for Redis' answer (the database's: two seconds).
const REDIS_REPORT_WITHIN: Duration = Duration::from_secs(1);

/// Readiness: the database writer answers within two seconds. Redis is reported, not
/// required: feeds and likes have database fallbacks. The answer names what runs:
/// `{"status": "ready", "database": "mysql", "mysql": "up", "redis": "up"}`, or on the
/// embedded default `{"database": "sqlite", "sqlite": "up", "redis": "in-process"}`.
pub async fn readyz(State(state): State<AppState>) -> Result<axum::Json<serde_json::Value>> {
    let redis = match &state.kv {
        None => "not configured",
        Some(kv) if kv.is_in_process() => "in-process",
        // Reported, not required: a Redis that does not answer at once is "down", and the
        // answer still comes within the probe's time.
        Some(kv) => match tokio::time::timeout(REDIS_REPORT_WITHIN, kv.ping()).await {
            Ok(Ok(())) => "up",
            Ok(Err(_)) | Err(_) => "down",
        },
    };
    let database = state.db.backend().name();
    match tokio::time::timeout(Duration::from_secs(2), state.db.ping_writer()).await {
        Ok(Ok(())) => {
            let mut ready = json!({ "status": "ready", "database": database, "redis": redis });
            ready[database] = json!("up");
            Ok(axum::Json(ready))
        }
        Ok(Err(error)) => {
            tracing::warn!(%error, database, "not ready: the database writer is unreachable");
            Err(database_unavailable(database))
        }
        Err(_) => {
            tracing::warn!(
                database,
                "not ready: the database writer did not answer in time"
            );
            Err(database_unavailable(database))
        }
    }
}

/// 503 `MYSQL_UNAVAILABLE` (or `SQLITE_UNAVAILABLE`).
fn database_unavailable(database: &'static str) -> ApiError {
    ApiError::Unavailable {
        what: database,
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
