//! Request and response types of accounts, and the rules their fields follow.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::FieldErrors;

/// `POST /users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// 3-30 characters of `a-z`, `0-9`, `_`, not all digits.
    #[schema(
        min_length = 3,
        max_length = 30,
        pattern = "^[a-z0-9_]*[a-z_][a-z0-9_]*$"
    )]
    pub username: String,
    /// A valid e-mail address (unique, case-insensitive).
    #[schema(max_length = 254, format = Email)]
    pub email: String,
    /// 8-128 characters.
    #[schema(min_length = 8, max_length = 128, format = Password)]
    pub password: String,
}

impl RegisterRequest {
    /// Checks every field, reporting all broken rules at once.
    pub fn validate(&self) -> Result<(), crate::error::ApiError> {
        let mut errors = FieldErrors::default();
        if let Err(message) = check_username(&self.username) {
            errors.add("username", message);
        }
        if let Err(message) = check_email(&self.email) {
            errors.add("email", message);
        }
        let length = self.password.chars().count();
        if !(8..=128).contains(&length) {
            errors.add("password", "must be 8-128 characters");
        }
        errors.into_result()
    }
}

/// Checks the username rule: 3-30 of `[a-z0-9_]`, not all digits (an all-digit path segment
/// is a user id, so such a name could never be looked up).
pub fn check_username(username: &str) -> Result<(), &'static str> {
    if !(3..=30).contains(&username.len()) {
        return Err("must be 3-30 characters");
    }
    if !username
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err("may contain only a-z, 0-9 and _");
    }
    if username.bytes().all(|b| b.is_ascii_digit()) {
        return Err("must contain a letter or _");
    }
    Ok(())
}

/// A pragmatic address check: one `@`, a non-empty local part, a dotted domain, no spaces.
pub fn check_email(email: &str) -> Result<(), &'static str> {
    const INVALID: &str = "must be a valid e-mail address";
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(INVALID);
    }
    let Some((local, domain)) = email.split_once('@') else {
        return Err(INVALID);
    };
    let domain_ok = domain.contains('.')
        && !domain.contains('@')
        && domain
            .split('.')
            .all(|label| !label.is_empty() && label.len() <= 63 && !label.starts_with('-'));
    if local.is_empty() || local.len() > 64 || !domain_ok {
        return Err(INVALID);
    }
    Ok(())
}

/// `PATCH /users/me`: fields left out stay as they are; an empty string clears one.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateProfileRequest {
    /// Name shown beside the username, at most 64 characters.
    #[schema(max_length = 64)]
    pub display_name: Option<String>,
    /// Free text, at most 500 characters.
    #[schema(max_length = 500)]
    pub bio: Option<String>,
    /// An `http(s)` URL of the avatar image, at most 2048 characters.
    #[schema(max_length = 2048)]
    pub avatar_url: Option<String>,
}

impl UpdateProfileRequest {
    /// Checks every present field.
    pub fn validate(&self) -> Result<(), crate::error::ApiError> {
        let mut errors = FieldErrors::default();
        if let Some(name) = &self.display_name
            && (name.chars().count() > 64 || name.chars().any(char::is_control))
        {
            errors.add("display_name", "must be at most 64 printable characters");
        }
        if let Some(bio) = &self.bio
            && bio.chars().count() > 500
        {
            errors.add("bio", "must be at most 500 characters");
        }
        if let Some(url) = &self.avatar_url
            && !url.is_empty()
            && (url.len() > 2048
                || !(url.starts_with("https://") || url.starts_with("http://"))
                || url.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            errors.add(
                "avatar_url",
                "must be an http(s) URL of at most 2048 characters",
            );
        }
        errors.into_result()
    }
}

/// A user as others see them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserProfile {
    /// User id.
    pub id: u64,
    /// Unique login name.
    pub username: String,
    /// Name shown beside the username.
    pub display_name: Option<String>,
    /// Free text.
    pub bio: Option<String>,
    /// Avatar image URL.
    pub avatar_url: Option<String>,
    /// When the account was created (RFC 3339, UTC).
    pub created_at: DateTime<Utc>,
    /// Posts written (deleted ones excluded).
    pub post_count: u64,
    /// Users following this one.
    pub follower_count: u64,
    /// Users this one follows.
    pub following_count: u64,
    /// Whether the caller follows this user (false when anonymous).
    pub following: bool,
}

/// The short author block embedded in posts and comments.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
pub struct UserSummary {
    /// User id.
    pub id: u64,
    /// Unique login name.
    pub username: String,
    /// Avatar image URL.
    pub avatar_url: Option<String>,
}

/// `GET /users?q=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Prefix of a username or display name, 1-30 characters.
    #[param(min_length = 1, max_length = 30)]
    pub q: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_rule() {
        assert!(check_username("alice_01").is_ok());
        assert!(check_username("ab").is_err());
        assert!(check_username("Alice").is_err());
        assert!(check_username("12345").is_err());
        assert!(check_username(&"a".repeat(31)).is_err());
    }

    #[test]
    fn emails_are_checked_pragmatically() {
        assert!(check_email("a@example.com").is_ok());
        assert!(check_email("a@localhost").is_err());
        assert!(check_email("a b@example.com").is_err());
        assert!(check_email("@example.com").is_err());
        assert!(check_email("a@@example.com").is_err());
    }

    #[test]
    fn registration_reports_every_broken_field() {
        let request = RegisterRequest {
            username: "x".into(),
            email: "nope".into(),
            password: "short".into(),
        };
        let crate::error::ApiError::Validation(fields) = request.validate().unwrap_err() else {
            panic!("expected a validation error");
        };
        assert_eq!(fields.0.len(), 3);
    }
}
