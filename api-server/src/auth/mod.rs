//! Access tokens for accounts: `POST /auth/token`. Table: `users` (credentials).
//! Tokens are verified by `http::auth` on every request, without the database.

pub mod handlers;
pub mod model;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Routes of this feature.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(handlers::create_token))
}
