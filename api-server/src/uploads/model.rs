//! Request and response types of uploads and of the published limits.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most files one `POST /uploads` may ask for (and most media on one post).
pub const MAX_FILES: usize = 10;
/// Longest file name accepted.
pub const MAX_FILE_NAME_CHARS: usize = 255;

/// `POST /uploads`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadRequest {
    /// The files to upload, 1-10.
    #[schema(min_items = 1, max_items = 10)]
    pub files: Vec<UploadFile>,
}

/// One file a client is about to upload.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadFile {
    /// The file's name on the client (1-255 characters); only echoed in errors.
    #[schema(min_length = 1, max_length = 255)]
    pub file_name: String,
    /// MIME type; one of `GET /config`'s `uploads.types`.
    pub content_type: String,
    /// Exact size in bytes; the upload must send exactly this many.
    #[schema(minimum = 1)]
    pub size: u64,
}

/// How to upload one file.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UploadTicket {
    /// Key to list in a post's `media` once the upload succeeded.
    pub object_key: String,
    /// Always `PUT`.
    pub method: String,
    /// Presigned URL to send the bytes to.
    pub url: String,
    /// Headers to send with exactly these values (Content-Type, Content-Length).
    pub headers: BTreeMap<String, String>,
    /// When the URL stops working.
    pub expires_at: DateTime<Utc>,
}

/// Query parameters of a signed media URL. All are optional here, so that a missing one is
/// refused like a wrong one: as a signature that does not match (403).
#[derive(Debug, Deserialize)]
pub struct SignedMediaQuery {
    /// Unix second at which the URL stops working.
    pub expires: Option<String>,
    /// Content-Type an upload must carry (PUT only).
    #[serde(rename = "type")]
    pub content_type: Option<String>,
    /// Exact size of an upload in bytes (PUT only).
    pub length: Option<String>,
    /// Hex HMAC-SHA256 over the method, key, expiry, type and length.
    pub sig: Option<String>,
}

/// `POST /uploads` response: one ticket per requested file, in order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UploadResponse {
    /// Tickets, in the order of the request's files.
    pub uploads: Vec<UploadTicket>,
}

/// An allowed upload type and its limit.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UploadTypeLimit {
    /// MIME type.
    pub content_type: String,
    /// Largest object of this type, in bytes.
    pub max_bytes: u64,
}

/// Upload limits.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UploadLimits {
    /// Whether this server accepts uploads at all.
    pub enabled: bool,
    /// Most files per request and per post.
    pub max_files: usize,
    /// Allowed types and their size limits.
    pub types: Vec<UploadTypeLimit>,
    /// Lifetime of an upload URL, in seconds.
    pub url_ttl_seconds: u64,
}

/// Post limits.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PostLimits {
    /// Most characters in a post.
    pub max_content_chars: usize,
    /// Most media on a post.
    pub max_media: usize,
}

/// Limits a client can check before sending anything (`GET /config`).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClientLimits {
    /// Uploads.
    pub uploads: UploadLimits,
    /// Posts.
    pub posts: PostLimits,
    /// Most characters in a comment.
    pub comment_max_content_chars: usize,
}
