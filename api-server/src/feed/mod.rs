//! Home feeds: `GET /feed`, fan-out on write, rebuilds, follow backfill and unfollow removal.
//!
//! Faults: fan-outs retry with backoff, then wait parked in the recovery queue
//! (`recovery.rs`) until Redis answers; reads fall back to MySQL behind a concurrency limit.
//!
//! Tables: `feed_outbox` (fan-out jobs), `follows`, `posts`, `users.last_active_at`.
//! Redis: `feed:{user}` sorted sets (see `cache.rs` for the completeness marker).

pub mod cache;
pub mod fanout;
pub mod handlers;
pub mod jobs;
pub mod recovery;
pub mod service;
pub mod store;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Routes of this feature.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(handlers::get_feed))
}
