use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp};

on_mysql_and_embedded!(
    unknown_route_is_404_with_a_json_body,
    wrong_method_is_405_with_a_json_body_and_allow,
    malformed_json_is_400_and_a_non_json_body_is_415,
    an_oversized_body_is_413,
    missing_malformed_or_foreign_tokens_are_401,
    a_non_numeric_id_is_400,
    health_readiness_and_metrics_answer,
);

async fn unknown_route_is_404_with_a_json_body(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let response = app.get("/api/v1/nothing/here", None).await;
    response.assert_error(StatusCode::NOT_FOUND, "ROUTE_NOT_FOUND");
    assert!(
        response
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
}

async fn wrong_method_is_405_with_a_json_body_and_allow(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let response = app
        .request(Method::PUT, "/api/v1/auth/token", None, json!({}))
        .await;
    response.assert_error(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED");
    assert!(
        response
            .header("allow")
            .unwrap_or_default()
            .contains("POST")
    );
}

async fn malformed_json_is_400_and_a_non_json_body_is_415(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let broken = app
        .send(
            app.raw(Method::POST, "/api/v1/users")
                .header("content-type", "application/json")
                .body("{\"username\": "),
        )
        .await;
    broken.assert_error(StatusCode::BAD_REQUEST, "MALFORMED_JSON");
    let not_an_object = app
        .send(
            app.raw(Method::POST, "/api/v1/users")
                .header("content-type", "application/json")
                .body("[1, 2]"),
        )
        .await;
    not_an_object.assert_error(StatusCode::BAD_REQUEST, "MALFORMED_JSON");
    let form = app
        .send(
            app.raw(Method::POST, "/api/v1/users")
                .header("content-type", "application/x-www-form-urlencoded")
                .body("username=x"),
        )
        .await;
    form.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE");
}

async fn an_oversized_body_is_413(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let user = app.signup("big").await;
    let response = app
        .send(
            app.raw(Method::POST, "/api/v1/posts")
                .bearer_auth(&user.token)
                .header("content-type", "application/json")
                .body(format!("{{\"content\": \"{}\"}}", "x".repeat(200_000))),
        )
        .await;
    response.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE");
}

async fn missing_malformed_or_foreign_tokens_are_401(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let other = TestApp::spawn_on_backend(backend).await;
    let stranger = other.signup("stranger").await;
    let body = json!({"content": "hi"});
    app.request(Method::POST, "/api/v1/posts", None, body.clone())
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    app.request(
        Method::POST,
        "/api/v1/posts",
        Some("not.a.jwt"),
        body.clone(),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    // Signed by another deployment's key.
    app.request(
        Method::POST,
        "/api/v1/posts",
        Some(&stranger.token),
        body.clone(),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    let basic = app
        .send(
            app.raw(Method::POST, "/api/v1/posts")
                .header("authorization", "Basic YTpi")
                .json(&body),
        )
        .await;
    basic.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    // A bad token on a public read is refused too, never silently anonymous.
    app.get("/api/v1/users/1", Some("not.a.jwt"))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
}

async fn a_non_numeric_id_is_400(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    app.get("/api/v1/posts/abc", None)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "INVALID_PARAMETER");
    app.get("/api/v1/posts/99999999999999999999999", None)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "INVALID_PARAMETER");
    // In our words, naming the parameter; never the parser's ("Cannot parse `abc` to a `u64`").
    let path = app.get("/api/v1/posts/abc", None).await;
    let message = path.body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("`id`") && message.contains("whole number") && !message.contains("u64"),
        "{message}"
    );
    let query = app.get("/api/v1/users/1/posts?limit=lots", None).await;
    query.assert_error(StatusCode::BAD_REQUEST, "INVALID_PARAMETER");
    let message = query.body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("`limit`") && !message.contains("invalid digit"),
        "{message}"
    );
}

async fn health_readiness_and_metrics_answer(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    app.get("/healthz", None)
        .await
        .assert_status(StatusCode::OK);
    let ready = app.get("/readyz", None).await;
    ready.assert_status(StatusCode::OK);
    let database = match backend {
        Backend::Embedded => "sqlite",
        _ => "mysql",
    };
    assert_eq!(ready.body["database"], database);
    assert_eq!(ready.body[database], "up");
    app.get("/api/v1/users/1", None).await;
    let metrics = app.get("/metrics", None).await;
    metrics.assert_status(StatusCode::OK);
    let Value::String(text) = &metrics.body else {
        panic!("metrics are text");
    };
    assert!(
        text.contains(
            r#"api_http_requests_total{method="GET",route="/api/v1/users/{id}",status="404"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains("api_http_request_duration_seconds_bucket"));
    assert!(text.contains(r#"api_db_pool_connections{pool="writer",state="open"}"#));
}

#[tokio::test]
async fn readiness_is_503_while_the_database_is_unreachable() {
    let app = TestApp::spawn_with(|config, _| {
        config.database.database_migrate = false;
        config.database.database_url = "mysql://nobody:x@127.0.0.1:1/none".to_owned().into();
        config.database.database_acquire_timeout = std::time::Duration::from_millis(300);
    })
    .await;
    let ready = app.get("/readyz", None).await;
    ready.assert_error(StatusCode::SERVICE_UNAVAILABLE, "MYSQL_UNAVAILABLE");
    assert!(ready.header("retry-after").is_some());
}
