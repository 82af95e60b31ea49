//! Rate-limit classes, their defaults, and which requests fall in which class.

use std::time::Duration;

use axum::http::Method;

/// A limit: at most `max` requests per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Requests allowed per window.
    pub max: u64,
    /// Window length.
    pub window: Duration,
}

impl std::str::FromStr for Limit {
    type Err = String;

    /// Parses `300/5m`, `30/1h`, `5/30m`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (max, window) = text
            .split_once('/')
            .ok_or_else(|| format!("`{text}` is not a limit such as 300/5m"))?;
        let max = max
            .trim()
            .parse()
            .map_err(|_| format!("`{max}` is not a request count"))?;
        let window = crate::config::parse_duration(window)?;
        if window.is_zero() {
            return Err("a rate-limit window must be longer than zero".into());
        }
        Ok(Self { max, window })
    }
}

/// What a request is limited as, beyond the general per-client limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionClass {
    /// `POST /posts`.
    Posts,
    /// `POST /posts/{id}/comments`.
    Comments,
    /// `PUT|DELETE /posts/{id}/like`.
    Likes,
    /// `POST /uploads`.
    Uploads,
    /// `POST /users` (counted per IP).
    Signups,
}

impl ActionClass {
    /// The class of a request, from its method and matched route.
    pub fn of(method: &Method, route: &str) -> Option<Self> {
        match (method.as_str(), route) {
            ("POST", "/api/v1/posts") => Some(Self::Posts),
            ("POST", "/api/v1/posts/{id}/comments") => Some(Self::Comments),
            ("PUT" | "DELETE", "/api/v1/posts/{id}/like") => Some(Self::Likes),
            ("POST", "/api/v1/uploads") => Some(Self::Uploads),
            ("POST", "/api/v1/users") => Some(Self::Signups),
            _ => None,
        }
    }

    /// Name used in keys and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Posts => "posts",
            Self::Comments => "comments",
            Self::Likes => "likes",
            Self::Uploads => "uploads",
            Self::Signups => "signups",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse() {
        assert_eq!(
            "300/5m".parse::<Limit>(),
            Ok(Limit {
                max: 300,
                window: Duration::from_secs(300)
            })
        );
        assert!("300".parse::<Limit>().is_err());
        assert!("x/5m".parse::<Limit>().is_err());
        assert!("3/0s".parse::<Limit>().is_err());
    }

    #[test]
    fn routes_map_to_classes() {
        assert_eq!(
            ActionClass::of(&Method::POST, "/api/v1/posts"),
            Some(ActionClass::Posts)
        );
        assert_eq!(
            ActionClass::of(&Method::DELETE, "/api/v1/posts/{id}/like"),
            Some(ActionClass::Likes)
        );
        assert_eq!(ActionClass::of(&Method::GET, "/api/v1/posts"), None);
    }
}
