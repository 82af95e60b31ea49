//! Accounts: registration, profiles, search.
//!
//! Endpoints: `POST /users`, `GET /users?q=`, `GET /users/{id}` (id or username),
//! `GET /users/me`, `PATCH /users/me`. Table: `users`.

pub mod handlers;
pub mod model;
pub mod password;
pub mod store;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Routes of this feature.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::register_user, handlers::search_users))
        .routes(routes!(handlers::get_me, handlers::update_me))
        .routes(routes!(handlers::get_user))
}
