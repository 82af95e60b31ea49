//! Cross-cutting layers: request metrics, the JSON body of framework errors, panics.

use std::any::Any;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::state::AppState;

/// Counts and times every request by method, matched route and status.
pub async fn record_metrics(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    // The matched route pattern, never the raw URI: ids in paths would explode the series.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    let labels = [method.as_str(), route.as_str(), status.as_str()];
    state.metrics.http_requests.with_label_values(&labels).inc();
    state
        .metrics
        .http_duration
        .with_label_values(&labels)
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Gives the framework's own bodiless 404 and 405 answers the JSON error body, keeping their
/// headers (`Allow` on a 405).
pub async fn json_framework_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if response.headers().contains_key(header::CONTENT_TYPE)
        || !(status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED)
    {
        return response;
    }
    let error = if status == StatusCode::NOT_FOUND {
        ApiError::RouteNotFound
    } else {
        ApiError::MethodNotAllowed
    };
    let (parts, _) = response.into_parts();
    let mut json = error.into_response();
    for (name, value) in &parts.headers {
        json.headers_mut()
            .entry(name)
            .or_insert_with(|| value.clone());
    }
    json
}

/// Answers a panic with the JSON 500 body; the panic message is logged, never sent.
pub fn panic_response(payload: Box<dyn Any + Send + 'static>) -> Response {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    ApiError::Internal(anyhow::anyhow!("handler panicked: {message}")).into_response()
}
