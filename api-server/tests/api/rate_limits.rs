//! Rate limits, with counters in memory (no Redis), in Redis, in the Redis Cluster, and in
//! the embedded default's in-process store.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Backend, TestApp};

#[tokio::test]
async fn limits_hold_with_counters_in_memory() {
    limits_hold(Backend::MySql).await;
}

#[tokio::test]
async fn limits_hold_with_counters_in_redis() {
    limits_hold(Backend::Standalone).await;
}

#[tokio::test]
async fn limits_hold_with_counters_in_the_redis_cluster() {
    limits_hold(Backend::Cluster).await;
}

#[tokio::test]
async fn limits_hold_on_the_embedded_default() {
    limits_hold(Backend::Embedded).await;
}

async fn limits_hold(backend: Backend) {
    let app = TestApp::spawn_with_backend(backend, |config, _| {
        let limits = &mut config.rate_limits;
        limits.rate_limit_posts = "2/1h".parse().unwrap();
        limits.rate_limit_signups = "3/30m".parse().unwrap();
        limits.rate_limit_requests = "40/5m".parse().unwrap();
    })
    .await;
    let (alice, bob) = (app.signup("alice").await, app.signup("bob").await);

    let post = |token: &str| {
        let token = token.to_owned();
        let app = &app;
        async move {
            app.request(
                Method::POST,
                "/api/v1/posts",
                Some(&token),
                json!({"content": "x"}),
            )
            .await
        }
    };
    let first = post(&alice.token).await;
    first.assert_status(StatusCode::CREATED);
    assert_eq!(first.header("x-ratelimit-limit"), Some("2"));
    assert_eq!(first.header("x-ratelimit-remaining"), Some("1"));
    post(&alice.token).await.assert_status(StatusCode::CREATED);
    let refused = post(&alice.token).await;
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED");
    assert_eq!(refused.header("x-ratelimit-remaining"), Some("0"));
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry_after));
    // Per user: bob still may post; reads are not in the posts class.
    post(&bob.token).await.assert_status(StatusCode::CREATED);
    app.get("/api/v1/users/me", Some(&alice.token))
        .await
        .assert_status(StatusCode::OK);

    // Sign-ups count per IP: two were made above, one more is allowed.
    let signup = |name: &str| {
        app.request(
            Method::POST,
            "/api/v1/users",
            None,
            json!({"username": name, "email": format!("{name}@example.com"), "password": "longenough"}),
        )
    };
    signup("carol").await.assert_status(StatusCode::CREATED);
    signup("dave")
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED");

    // The general limit: 40 requests per client per window.
    let mut statuses = Vec::new();
    for _ in 0..45 {
        statuses.push(app.get("/api/v1/users/me", Some(&bob.token)).await.status);
    }
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS));
    // Probes are never limited.
    app.get("/healthz", None)
        .await
        .assert_status(StatusCode::OK);
}
