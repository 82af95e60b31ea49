//! Uploads: clients send media straight to the object store through presigned URLs.
//!
//! Endpoints: `POST /uploads` (presigned PUTs, limits checked before any byte moves) and
//! `GET /config` (the limits, for clients to check first). Posts attach keys only after
//! `service::verify_media` checked them against the bucket; `sweep` deletes uploads never
//! attached. Table: `post_media` (owned by posts).

pub mod handlers;
pub mod media;
pub mod model;
pub mod service;
pub mod store;
pub mod sweep;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Routes of this feature.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::create_uploads))
        .routes(routes!(handlers::get_limits))
}
