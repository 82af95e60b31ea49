//! The social graph: following and unfollowing, follower and following lists.
//!
//! Endpoints: `PUT|DELETE /users/{id}/follow`, `GET /users/{id}/followers`,
//! `GET /users/{id}/following`. Tables: `follows`, counters on `users`.

pub mod handlers;
pub mod model;
pub mod store;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Routes of this feature.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::follow_user, handlers::unfollow_user))
        .routes(routes!(handlers::list_followers))
        .routes(routes!(handlers::list_following))
}
