//! Posts: writing, reading, editing and deleting, and an author's timeline.
//!
//! Endpoints: `POST /posts` (honours `Idempotency-Key`), `GET|PATCH|DELETE /posts/{id}`,
//! `GET /users/{id}/posts`. Tables: `posts`, `post_media`, `post_idempotency_keys`,
//! `users.post_count`. Redis: `post:{id}` (the post cache, see `cache.rs`).

pub mod cache;
pub mod handlers;
pub mod model;
pub mod service;
pub mod store;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Routes of this feature.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::create_post))
        .routes(routes!(
            handlers::get_post,
            handlers::update_post,
            handlers::delete_post
        ))
        .routes(routes!(handlers::list_user_posts))
}
