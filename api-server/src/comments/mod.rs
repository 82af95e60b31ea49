//! Comments on posts.
//!
//! Endpoints: `POST|GET /posts/{id}/comments`, `GET|PATCH|DELETE /comments/{id}`.
//! Tables: `comments`, `posts.comment_count`. A comment may be deleted by its author or by
//! the author of the post it is on; only its author may edit it.

pub mod handlers;
pub mod model;
pub mod store;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Routes of this feature.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::create_comment, handlers::list_comments))
        .routes(routes!(
            handlers::get_comment,
            handlers::update_comment,
            handlers::delete_comment
        ))
}
