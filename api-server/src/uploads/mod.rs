//! Uploads: clients send media straight to the object store through signed URLs.
//!
//! Endpoints: `POST /uploads` (signed PUTs, limits checked before any byte moves) and
//! `GET /config` (the limits, for clients to check first). Posts attach keys only after
//! `service::verify_media` checked them against the store; `sweep` deletes uploads never
//! attached. Table: `post_media` (owned by posts). Keys: `{prefix}media/{user_id}/{uuid}.{ext}`.
//!
//! The store (`store`) is an S3 bucket (`s3`) or a local directory (`local`). With the
//! directory, the API serves the signed URLs itself (`signing`):
//!
//! ```text
//! client ─POST /uploads─► API: {url, method: PUT, headers, object_key, expires_at}
//! client ─PUT  /api/v1/media/{key}?expires&type&length&sig─► API ─► <dir>/{key}
//! client ─POST /posts {media: [key]}─► API: HEAD <dir>/{key} (type, size, age)
//! client ─GET  /api/v1/media/{key}?expires&sig─► API ◄─ <dir>/{key}
//! ```

pub mod handlers;
pub mod local;
pub mod media;
pub mod model;
pub mod range;
pub mod s3;
pub mod service;
pub mod signing;
pub mod store;
pub mod sweep;

use axum::Router;
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Routes of this feature.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(handlers::create_uploads))
        .routes(routes!(handlers::get_limits))
}

/// The local directory's media routes, `GET` and `PUT /api/v1/media/{key}`
/// ([`signing::MEDIA_PATH`]). They answer 404
/// unless the store is a local directory. They stay out of the OpenAPI document (clients only
/// follow URLs the API signed, as they would S3's) and out of the rate limits and the request
/// timeout: the signed URL already authorises the request, and an upload may take long
/// (`put_media` bounds the wait for each chunk instead).
pub fn media_router() -> Router<AppState> {
    Router::new().route(
        &format!("{}/{{*key}}", signing::MEDIA_PATH),
        get(handlers::get_media).put(handlers::put_media),
    )
}
