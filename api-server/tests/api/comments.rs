use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp};

on_mysql_and_embedded!(
    comments_list_oldest_first_and_count_on_the_post,
    a_comment_is_edited_by_its_author_and_deleted_with_the_count_kept,
    the_posts_author_may_delete_a_comment_on_their_post,
    comments_on_a_missing_or_deleted_post_are_404,
);

async fn comments_list_oldest_first_and_count_on_the_post(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let (alice, bob) = (app.signup("alice").await, app.signup("bob").await);
    let post = app.create_post(&alice, "discuss").await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let author = if i % 2 == 0 { &alice } else { &bob };
        ids.push(app.create_comment(author, post, &format!("c{i}")).await);
    }
    let listed = app
        .collect_pages(&format!("/api/v1/posts/{post}/comments?limit=2"), None)
        .await;
    assert_eq!(listed, ids);
    let view = app.get(&format!("/api/v1/posts/{post}"), None).await;
    assert_eq!(view.body["comment_count"], 5);
    let one = app.get(&format!("/api/v1/comments/{}", ids[1]), None).await;
    one.assert_status(StatusCode::OK);
    assert_eq!(one.body["author"]["id"], bob.id);
    assert_eq!(one.body["post_id"], post);
}

async fn a_comment_is_edited_by_its_author_and_deleted_with_the_count_kept(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let (alice, bob) = (app.signup("alice").await, app.signup("bob").await);
    let post = app.create_post(&alice, "discuss").await;
    let comment = app.create_comment(&bob, post, "first").await;
    let edited = app
        .request(
            Method::PATCH,
            &format!("/api/v1/comments/{comment}"),
            Some(&bob.token),
            json!({"content": "better"}),
        )
        .await;
    edited.assert_status(StatusCode::OK);
    assert_eq!(edited.body["content"], "better");
    assert!(edited.body["edited_at"].is_string());
    app.request(
        Method::DELETE,
        &format!("/api/v1/comments/{comment}"),
        Some(&bob.token),
        Value::Null,
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
    app.get(&format!("/api/v1/comments/{comment}"), None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "COMMENT_NOT_FOUND");
    let view = app.get(&format!("/api/v1/posts/{post}"), None).await;
    assert_eq!(view.body["comment_count"], 0);
}

async fn the_posts_author_may_delete_a_comment_on_their_post(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let (alice, bob) = (app.signup("alice").await, app.signup("bob").await);
    let post = app.create_post(&alice, "my post").await;
    let comment = app.create_comment(&bob, post, "rude").await;
    app.request(
        Method::DELETE,
        &format!("/api/v1/comments/{comment}"),
        Some(&alice.token),
        Value::Null,
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
    let listed = app
        .get(&format!("/api/v1/posts/{post}/comments"), None)
        .await;
    assert_eq!(listed.body["items"], json!([]));
}

async fn comments_on_a_missing_or_deleted_post_are_404(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let alice = app.signup("alice").await;
    let post = app.create_post(&alice, "soon gone").await;
    let comment = app.create_comment(&alice, post, "here").await;
    app.request(
        Method::DELETE,
        &format!("/api/v1/posts/{post}"),
        Some(&alice.token),
        Value::Null,
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
    app.request(
        Method::POST,
        &format!("/api/v1/posts/{post}/comments"),
        Some(&alice.token),
        json!({"content": "late"}),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "POST_NOT_FOUND");
    app.get(&format!("/api/v1/posts/{post}/comments"), None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "POST_NOT_FOUND");
    app.get(&format!("/api/v1/comments/{comment}"), None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "COMMENT_NOT_FOUND");
    let empty = app
        .request(
            Method::POST,
            "/api/v1/posts/987654321/comments",
            Some(&alice.token),
            json!({"content": " "}),
        )
        .await;
    empty.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
}
