//! Request and response of the token endpoint.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /auth/token`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Username or e-mail address.
    #[schema(min_length = 1, max_length = 254)]
    pub login: String,
    /// The account's password.
    #[schema(min_length = 1, max_length = 128, format = Password)]
    pub password: String,
}

/// An access token to send as `Authorization: Bearer <access_token>`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// The signed token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the token expires.
    pub expires_in: u64,
}
