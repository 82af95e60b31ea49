use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{Backend, TestApp};

on_mysql_and_embedded!(
    follow_and_unfollow_are_idempotent_and_keep_counts_exact,
    following_oneself_is_422_and_a_missing_user_is_404,
    follower_and_following_lists_page_through_everyone,
);

async fn follow_and_unfollow_are_idempotent_and_keep_counts_exact(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let (alice, bob) = (app.signup("alice").await, app.signup("bob").await);
    let path = format!("/api/v1/users/{}/follow", bob.id);
    for _ in 0..2 {
        let followed = app
            .request(Method::PUT, &path, Some(&alice.token), Value::Null)
            .await;
        followed.assert_status(StatusCode::OK);
        assert_eq!(followed.body["following"], true);
        assert_eq!(followed.body["follower_count"], 1);
    }
    let profile = app
        .get(&format!("/api/v1/users/{}", bob.id), Some(&alice.token))
        .await;
    assert_eq!(profile.body["following"], true);
    assert_eq!(profile.body["follower_count"], 1);
    let anonymous = app.get(&format!("/api/v1/users/{}", bob.id), None).await;
    assert_eq!(anonymous.body["following"], false);
    let me = app.get("/api/v1/users/me", Some(&alice.token)).await;
    assert_eq!(me.body["following_count"], 1);
    for _ in 0..2 {
        let unfollowed = app
            .request(Method::DELETE, &path, Some(&alice.token), Value::Null)
            .await;
        unfollowed.assert_status(StatusCode::OK);
        assert_eq!(unfollowed.body["following"], false);
        assert_eq!(unfollowed.body["follower_count"], 0);
    }
    let me = app.get("/api/v1/users/me", Some(&alice.token)).await;
    assert_eq!(me.body["following_count"], 0);
}

async fn following_oneself_is_422_and_a_missing_user_is_404(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let alice = app.signup("alice").await;
    app.request(
        Method::PUT,
        &format!("/api/v1/users/{}/follow", alice.id),
        Some(&alice.token),
        Value::Null,
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    app.request(
        Method::PUT,
        "/api/v1/users/987654321/follow",
        Some(&alice.token),
        Value::Null,
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "USER_NOT_FOUND");
    app.request(
        Method::DELETE,
        "/api/v1/users/987654321/follow",
        Some(&alice.token),
        Value::Null,
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "USER_NOT_FOUND");
    app.request(
        Method::PUT,
        "/api/v1/users/abc/follow",
        Some(&alice.token),
        Value::Null,
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "INVALID_PARAMETER");
}

async fn follower_and_following_lists_page_through_everyone(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let star = app.signup("star").await;
    let mut fans = Vec::new();
    for _ in 0..7 {
        let fan = app.signup("fan").await;
        app.follow(&fan, &star).await;
        app.follow(&star, &fan).await;
        fans.push(fan.id);
    }
    fans.sort_unstable_by(|a, b| b.cmp(a));
    let followers = app
        .collect_pages(
            &format!("/api/v1/users/{}/followers?limit=3", star.id),
            None,
        )
        .await;
    assert_eq!(followers, fans);
    let following = app
        .collect_pages(
            &format!("/api/v1/users/{}/following?limit=2", star.id),
            None,
        )
        .await;
    assert_eq!(following, fans);
    app.get("/api/v1/users/987654321/followers", None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "USER_NOT_FOUND");
    app.get(
        &format!("/api/v1/users/{}/followers?cursor=garbage", star.id),
        None,
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "INVALID_CURSOR");
    app.get(
        &format!("/api/v1/users/{}/followers?limit=0", star.id),
        None,
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "INVALID_PARAMETER");
}
