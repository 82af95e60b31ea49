//! Response types of likes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The like relation after a like or unlike.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LikeState {
    /// Whether the caller now likes the post.
    pub liked: bool,
    /// The post's like count after the change.
    pub like_count: u64,
}
