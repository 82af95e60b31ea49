//! The generated OpenAPI document, and schemathesis run against a live server with it.

use std::time::Duration;

use reqwest::StatusCode;

use crate::helpers::{Backend, TestApp, test_env};

on_mysql_and_embedded!(openapi_document_is_3_1_and_lists_every_endpoint,);

async fn openapi_document_is_3_1_and_lists_every_endpoint(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let response = app.get("/openapi.json", None).await;
    response.assert_status(StatusCode::OK);
    let doc = &response.body;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for (path, method) in [
        ("/api/v1/users", "post"),
        ("/api/v1/users", "get"),
        ("/api/v1/users/{id}", "get"),
        ("/api/v1/users/me", "patch"),
        ("/api/v1/auth/token", "post"),
        ("/api/v1/users/{id}/follow", "put"),
        ("/api/v1/users/{id}/follow", "delete"),
        ("/api/v1/users/{id}/followers", "get"),
        ("/api/v1/users/{id}/following", "get"),
        ("/api/v1/posts", "post"),
        ("/api/v1/posts/{id}", "get"),
        ("/api/v1/posts/{id}", "patch"),
        ("/api/v1/posts/{id}", "delete"),
        ("/api/v1/users/{id}/posts", "get"),
        ("/api/v1/posts/{id}/comments", "post"),
        ("/api/v1/posts/{id}/comments", "get"),
        ("/api/v1/comments/{id}", "patch"),
        ("/api/v1/comments/{id}", "delete"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path}"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}

/// schemathesis on the real services (with a bucket, so upload requests reach the
/// presigning code).
#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let app = TestApp::spawn_with(|config, _| crate::helpers::use_test_bucket(config)).await;
    schemathesis_finds_nothing(app).await;
}

/// schemathesis on the embedded default (SQLite, in-process store, upload directory).
#[tokio::test]
async fn schemathesis_finds_nothing_on_the_embedded_default() {
    schemathesis_finds_nothing(TestApp::spawn_on_backend(Backend::Embedded).await).await;
}

/// schemathesis generates requests from the document; it must find no 5xx and no response
/// that breaks the schema the document promises.
async fn schemathesis_finds_nothing(app: TestApp) {
    let schemathesis = test_env("SNS_SCHEMATHESIS");
    let user = app.signup("fuzz").await;
    // Something to find: a post with a comment, so id-based routes can hit real rows.
    let post = app.create_post(&user, "fuzz target").await;
    app.create_comment(&user, post, "fuzz comment").await;
    let spec = format!("{}/openapi.json", app.address);
    let mut command = tokio::process::Command::new(&schemathesis);
    command
        .args(["run", &spec, "--url", &app.address])
        .args(["--header", &format!("Authorization: Bearer {}", user.token)])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance",
        ])
        .args(["--max-examples", "40", "--seed", "1"])
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(600), command.output())
        .await
        .expect("schemathesis finished within 10 minutes")
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{stdout}\n{stderr}"
    );
}
