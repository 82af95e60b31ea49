//! The operator's HTTP server (`--metrics-addr`): every replica serves it, leader or not.
//!
//! ```text
//! GET  /metrics                      Prometheus text (operator_reconcile_*, operator_failovers_total, operator_leader)
//! GET  /healthz                      200 while the process runs (liveness and readiness probes)
//! POST /hooks/orchestrator/failover  Orchestrator's failover report (failover::hook; Bearer token)
//! ```
//!
//! A follower may take a hook call too: recording is a conditional status write, safe from
//! any replica.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};

use crate::context::Context;
use crate::failover::failover_hook;

/// A hook body is a few hundred bytes.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The routes, on the shared context.
pub fn router(context: Arc<Context>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/hooks/orchestrator/failover", post(failover_hook))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(context)
}

async fn metrics(State(context): State<Arc<Context>>) -> String {
    context.metrics.render()
}

/// Serves the routes on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    context: Arc<Context>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(context))
        .with_graceful_shutdown(shutdown)
        .await
}
