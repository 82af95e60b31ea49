//! Two users times every write action: nothing one user sends changes the other's data.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, TestUser};

on_mysql_and_embedded!(
    no_user_can_write_anothers_posts_or_comments,
    a_comment_author_cannot_edit_through_the_posts_ownership_and_vice_versa,
    profile_and_follow_writes_act_only_as_the_tokens_user,
);

struct World {
    owner: TestUser,
    intruder: TestUser,
    post: u64,
    comment: u64,
}

async fn world(app: &TestApp) -> World {
    let owner = app.signup("owner").await;
    let intruder = app.signup("intruder").await;
    let post = app.create_post(&owner, "owner's post").await;
    let comment = app.create_comment(&owner, post, "owner's comment").await;
    World {
        owner,
        intruder,
        post,
        comment,
    }
}

async fn no_user_can_write_anothers_posts_or_comments(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let w = world(&app).await;
    let actions: Vec<(Method, String, Value)> = vec![
        (
            Method::PATCH,
            format!("/api/v1/posts/{}", w.post),
            json!({"content": "hijacked"}),
        ),
        (
            Method::DELETE,
            format!("/api/v1/posts/{}", w.post),
            Value::Null,
        ),
        (
            Method::PATCH,
            format!("/api/v1/comments/{}", w.comment),
            json!({"content": "hijacked"}),
        ),
        (
            Method::DELETE,
            format!("/api/v1/comments/{}", w.comment),
            Value::Null,
        ),
    ];
    for (method, path, body) in &actions {
        let response = app
            .request(method.clone(), path, Some(&w.intruder.token), body.clone())
            .await;
        response.assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");
        let anonymous = app.request(method.clone(), path, None, body.clone()).await;
        anonymous.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    }
    let post = app.get(&format!("/api/v1/posts/{}", w.post), None).await;
    assert_eq!(post.body["content"], "owner's post");
    assert_eq!(post.body["edited_at"], Value::Null);
    assert_eq!(post.body["comment_count"], 1);
    let comment = app
        .get(&format!("/api/v1/comments/{}", w.comment), None)
        .await;
    assert_eq!(comment.body["content"], "owner's comment");

    // The same actions by the owner succeed: the refusals above were about ownership.
    for index in [0, 2, 3, 1] {
        let (method, path, body) = &actions[index];
        let response = app
            .request(method.clone(), path, Some(&w.owner.token), body.clone())
            .await;
        assert!(
            response.status.is_success(),
            "{method} {path}: {}",
            response.body
        );
    }
}

async fn a_comment_author_cannot_edit_through_the_posts_ownership_and_vice_versa(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let w = world(&app).await;
    let intruders_comment = app.create_comment(&w.intruder, w.post, "mine").await;
    // The post's author may delete it but never edit it.
    app.request(
        Method::PATCH,
        &format!("/api/v1/comments/{intruders_comment}"),
        Some(&w.owner.token),
        json!({"content": "put words in mouth"}),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");
    // A commenter gains no rights over the post.
    app.request(
        Method::DELETE,
        &format!("/api/v1/posts/{}", w.post),
        Some(&w.intruder.token),
        Value::Null,
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");
}

async fn profile_and_follow_writes_act_only_as_the_tokens_user(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let w = world(&app).await;
    let third = app.signup("third").await;
    // Identity never comes from the query or the body.
    app.request(
        Method::PATCH,
        &format!("/api/v1/users/me?user_id={}", w.owner.id),
        Some(&w.intruder.token),
        json!({"display_name": "pwned"}),
    )
    .await
    .assert_status(StatusCode::OK);
    let owner = app
        .get(&format!("/api/v1/users/{}", w.owner.id), None)
        .await;
    assert_eq!(owner.body["display_name"], Value::Null);
    let extra_field = app
        .request(
            Method::PATCH,
            "/api/v1/users/me",
            Some(&w.intruder.token),
            json!({"id": w.owner.id, "display_name": "pwned"}),
        )
        .await;
    extra_field.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    app.request(
        Method::PUT,
        &format!(
            "/api/v1/users/{}/follow?follower_id={}",
            third.id, w.owner.id
        ),
        Some(&w.intruder.token),
        Value::Null,
    )
    .await
    .assert_status(StatusCode::OK);
    let owner = app
        .get(&format!("/api/v1/users/{}", w.owner.id), None)
        .await;
    assert_eq!(owner.body["following_count"], 0);
    let intruder = app
        .get(&format!("/api/v1/users/{}", w.intruder.id), None)
        .await;
    assert_eq!(intruder.body["following_count"], 1);
    let post = app
        .request(
            Method::POST,
            "/api/v1/posts",
            Some(&w.intruder.token),
            json!({"content": "x", "author_id": w.owner.id}),
        )
        .await;
    post.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
}
