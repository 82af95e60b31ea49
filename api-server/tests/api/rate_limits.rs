//! Rate limits, with counters in memory (no Redis), in Redis, in the Redis Cluster, and in
//! the embedded default's in-process store.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Backend, TestApp};

scenarios!(
    [
        memory => crate::helpers::Backend::MySql,
        redis => crate::helpers::Backend::Standalone,
        redis_cluster => crate::helpers::Backend::Cluster,
        embedded => crate::helpers::Backend::Embedded,
    ],
    (limits_hold, failed_logins_are_throttled)
);

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

/// Three failures per account and address, six per address; addresses from
/// X-Forwarded-For (a proxy in front, as the setting says).
async fn failed_logins_are_throttled(backend: Backend) {
    let app = TestApp::spawn_with_backend(backend, |config, _| {
        let limits = &mut config.rate_limits;
        limits.rate_limit_login_failures = "3/15m".parse().unwrap();
        limits.rate_limit_login_failures_per_ip = "6/15m".parse().unwrap();
        limits.rate_limit_trust_forwarded_for = true;
    })
    .await;
    let (alice, bob) = (app.signup("alice").await, app.signup("bob").await);
    let login = |from: &str, user: &str, password: &str| {
        app.send(
            app.raw(Method::POST, "/api/v1/auth/token")
                .header("x-forwarded-for", from)
                .json(&json!({"login": user, "password": password})),
        )
    };
    let guesser = "203.0.113.7";

    // Guessing alice's password: three wrong answers, then even the right one is refused,
    // with the JSON error and when to come back; the login is case-insensitive.
    for _ in 0..3 {
        login(guesser, &alice.username, "guess")
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    }
    let refused = login(guesser, &alice.username.to_uppercase(), &alice.password).await;
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED");
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");

    // Alice herself, from her own address, is not locked out.
    login("198.51.100.20", &alice.username, &alice.password)
        .await
        .assert_status(StatusCode::OK);

    // The guesser's address has three more failures to spend, on any account.
    for _ in 0..3 {
        login(guesser, &bob.username, "guess")
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    }
    login(guesser, &bob.username, &bob.password)
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED");
    login(guesser, "nobody-at-all", "guess")
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMITED");

    // A successful login forgets that account's failures from that address.
    let typo = "192.0.2.44";
    for _ in 0..2 {
        login(typo, &bob.username, "typo")
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    }
    login(typo, &bob.username, &bob.password)
        .await
        .assert_status(StatusCode::OK);
    for _ in 0..2 {
        login(typo, &bob.username, "typo")
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    }
    login(typo, &bob.username, &bob.password)
        .await
        .assert_status(StatusCode::OK);
}
