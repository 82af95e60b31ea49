use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp};

on_mysql_and_embedded!(
    post_is_created_read_edited_and_deleted,
    post_content_rules_are_422_naming_the_field,
    a_media_key_that_names_no_uploaded_object_is_422_naming_it,
    idempotency_key_returns_the_first_post_and_refuses_a_different_request,
    concurrent_retries_with_one_idempotency_key_create_one_post,
    an_authors_timeline_pages_newest_first_without_deleted_posts,
);

async fn post_is_created_read_edited_and_deleted(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let alice = app.signup("alice").await;
    let created = app
        .request(
            Method::POST,
            "/api/v1/posts",
            Some(&alice.token),
            json!({"content": "hello ✨"}),
        )
        .await;
    created.assert_status(StatusCode::CREATED);
    let id = created.body["id"].as_u64().unwrap();
    assert_eq!(
        created.header("location"),
        Some(format!("/api/v1/posts/{id}").as_str())
    );
    assert_eq!(created.body["author"]["id"], alice.id);
    assert_eq!(created.body["author"]["username"], alice.username.as_str());
    assert_eq!(created.body["content"], "hello ✨");
    assert_eq!(created.body["media"], json!([]));
    assert_eq!(created.body["like_count"], 0);
    assert_eq!(created.body["comment_count"], 0);
    assert_eq!(created.body["liked_by_me"], false);
    assert_eq!(created.body["edited_at"], Value::Null);
    let created_at = created.body["created_at"].as_str().unwrap();
    assert!(created_at.ends_with('Z'), "RFC 3339 in UTC: {created_at}");

    let read = app.get(&format!("/api/v1/posts/{id}"), None).await;
    read.assert_status(StatusCode::OK);
    assert_eq!(read.body, created.body);

    let edited = app
        .request(
            Method::PATCH,
            &format!("/api/v1/posts/{id}"),
            Some(&alice.token),
            json!({"content": "edited"}),
        )
        .await;
    edited.assert_status(StatusCode::OK);
    assert_eq!(edited.body["content"], "edited");
    assert!(edited.body["edited_at"].is_string());
    assert_eq!(edited.body["created_at"], created.body["created_at"]);

    let profile = app.get(&format!("/api/v1/users/{}", alice.id), None).await;
    assert_eq!(profile.body["post_count"], 1);
    app.request(
        Method::DELETE,
        &format!("/api/v1/posts/{id}"),
        Some(&alice.token),
        Value::Null,
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
    app.get(&format!("/api/v1/posts/{id}"), None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "POST_NOT_FOUND");
    app.request(
        Method::DELETE,
        &format!("/api/v1/posts/{id}"),
        Some(&alice.token),
        Value::Null,
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "POST_NOT_FOUND");
    let profile = app.get(&format!("/api/v1/users/{}", alice.id), None).await;
    assert_eq!(profile.body["post_count"], 0);
}

async fn post_content_rules_are_422_naming_the_field(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let alice = app.signup("alice").await;
    for content in [json!(""), json!("   "), json!("x".repeat(5001))] {
        let response = app
            .request(
                Method::POST,
                "/api/v1/posts",
                Some(&alice.token),
                json!({"content": content}),
            )
            .await;
        response.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
        assert!(response.body["error"]["details"]["fields"]["content"].is_array());
    }
    let longest = app
        .request(
            Method::POST,
            "/api/v1/posts",
            Some(&alice.token),
            json!({"content": "한".repeat(5000)}),
        )
        .await;
    longest.assert_status(StatusCode::CREATED);
    let too_many: Vec<String> = (0..11)
        .map(|i| format!("media/{}/{i}.png", alice.id))
        .collect();
    let response = app
        .request(
            Method::POST,
            "/api/v1/posts",
            Some(&alice.token),
            json!({"content": "x", "media": too_many}),
        )
        .await;
    response.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    assert!(response.body["error"]["details"]["fields"]["media"].is_array());
}

async fn a_media_key_that_names_no_uploaded_object_is_422_naming_it(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let alice = app.signup("alice").await;
    let response = app
        .request(
            Method::POST,
            "/api/v1/posts",
            Some(&alice.token),
            json!({"content": "x", "media": [format!("media/{}/missing.png", alice.id)]}),
        )
        .await;
    response.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    assert!(response.body["error"]["details"]["fields"]["media[0]"].is_array());
    let profile = app.get(&format!("/api/v1/users/{}", alice.id), None).await;
    assert_eq!(profile.body["post_count"], 0, "nothing was stored");
}

async fn idempotency_key_returns_the_first_post_and_refuses_a_different_request(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let alice = app.signup("alice").await;
    let post = |content: &str, key: &str| {
        app.raw(Method::POST, "/api/v1/posts")
            .bearer_auth(&alice.token)
            .header("Idempotency-Key", key)
            .json(&json!({ "content": content }))
    };
    let first = app.send(post("once", "key-1")).await;
    first.assert_status(StatusCode::CREATED);
    let retry = app.send(post("once", "key-1")).await;
    retry.assert_status(StatusCode::CREATED);
    assert_eq!(retry.body["id"], first.body["id"]);
    let reused = app.send(post("another", "key-1")).await;
    reused.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "IDEMPOTENCY_KEY_REUSED");
    // Keys are per user: someone else's identical key is a new request.
    let bob = app.signup("bob").await;
    let other = app
        .send(
            app.raw(Method::POST, "/api/v1/posts")
                .bearer_auth(&bob.token)
                .header("Idempotency-Key", "key-1")
                .json(&json!({ "content": "once" })),
        )
        .await;
    other.assert_status(StatusCode::CREATED);
    assert_ne!(other.body["id"], first.body["id"]);
    let profile = app.get(&format!("/api/v1/users/{}", alice.id), None).await;
    assert_eq!(profile.body["post_count"], 1);
    let bad_key = app.send(post("x", "has spaces in it")).await;
    bad_key.assert_error(StatusCode::BAD_REQUEST, "INVALID_IDEMPOTENCY_KEY");
}

async fn concurrent_retries_with_one_idempotency_key_create_one_post(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let alice = app.signup("alice").await;
    let requests = (0..8).map(|_| {
        app.send(
            app.raw(Method::POST, "/api/v1/posts")
                .bearer_auth(&alice.token)
                .header("Idempotency-Key", "race")
                .json(&json!({ "content": "raced" })),
        )
    });
    let responses = futures::future::join_all(requests).await;
    let ids: std::collections::HashSet<u64> = responses
        .iter()
        .map(|r| {
            r.assert_status(StatusCode::CREATED);
            r.body["id"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(ids.len(), 1, "every retry sees the same post");
    let profile = app.get(&format!("/api/v1/users/{}", alice.id), None).await;
    assert_eq!(profile.body["post_count"], 1);
}

async fn an_authors_timeline_pages_newest_first_without_deleted_posts(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let alice = app.signup("alice").await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(app.create_post(&alice, &format!("post {i}")).await);
    }
    app.request(
        Method::DELETE,
        &format!("/api/v1/posts/{}", ids[3]),
        Some(&alice.token),
        Value::Null,
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
    ids.remove(3);
    ids.reverse();
    let timeline = app
        .collect_pages(&format!("/api/v1/users/{}/posts?limit=2", alice.id), None)
        .await;
    assert_eq!(timeline, ids);
    app.get("/api/v1/users/987654321/posts", None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "USER_NOT_FOUND");
}
