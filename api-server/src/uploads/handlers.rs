//! HTTP handlers of uploads.

use axum::extract::State;

use super::media::{ALLOWED_TYPES, max_bytes};
use super::model::{
    ClientLimits, MAX_FILES, PostLimits, UploadLimits, UploadRequest, UploadResponse,
    UploadTypeLimit,
};
use super::service;
use crate::comments::model::MAX_COMMENT_CHARS;
use crate::error::{ErrorBody, Result};
use crate::http::auth::AuthUser;
use crate::http::extract::Json;
use crate::posts::model::{MAX_CONTENT_CHARS, MAX_MEDIA};
use crate::state::AppState;

/// Get presigned URLs to upload media to.
///
/// Send each file with a plain HTTP `PUT` to its `url`, with exactly the listed `headers`,
/// before `expires_at`; then list its `object_key` in a post's `media`.
#[utoipa::path(post, path = "/uploads", tag = "uploads",
    security(("bearer" = [])),
    request_body = UploadRequest,
    responses(
        (status = 200, description = "One upload ticket per file", body = UploadResponse),
        (status = 400, description = "Malformed JSON, or not 1-10 files", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 413, description = "A declared size is over its type's limit", body = ErrorBody),
        (status = 415, description = "A type is not allowed, or the body is not JSON", body = ErrorBody),
        (status = 422, description = "A file name is unusable or a size is 0", body = ErrorBody),
        (status = 503, description = "Uploads are not configured on this server", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = user.id))]
pub async fn create_uploads(
    State(state): State<AppState>,
    user: AuthUser,
    Json(request): Json<UploadRequest>,
) -> Result<axum::Json<UploadResponse>> {
    let uploads = service::plan_uploads(&state, user.id, &request.files).await?;
    Ok(axum::Json(UploadResponse { uploads }))
}

/// Limits clients can check before sending anything.
#[utoipa::path(get, path = "/config", tag = "uploads",
    responses((status = 200, description = "The server's limits", body = ClientLimits)))]
pub async fn get_limits(State(state): State<AppState>) -> axum::Json<ClientLimits> {
    let config = &state.config.uploads;
    axum::Json(ClientLimits {
        uploads: UploadLimits {
            enabled: state.objects.is_some(),
            max_files: MAX_FILES,
            types: ALLOWED_TYPES
                .into_iter()
                .map(|media_type| UploadTypeLimit {
                    content_type: media_type.content_type.to_owned(),
                    max_bytes: max_bytes(config, media_type),
                })
                .collect(),
            url_ttl_seconds: config.upload_url_ttl.as_secs(),
        },
        posts: PostLimits {
            max_content_chars: MAX_CONTENT_CHARS,
            max_media: MAX_MEDIA,
        },
        comment_max_content_chars: MAX_COMMENT_CHARS,
    })
}
