//! The rate-limit layer: every `/api` request counts against its client's general limit
//! (per user with a valid token, else per IP) and, for writes of a limited kind, against that
//! class's limit. Over either: 429 with `Retry-After`. Every answer carries the
//! `X-RateLimit-Limit/Remaining/Reset` of the class (or of the general limit).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::limits::{ActionClass, Limit};
use super::store::Hit;
use crate::error::ApiError;
use crate::state::AppState;

/// Applies the limits of `state.rate_limiter`.
pub async fn enforce_rate_limits(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let limiter = &state.rate_limiter;
    if !limiter.config.rate_limit_enabled || !request.uri().path().starts_with("/api/") {
        return next.run(request).await;
    }
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let class = route
        .as_deref()
        .and_then(|route| ActionClass::of(request.method(), route));
    let ip = client_ip(&request, limiter.config.rate_limit_trust_forwarded_for);
    let user = bearer_user(&state, request.headers());
    let client = match user {
        Some(id) => format!("u:{id}"),
        None => format!("ip:{ip}"),
    };

    let general = limiter.config.rate_limit_requests;
    let mut checks: Vec<(&str, String, Limit)> = vec![("requests", client.clone(), general)];
    if let Some(class) = class {
        let subject = if class == ActionClass::Signups {
            format!("ip:{ip}")
        } else {
            client
        };
        checks.push((class.name(), subject, limiter.limit_of(class)));
    }
    let mut shown: Option<(Limit, Hit)> = None;
    for (name, subject, limit) in checks {
        let hit = match limiter.store.hit(name, &subject, limit.window).await {
            Ok(hit) => hit,
            Err(error) => {
                // Limits protect the service; they must not take it down with Redis.
                crate::kv::log_fallback(
                    &error,
                    "rate-limit counter unavailable; letting the request through",
                );
                return next.run(request).await;
            }
        };
        if hit.count > limit.max {
            let mut response = ApiError::RateLimited {
                retry_after: Duration::from_secs(hit.reset_secs),
            }
            .into_response();
            set_headers(response.headers_mut(), limit, hit);
            return response;
        }
        shown = Some((limit, hit));
    }
    let mut response = next.run(request).await;
    if let Some((limit, hit)) = shown {
        set_headers(response.headers_mut(), limit, hit);
    }
    response
}

fn set_headers(headers: &mut HeaderMap, limit: Limit, hit: Hit) {
    let remaining = limit.max.saturating_sub(hit.count);
    for (name, value) in [
        ("x-ratelimit-limit", limit.max),
        ("x-ratelimit-remaining", remaining),
        ("x-ratelimit-reset", hit.reset_secs),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value.to_string()) {
            headers.insert(name, value);
        }
    }
}

fn bearer_user(state: &AppState, headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    state.tokens.verify(token.trim()).ok()
}

fn client_ip(request: &Request, trust_forwarded_for: bool) -> IpAddr {
    client_ip_of(
        request.headers(),
        request.extensions().get::<ConnectInfo<SocketAddr>>(),
        trust_forwarded_for,
    )
}

/// The client's IP: the first `X-Forwarded-For` address when trusted, else the peer's.
pub fn client_ip_of(
    headers: &HeaderMap,
    peer: Option<&ConnectInfo<SocketAddr>>,
    trust_forwarded_for: bool,
) -> IpAddr {
    if trust_forwarded_for
        && let Some(ip) = headers
            .get("x-forwarded-for")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(',').next())
            .and_then(|first| first.trim().parse().ok())
    {
        return ip;
    }
    peer.map_or(IpAddr::from([0, 0, 0, 0]), |info| info.0.ip())
}
