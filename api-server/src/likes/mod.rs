//! Likes: `PUT|DELETE /posts/{id}/like`, `GET /posts/{id}/likes`.
//!
//! ```text
//! likes ─► gathered by the writer task (`writer.rs`) into one MySQL transaction:
//!           insert/delete post_likes + append like_events, INCRBY likes:delta:{post} in
//!           Redis before the commit (shown count moves at once), one commit for the group
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
pub mod writer;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Routes of this feature.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::like_post, handlers::unlike_post))
        .routes(routes!(handlers::list_likes))
}
