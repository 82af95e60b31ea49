//! Access tokens: HS256 JWTs whose `sub` is the user id, and the extractors that read them.
//!
//! Every write acts as the token's user; no handler takes an identity from the query or body.

use std::time::Duration;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::config::AuthConfig;
use crate::error::ApiError;
use crate::state::AppState;

/// Keys and lifetime of access tokens.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// How long an issued token stays valid.
    pub ttl: Duration,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: u64,
    exp: u64,
}

impl TokenKeys {
    /// Builds the keys from configuration, generating a random secret when none is set.
    pub fn from_config(config: &AuthConfig) -> Self {
        let secret: Vec<u8> = match &config.jwt_secret {
            Some(secret) => secret.expose_secret().as_bytes().to_vec(),
            None => {
                tracing::warn!(
                    "no --jwt-secret set: using a random key, so tokens end with this process"
                );
                let mut bytes = vec![0u8; 32];
                rand::rng().fill_bytes(&mut bytes);
                bytes
            }
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            validation,
            ttl: config.token_ttl,
        }
    }

    /// Issues a token for `user_id`.
    pub fn issue(&self, user_id: u64) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        let claims = Claims {
            sub: user_id.to_string(),
            iat: now,
            exp: now + self.ttl.as_secs(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// Returns the user id a valid token was issued to.
    pub fn verify(&self, token: &str) -> Result<u64, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| ApiError::Unauthorized)?;
        data.claims.sub.parse().map_err(|_| ApiError::Unauthorized)
    }
}

/// The authenticated caller; rejects the request with 401 when the token is missing or bad.
#[derive(Debug, Clone, Copy)]
pub struct AuthUser {
    /// The caller's user id.
    pub id: u64,
}

/// The caller when a valid token was sent; anonymous otherwise. A token that was sent but is
/// invalid is still a 401, so a client never silently loses its identity.
#[derive(Debug, Clone, Copy)]
pub struct MaybeAuthUser(pub Option<u64>);

fn bearer_token(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ApiError::Unauthorized)?;
    let (scheme, token) = value.split_once(' ').ok_or(ApiError::Unauthorized)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::Unauthorized);
    }
    Ok(Some(token.trim()))
}

impl<S> FromRequestParts<S> for AuthUser
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let token = bearer_token(parts)?.ok_or(ApiError::Unauthorized)?;
        Ok(Self {
            id: state.tokens.verify(token)?,
        })
    }
}

impl<S> FromRequestParts<S> for MaybeAuthUser
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        match bearer_token(parts)? {
            Some(token) => Ok(Self(Some(state.tokens.verify(token)?))),
            None => Ok(Self(None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> TokenKeys {
        TokenKeys::from_config(&AuthConfig {
            jwt_secret: Some(secret.to_owned().into()),
            token_ttl: Duration::from_secs(60),
        })
    }

    #[test]
    fn issued_token_verifies_to_its_user() {
        let keys = keys("k1");
        let token = keys.issue(42).unwrap();
        assert_eq!(keys.verify(&token).unwrap(), 42);
    }

    #[test]
    fn token_signed_with_another_key_is_rejected() {
        let token = keys("k1").issue(42).unwrap();
        assert!(matches!(
            keys("k2").verify(&token),
            Err(ApiError::Unauthorized)
        ));
    }
}
