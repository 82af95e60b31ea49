//! Likes: `PUT|DELETE /posts/{id}/like`, `GET /posts/{id}/likes`.
//!
//! ```text
//! like ─► INSERT IGNORE post_likes + mark like_count_pending (one MySQL transaction)
//!      └► INCRBY likes:delta:{post} in Redis (shown count moves at once)
//! flusher ─► every interval: DEL delta, clear mark, like_count = COUNT(post_likes)
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
