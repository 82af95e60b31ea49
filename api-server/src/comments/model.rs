//! Request and response types of comments.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{ApiError, FieldErrors};
use crate::posts::model::check_content;
use crate::users::model::UserSummary;

/// Most characters in a comment.
pub const MAX_COMMENT_CHARS: usize = 2000;

/// `POST /posts/{id}/comments` and `PATCH /comments/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentRequest {
    /// 1-2000 characters, not only whitespace.
    #[schema(min_length = 1, max_length = 2000)]
    pub content: String,
}

impl CommentRequest {
    /// Checks the text.
    pub fn validate(&self) -> Result<(), ApiError> {
        let mut errors = FieldErrors::default();
        check_content(&mut errors, "content", &self.content, MAX_COMMENT_CHARS);
        errors.into_result()
    }
}

/// A comment as clients see it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CommentView {
    /// Comment id.
    pub id: u64,
    /// The post it belongs to.
    pub post_id: u64,
    /// Who wrote it.
    pub author: UserSummary,
    /// The text.
    pub content: String,
    /// When it was written (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// When it was last edited, if ever.
    pub edited_at: Option<DateTime<Utc>>,
}
