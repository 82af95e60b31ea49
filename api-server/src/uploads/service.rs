//! Uploads' rules: planning presigned PUTs, checking keys before a post takes them, and
//! turning attached keys into URLs.

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::Utc;

use super::media::{self, KeyProblem};
use super::model::{MAX_FILE_NAME_CHARS, MAX_FILES, UploadFile, UploadTicket};
use crate::config::UploadConfig;
use crate::error::{ApiError, FieldErrors, Result};
use crate::posts::model::PostView;
use crate::state::AppState;

/// How long a client is told to wait when the object store is down.
const STORAGE_RETRY_AFTER: Duration = Duration::from_secs(5);

/// A media object checked against the store, ready to be attached to a post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedMedia {
    /// Its object key.
    pub key: String,
    /// Its MIME type.
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
}

fn storage_unavailable(error: &anyhow::Error) -> ApiError {
    tracing::warn!(error = format!("{error:#}"), "object store call failed");
    ApiError::Unavailable {
        what: "storage",
        retry_after: STORAGE_RETRY_AFTER,
    }
}

fn uploads_off() -> ApiError {
    ApiError::Unavailable {
        what: "uploads",
        retry_after: Duration::from_secs(3600),
    }
}

/// Checks every file of an upload request: count (400), type (415), declared size (413),
/// and names and empty files (422). Returns each file's allowed type, in order.
pub fn check_upload_files(
    config: &UploadConfig,
    files: &[UploadFile],
) -> Result<Vec<media::MediaType>> {
    if files.is_empty() || files.len() > MAX_FILES {
        return Err(ApiError::bad_request(
            "INVALID_FILE_COUNT",
            format!(
                "an upload request names 1-{MAX_FILES} files, not {}",
                files.len()
            ),
        ));
    }
    let mut types = Vec::with_capacity(files.len());
    let mut errors = FieldErrors::default();
    for (index, file) in files.iter().enumerate() {
        let field = format!("files[{index}]");
        let Some(media_type) = media::type_by_content_type(&file.content_type) else {
            return Err(ApiError::MediaTypeNotAllowed {
                field: format!("{field}.content_type"),
                content_type: file.content_type.clone(),
            });
        };
        let limit = media::max_bytes(config, media_type);
        if file.size > limit {
            return Err(ApiError::UploadTooLarge {
                field: format!("{field}.size"),
                size: file.size,
                limit,
            });
        }
        if file.size == 0 {
            errors.add(format!("{field}.size"), "must be at least 1 byte");
        }
        let name_chars = file.file_name.chars().count();
        if name_chars == 0
            || name_chars > MAX_FILE_NAME_CHARS
            || file.file_name.chars().any(char::is_control)
        {
            errors.add(
                format!("{field}.file_name"),
                format!("must be 1-{MAX_FILE_NAME_CHARS} characters without control characters"),
            );
        }
        types.push(media_type);
    }
    errors.into_result()?;
    Ok(types)
}

/// Signed PUTs for each file, under the caller's prefix.
pub async fn plan_uploads(
    state: &AppState,
    user_id: u64,
    files: &[UploadFile],
) -> Result<Vec<UploadTicket>> {
    let config = &state.config.uploads;
    let types = check_upload_files(config, files)?;
    let store = state.objects.as_ref().ok_or_else(uploads_off)?;
    let ttl = config.upload_url_ttl;
    let expires_at = Utc::now()
        + chrono::Duration::from_std(ttl).map_err(|error| ApiError::Internal(error.into()))?;
    let mut tickets = Vec::with_capacity(files.len());
    for (file, media_type) in files.iter().zip(types) {
        let key = media::new_object_key(config, user_id, media_type);
        let request = store
            .presign_put(&key, media_type.content_type, file.size, ttl)
            .await?;
        tickets.push(UploadTicket {
            object_key: key,
            method: "PUT".into(),
            url: request.url,
            headers: request.headers,
            expires_at,
        });
    }
    Ok(tickets)
}

