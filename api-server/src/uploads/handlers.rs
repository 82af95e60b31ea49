//! HTTP handlers of uploads, and of the local directory's signed media URLs.

use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_SECURITY_POLICY,
    CONTENT_TYPE, RANGE, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::local::{LocalDir, WriteError, validate_key};
use super::media::{ALLOWED_TYPES, max_bytes};
use super::model::{
    ClientLimits, MAX_FILES, PostLimits, SignedMediaQuery, UploadLimits, UploadRequest,
    UploadResponse, UploadTypeLimit,
};
use super::range::{ByteRange, byte_range};
use super::service;
use super::signing::{Grant, SignatureError, unix_secs};
use super::store::ObjectStore;
use crate::comments::model::MAX_COMMENT_CHARS;
use crate::error::{ApiError, ErrorBody, Result};
use crate::http::auth::AuthUser;
use crate::http::extract::{Json, Path};
use crate::posts::model::{MAX_CONTENT_CHARS, MAX_MEDIA};
use crate::state::AppState;

/// Get signed URLs to upload media to.
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

/// Store an upload in the local directory, through a URL `POST /uploads` signed.
///
/// Refused: a missing or wrong signature or parameter (403 `SIGNATURE_INVALID`), an expired
/// URL (403 `URL_EXPIRED`), a Content-Type or Content-Length other than the signed ones (403
/// `CONTENT_TYPE_MISMATCH`, `CONTENT_LENGTH_MISMATCH`), a body of another length (400
/// `BODY_LENGTH_MISMATCH`) and an unsafe key (400 `INVALID_MEDIA_KEY`). Nothing is stored
/// unless all of the body arrived.
#[tracing::instrument(skip_all, fields(key = %key))]
pub async fn put_media(
    State(state): State<AppState>,
    Path(key): Path<String>,
    query: std::result::Result<Query<SignedMediaQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode> {
    let local = local_dir(&state)?;
    check_key(&key)?;
    let Query(query) = query.map_err(|_| ApiError::SignatureInvalid)?;
    let expires = signed_number(query.expires.as_deref())?;
    let length = signed_number(query.length.as_deref())?;
    let content_type = query
        .content_type
        .as_deref()
        .ok_or(ApiError::SignatureInvalid)?;
    let signature = query.sig.as_deref().ok_or(ApiError::SignatureInvalid)?;
    local
        .verify(
            &key,
            expires,
            Grant::Put {
                content_type,
                length,
            },
            signature,
        )
        .map_err(refused)?;
    let sent_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if !sent_type.is_some_and(|sent| sent.trim().eq_ignore_ascii_case(content_type)) {
        return Err(ApiError::SignedHeaderMismatch {
            header: "Content-Type",
            expected: content_type.to_owned(),
        });
    }
    let sent_length = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if sent_length != Some(length) {
        return Err(ApiError::SignedHeaderMismatch {
            header: "Content-Length",
            expected: length.to_string(),
        });
    }
    let idle_timeout = state.config.request_timeout;
    // The body may take until the URL expires, and one more URL lifetime after that (a large
    // video sent just before expiry over a slow link).
    let until_expiry = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|now| Duration::from_secs(expires).checked_sub(now))
        .unwrap_or_default();
    let budget = until_expiry + state.config.uploads.upload_url_ttl;
    local
        .write(
            &key,
            content_type,
            length,
            body.into_data_stream(),
            idle_timeout,
            budget,
        )
        .await
        .map_err(|error| match error {
            WriteError::TooLong => ApiError::bad_request(
                "BODY_LENGTH_MISMATCH",
                format!("the body is longer than the signed {length} bytes"),
            ),
            WriteError::Incomplete { received } => ApiError::bad_request(
                "BODY_LENGTH_MISMATCH",
                format!("the body ended after {received} of the signed {length} bytes"),
            ),
            WriteError::Stalled => ApiError::bad_request(
                "UPLOAD_STALLED",
                format!(
                    "no bytes arrived for {} s; the upload was dropped",
                    idle_timeout.as_secs()
                ),
            ),
            WriteError::TooSlow => ApiError::bad_request(
                "UPLOAD_TOO_SLOW",
                format!(
                    "the body did not arrive within {} s; the upload was dropped",
                    budget.as_secs()
                ),
            ),
            WriteError::Io(error) => ApiError::Internal(error),
        })?;
    Ok(StatusCode::OK)
}

