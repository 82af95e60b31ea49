//! Cross-cutting HTTP pieces: the router that merges every feature, authentication,
//! extractors with JSON errors, cursor paging and middleware.

pub mod auth;
pub mod extract;
pub mod middleware;
pub mod pagination;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;
use crate::{auth as tokens, comments, feed, follows, likes, ops, posts, uploads, users};

/// The whole HTTP surface: `/api/v1/...`, operations endpoints and `/openapi.json`.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = OpenApiRouter::with_openapi(crate::openapi::base())
        .nest(
            "/api/v1",
            OpenApiRouter::new()
                .merge(users::router())
                .merge(tokens::router())
                .merge(follows::router())
                .merge(posts::router())
                .merge(comments::router())
                .merge(likes::router())
                .merge(feed::router())
                .merge(uploads::router()),
        )
        .split_for_parts();
    let openapi_json = Arc::new(openapi.to_pretty_json().unwrap_or_default());
    let config = state.config.clone();
    // Route layers run after routing, so they see the matched route. A request run again
    // while the primary moves counts once against the rate limits.
    let api = api
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::retry_unwritten,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::ratelimit::middleware::enforce_rate_limits,
        ));
    // The request timeout wraps every route but the media ones, whose uploads may take
    // longer (they bound the wait for each chunk instead); being inside the metrics layer,
    // timed-out requests are counted with their 503.
    let timed = api
        .merge(ops::router(openapi_json))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            config.request_timeout,
        ));
    timed
        .merge(uploads::media_router())
        .layer(axum::middleware::from_fn(middleware::json_framework_errors))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::record_metrics,
        ))
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        // 5xx answers are logged where they arise (an internal error once, with its cause;
        // an outage by the breaker or the pool): one more line per failed request would
        // flood the log exactly when a dependency is down.
        .layer(TraceLayer::new_for_http().on_failure(DefaultOnFailure::new().level(Level::DEBUG)))
        .with_state(state)
}
