//! Response types of the social graph.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The follow relation after a follow or unfollow.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FollowState {
    /// Whether the caller now follows the user.
    pub following: bool,
    /// The user's follower count after the change.
    pub follower_count: u64,
}