/// Serve media from the local directory, through a URL a post view signed; one byte `Range`
/// is honoured (206, or 416 `RANGE_NOT_SATISFIABLE` past the end), so video can seek.
///
/// Refused like `put_media`; 404 `MEDIA_NOT_FOUND` when nothing is stored at the key.
#[tracing::instrument(skip_all, fields(key = %key))]
pub async fn get_media(
    State(state): State<AppState>,
    Path(key): Path<String>,
    query: std::result::Result<Query<SignedMediaQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response> {
    let local = local_dir(&state)?;
    check_key(&key)?;
    let Query(query) = query.map_err(|_| ApiError::SignatureInvalid)?;
    let expires = signed_number(query.expires.as_deref())?;
    let signature = query.sig.as_deref().ok_or(ApiError::SignatureInvalid)?;
    local
        .verify(&key, expires, Grant::Get, signature)
        .map_err(refused)?;
    let (mut file, info) = local.open(&key).await?.ok_or(ApiError::NotFound("media"))?;
    let content_type = info
        .content_type
        .as_deref()
        .and_then(|value| HeaderValue::from_str(value).ok())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let max_age = expires.saturating_sub(unix_secs(SystemTime::now()));
    let requested = headers.get(RANGE).and_then(|value| value.to_str().ok());
    let mut response = match byte_range(requested, info.size) {
        ByteRange::Whole => {
            let mut response = Body::from_stream(ReaderStream::new(file)).into_response();
            response
                .headers_mut()
                .insert(CONTENT_LENGTH, HeaderValue::from(info.size));
            response
        }
        ByteRange::Part { first, last } => {
            file.seek(std::io::SeekFrom::Start(first))
                .await
                .map_err(|error| ApiError::Internal(error.into()))?;
            let length = last - first + 1;
            let part = ReaderStream::new(file.take(length));
            let mut response =
                (StatusCode::PARTIAL_CONTENT, Body::from_stream(part)).into_response();
            let headers = response.headers_mut();
            headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
            if let Ok(value) = HeaderValue::from_str(&format!("bytes {first}-{last}/{}", info.size))
            {
                headers.insert(CONTENT_RANGE, value);
            }
            response
        }
        ByteRange::Unsatisfiable => {
            let mut response = ApiError::RangeNotSatisfiable { size: info.size }.into_response();
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{}", info.size)) {
                response.headers_mut().insert(CONTENT_RANGE, value);
            }
            return Ok(response);
        }
    };
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, content_type);
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // Cacheable until the URL expires; never sniffed or run as anything but media, since it
    // is served from the API's own origin.
    if let Ok(value) = HeaderValue::from_str(&format!("private, max-age={max_age}")) {
        headers.insert(CACHE_CONTROL, value);
    }
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    Ok(response)
}

/// The local directory, or 404 when the store is S3 or there is none.
fn local_dir(state: &AppState) -> Result<&LocalDir> {
    state
        .objects
        .as_ref()
        .and_then(ObjectStore::local_dir)
        .ok_or(ApiError::RouteNotFound)
}

fn check_key(key: &str) -> Result<()> {
    validate_key(key).map_err(|problem| {
        ApiError::bad_request(
            "INVALID_MEDIA_KEY",
            format!("`{key}` is not a media key: {problem}"),
        )
    })
}

/// A signed number; anything but one means the URL is not one the API signed.
fn signed_number(value: Option<&str>) -> Result<u64> {
    value
        .and_then(|value| value.parse().ok())
        .ok_or(ApiError::SignatureInvalid)
}

fn refused(error: SignatureError) -> ApiError {
    match error {
        SignatureError::Invalid => ApiError::SignatureInvalid,
        SignatureError::Expired => ApiError::UrlExpired,
    }
}
