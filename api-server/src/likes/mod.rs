//! Likes: `PUT|DELETE /posts/{id}/like`, `GET /posts/{id}/likes`.
//!
//! ```text
//! like ─► INSERT IGNORE post_likes + append like_events (one MySQL transaction)
//!      └► INCRBY likes:delta:{post} in Redis before the commit (shown count moves at once)
//! flusher ─► every interval: like_count = COUNT(post_likes) for posts with events,
//!            DEL their deltas, delete the events it read
//! ```
//! The `post_likes` row is the truth, so no like is lost if Redis loses its data; distinct
//! rows mean concurrent likers of one post never wait on one row lock.

pub mod cache;
pub mod flush;
pub mod handlers;
pub mod model;
pub mod store;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Routes of this feature.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::like_post, handlers::unlike_post))
        .routes(routes!(handlers::list_likes))
}
