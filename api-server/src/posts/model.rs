//! Request and response types of posts, and the rules their fields follow.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::error::{ApiError, FieldErrors};
use crate::users::model::UserSummary;

/// Most characters in a post.
pub const MAX_CONTENT_CHARS: usize = 5000;
/// Most media objects on one post.
pub const MAX_MEDIA: usize = 10;

/// `POST /posts`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePostRequest {
    /// 1-5000 characters, not only whitespace.
    #[schema(min_length = 1, max_length = 5000)]
    pub content: String,
    /// Object keys returned by `POST /uploads`, at most 10.
    #[serde(default)]
    #[schema(max_items = 10)]
    pub media: Vec<String>,
}

/// `PATCH /posts/{id}`: fields left out stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePostRequest {
    /// New text, 1-5000 characters.
    #[schema(min_length = 1, max_length = 5000)]
    pub content: Option<String>,
    /// New media list, replacing the old one; at most 10 keys.
    #[schema(max_items = 10)]
    pub media: Option<Vec<String>>,
}

/// Checks post text: 1-5000 characters with something besides whitespace.
pub fn check_content(errors: &mut FieldErrors, field: &str, content: &str, max_chars: usize) {
    if content.trim().is_empty() {
        errors.add(field, "must not be empty");
    } else if content.chars().count() > max_chars {
        errors.add(field, format!("must be at most {max_chars} characters"));
    }
}

/// Checks a media key list's length; the keys themselves are checked against the bucket.
pub fn check_media_count(errors: &mut FieldErrors, media: &[String]) {
    if media.len() > MAX_MEDIA {
        errors.add("media", format!("at most {MAX_MEDIA} media objects"));
    }
}

impl CreatePostRequest {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut errors = FieldErrors::default();
        check_content(&mut errors, "content", &self.content, MAX_CONTENT_CHARS);
        check_media_count(&mut errors, &self.media);
        errors.into_result()
    }

    /// A digest of the request, to tell a retry from a different request under one
    /// Idempotency-Key.
    pub fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.content.as_bytes());
        for key in &self.media {
            hasher.update([0u8]);
            hasher.update(key.as_bytes());
        }
        hasher
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

impl UpdatePostRequest {
    /// Checks every present field.
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut errors = FieldErrors::default();
        if let Some(content) = &self.content {
            check_content(&mut errors, "content", content, MAX_CONTENT_CHARS);
        }
        if let Some(media) = &self.media {
            check_media_count(&mut errors, media);
        }
        errors.into_result()
    }
}

/// Checks an `Idempotency-Key` header value: 1-255 visible ASCII characters.
pub fn check_idempotency_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request(
            "INVALID_IDEMPOTENCY_KEY",
            "Idempotency-Key must be 1-255 visible ASCII characters",
        ));
    }
    Ok(())
}

/// A media object on a post.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MediaView {
    /// Object key (list it again in `PATCH /posts/{id}` to keep the object).
    pub key: String,
    /// Where the client fetches the bytes (a presigned URL expires; fetch the post again).
    pub url: String,
    /// MIME type, e.g. `image/png`.
    #[serde(rename = "type")]
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
}

/// A post as clients see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PostView {
    /// Post id (below 2^53).
    pub id: u64,
    /// Who wrote it.
    pub author: UserSummary,
    /// The text.
    pub content: String,
    /// Attached media, in order.
    pub media: Vec<MediaView>,
    /// When it was written (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// When it was last edited, if ever.
    pub edited_at: Option<DateTime<Utc>>,
    /// Likes.
    pub like_count: u64,
    /// Comments.
    pub comment_count: u64,
    /// Whether the caller likes it (false when anonymous).
    pub liked_by_me: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_rules() {
        let mut errors = FieldErrors::default();
        check_content(&mut errors, "content", "   ", MAX_CONTENT_CHARS);
        check_content(&mut errors, "other", &"é".repeat(5000), MAX_CONTENT_CHARS);
        assert_eq!(errors.0.len(), 1, "5000 multi-byte characters are allowed");
        check_content(&mut errors, "long", &"a".repeat(5001), MAX_CONTENT_CHARS);
        assert!(errors.0.contains_key("long"));
    }

    #[test]
    fn fingerprint_tells_requests_apart() {
        let a = CreatePostRequest {
            content: "hi".into(),
            media: vec![],
        };
        let b = CreatePostRequest {
            content: "hi".into(),
            media: vec!["k".into()],
        };
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a.fingerprint().len(), 64);
    }

    #[test]
    fn idempotency_keys_are_visible_ascii() {
        assert!(check_idempotency_key("abc-123").is_ok());
        assert!(check_idempotency_key("").is_err());
        assert!(check_idempotency_key("has space").is_err());
    }
}
