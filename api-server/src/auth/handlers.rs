//! HTTP handler of the token endpoint.

use axum::extract::State;

use super::model::{TokenRequest, TokenResponse};
use crate::db;
use crate::error::{ApiError, ErrorBody, Result};
use crate::http::extract::Json;
use crate::state::AppState;
use crate::users::{password, store as users};

/// Exchange a username (or e-mail) and password for an access token.
#[utoipa::path(post, path = "/auth/token", tag = "auth",
    request_body = TokenRequest,
    responses(
        (status = 200, description = "A token", body = TokenResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Unknown login or wrong password", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "A field is missing", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn create_token(
    State(state): State<AppState>,
    Json(request): Json<TokenRequest>,
) -> Result<axum::Json<TokenResponse>> {
    if request.password.len() > 1024 {
        // Never spend argon2 time on an absurd input.
        return Err(ApiError::Unauthorized);
    }
    let credentials = users::find_credentials(state.db.writer(), request.login.trim()).await?;
    let (user_id, stored_hash) = match credentials {
        Some(found) => found,
        None => {
            // Spend the same time as a wrong password so logins cannot be probed by timing.
            let dummy = password::dummy_hash().await?;
            password::verify_password(request.password, dummy).await?;
            return Err(ApiError::Unauthorized);
        }
    };
    if !password::verify_password(request.password, stored_hash).await? {
        return Err(ApiError::Unauthorized);
    }
    users::touch_last_active(state.db.writer(), user_id, db::now()).await?;
    Ok(axum::Json(TokenResponse {
        access_token: state.tokens.issue(user_id)?,
        token_type: "Bearer".to_owned(),
        expires_in: state.tokens.ttl.as_secs(),
    }))
}