/// Checks the keys a post is about to take: each under the caller's prefix, listed once,
/// present in the bucket with an allowed type and size, and young enough that the sweep
/// will not delete it (keys already on a live post are exempt from the age check). Any
/// failure is a 422 naming the key's position.
pub async fn verify_media(
    state: &AppState,
    user_id: u64,
    keys: &[String],
) -> Result<Vec<VerifiedMedia>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let config = &state.config.uploads;
    let mut errors = FieldErrors::default();
    let mut seen = HashSet::new();
    let mut candidates = Vec::new();
    for (index, key) in keys.iter().enumerate() {
        let field = format!("media[{index}]");
        if !seen.insert(key.as_str()) {
            errors.add(field, format!("`{key}` is listed twice"));
            continue;
        }
        match media::parse_own_key(config, user_id, key) {
            Ok(media_type) => candidates.push((index, key, media_type)),
            Err(KeyProblem::NotYours) => {
                errors.add(field, format!("`{key}` is not one of your uploads"));
            }
            Err(KeyProblem::Malformed) => {
                errors.add(field, format!("`{key}` is not an upload key"));
            }
        }
    }
    let Some(store) = &state.objects else {
        for (index, key, _) in candidates {
            errors.add(
                format!("media[{index}]"),
                format!("no uploaded object `{key}`"),
            );
        }
        errors.into_result()?;
        return Ok(Vec::new());
    };
    let mut lookups = Vec::with_capacity(candidates.len());
    let mut candidate_keys = Vec::with_capacity(candidates.len());
    for (_, key, _) in &candidates {
        lookups.push(store.head(key));
        candidate_keys.push(key.as_str());
    }
    let heads = futures::future::join_all(lookups).await;
    let attached: HashSet<String> =
        crate::posts::store::attached_keys(state.db.writer(), &candidate_keys)
            .await?
            .into_iter()
            .collect();
    let attach_window = attach_window(config);
    let mut verified = Vec::with_capacity(candidates.len());
    for ((index, key, media_type), head) in candidates.into_iter().zip(heads) {
        let field = format!("media[{index}]");
        let head = head.map_err(|error| storage_unavailable(&error))?;
        let Some(object) = head else {
            errors.add(field, format!("no uploaded object `{key}`"));
            continue;
        };
        let stored_type = object.content_type.as_deref().unwrap_or_default();
        if !stored_type.eq_ignore_ascii_case(media_type.content_type) {
            errors.add(
                field,
                format!(
                    "`{key}` holds `{stored_type}`, not the `{}` its name promises",
                    media_type.content_type
                ),
            );
            continue;
        }
        let limit = media::max_bytes(config, media_type);
        if object.size > limit || object.size == 0 {
            errors.add(
                field,
                format!("`{key}` is {} bytes; 1-{limit} are allowed", object.size),
            );
            continue;
        }
        let too_old = object
            .last_modified
            .is_none_or(|written| Utc::now() - written > attach_window);
        if too_old && !attached.contains(key.as_str()) {
            errors.add(
                field,
                format!("`{key}` was uploaded too long ago to attach; upload it again"),
            );
            continue;
        }
        verified.push(VerifiedMedia {
            key: key.clone(),
            content_type: media_type.content_type.to_owned(),
            size: object.size,
        });
    }
    errors.into_result()?;
    Ok(verified)
}

/// How old an unattached upload may be and still be attached: three quarters of the age
/// at which the sweep deletes it, so a post never takes an object the sweep is removing.
pub fn attach_window(config: &UploadConfig) -> chrono::Duration {
    chrono::Duration::from_std(config.upload_unattached_max_age * 3 / 4)
        .unwrap_or(chrono::Duration::MAX)
}

/// Fills each media object's URL: the public base URL when configured, else a signed GET
/// (S3's or the local directory's) whose start is rounded so a URL stays the same for half
/// its lifetime (clients and CDNs can cache it).
pub async fn sign_media_urls(state: &AppState, posts: &mut [PostView]) {
    let config = &state.config.uploads;
    let ttl = config.media_url_ttl;
    let half = (ttl.as_secs() / 2).max(1);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let start = UNIX_EPOCH + Duration::from_secs(now - now % half);
    for item in posts.iter_mut().flat_map(|post| post.media.iter_mut()) {
        item.url = match (&config.media_public_base_url, &state.objects) {
            (Some(base), _) => format!("{}/{}", base.trim_end_matches('/'), item.key),
            (None, Some(store)) => match store.presign_get(&item.key, start, ttl).await {
                Ok(url) => url,
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        key = item.key,
                        "cannot sign a media URL"
                    );
                    String::new()
                }
            },
            (None, None) => String::new(),
        };
    }
}
