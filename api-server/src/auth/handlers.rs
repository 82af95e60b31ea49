//! HTTP handler of the token endpoint.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;

use super::model::{TokenRequest, TokenResponse};
use crate::db;
use crate::error::{ApiError, ErrorBody, Result};
use crate::http::extract::Json;
use crate::ratelimit::middleware::client_ip_of;
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
        (status = 429, description = "Too many failed logins for this account from this address, or from this address; see Retry-After", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all)]
pub async fn create_token(
    State(state): State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(request): Json<TokenRequest>,
) -> Result<axum::Json<TokenResponse>> {
    let limiter = &state.rate_limiter;
    let ip = client_ip_of(
        &headers,
        Some(&peer),
        limiter.config.rate_limit_trust_forwarded_for,
    );
    let login = request.login.trim();
    // Before the password is looked at: a guesser past the limit learns nothing more.
    limiter
        .login_allowed(login, ip)
        .await
        .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
    if request.password.len() > 1024 {
        // Never spend argon2 time on an absurd input.
        limiter.login_failed(login, ip).await;
        return Err(ApiError::Unauthorized);
    }
    let credentials = users::find_credentials(state.db.writer(), login).await?;
    let (user_id, stored_hash) = match credentials {
        Some(found) => found,
        None => {
            // Spend the same time as a wrong password so logins cannot be probed by timing.
            let dummy = password::dummy_hash().await?;
            password::verify_password(request.password, dummy).await?;
            limiter.login_failed(login, ip).await;
            return Err(ApiError::Unauthorized);
        }
    };
    if !password::verify_password(request.password, stored_hash).await? {
        limiter.login_failed(login, ip).await;
        return Err(ApiError::Unauthorized);
    }
    limiter.login_succeeded(login, ip).await;
    users::touch_last_active(state.db.writer(), user_id, db::now()).await?;
    Ok(axum::Json(TokenResponse {
        access_token: state.tokens.issue(user_id)?,
        token_type: "Bearer".to_owned(),
        expires_in: state.tokens.ttl.as_secs(),
    }))
}
