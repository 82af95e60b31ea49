//! Cross-cutting layers: request metrics, the JSON body of framework errors, panics, and
//! requests run again while the MySQL primary moves.

use std::any::Any;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ConnectionLost, NothingWritten, Unwritten};
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

/// First pause before a request the database took nothing of runs again; it doubles up to
/// [`LONGEST_WRITE_RETRY_PAUSE`].
const FIRST_WRITE_RETRY_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_WRITE_RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Runs a request again, for up to `--database-write-retry-window`, while its answer says
/// that the database took nothing of it ([`NothingWritten`]: no connection could be opened,
/// the server refused the write as read-only, or the transaction lost a deadlock): a
/// switchover or failover moves the primary within seconds, and clients then see a slower
/// answer instead of a 503.
///
/// ```text
/// request ─► buffer body ─► handler ─► NothingWritten? ─ no ──► response
///                              ▲              │ yes, within the window
///                              └─ pause ◄─────┘ (writer connections opened before: closed)
/// ```
///
/// Safe to repeat: the failing statement took nothing, and a handler's writes are one
/// transaction, which rolled back whole. Bodies larger than `--max-body-bytes` (refused
/// anyway) or of unknown length are passed through once.
pub async fn retry_unwritten(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let window = state.config.database.database_write_retry_window;
    let limit = state.config.max_body_bytes;
    let headers = request.headers();
    // No Content-Length and no Transfer-Encoding: no body (a GET, a DELETE).
    let declared = match headers.get(header::CONTENT_LENGTH) {
        Some(value) => value.to_str().ok().and_then(|v| v.parse::<usize>().ok()),
        None if headers.contains_key(header::TRANSFER_ENCODING) => None,
        None => Some(0),
    };
    if window.is_zero() || declared.is_none_or(|length| length > limit) {
        let response = next.run(request).await;
        if response.extensions().get::<ConnectionLost>().is_some() {
            state.db.writer_moved();
        }
        return response;
    }
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(body) => body,
        Err(_) => return ApiError::PayloadTooLarge.into_response(),
    };
    let started = Instant::now();
    let mut pause = FIRST_WRITE_RETRY_PAUSE;
    loop {
        let attempt = Request::from_parts(parts.clone(), axum::body::Body::from(body.clone()));
        let response = next.clone().run(attempt).await;
        if response.extensions().get::<ConnectionLost>().is_some() {
            state.db.writer_moved();
        }
        let Some(NothingWritten(why)) = response.extensions().get::<NothingWritten>().copied()
        else {
            return response;
        };
        if why == Unwritten::ReadOnly {
            state.db.writer_moved();
        }
        if started.elapsed() + pause > window {
            return response;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(LONGEST_WRITE_RETRY_PAUSE);
    }
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
