//! Operations endpoints: `/healthz` (process alive), `/readyz` (database writer reachable),
//! `/metrics` (Prometheus text) and `/openapi.json` (the generated OpenAPI 3.1 document).

pub mod handlers;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use crate::state::AppState;

/// Routes of this feature; they stay out of the OpenAPI document on purpose (they are for
/// probes and scrapers, not API clients).
pub fn router(openapi_json: Arc<String>) -> Router<AppState> {
    Router::new()
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::readyz))
        .route("/metrics", get(handlers::metrics))
        .route(
            "/openapi.json",
            get(move || handlers::openapi(openapi_json.clone())),
        )
}
