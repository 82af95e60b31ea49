use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp};

on_mysql_and_embedded!(
    register_answers_201_with_location_and_profile,
    password_is_stored_as_an_argon2id_hash,
    duplicate_username_or_email_is_409,
    invalid_registration_is_422_naming_each_field,
    missing_or_mistyped_field_is_422_naming_it,
    profile_is_found_by_id_and_by_username,
    token_is_issued_for_username_or_email_and_refused_for_a_wrong_password,
    patch_me_changes_only_the_sent_fields_and_empty_clears,
    search_matches_username_and_display_name_prefixes_literally,
);

async fn register_answers_201_with_location_and_profile(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let response = app
        .request(
            Method::POST,
            "/api/v1/users",
            None,
            json!({"username": "alice_1", "email": "alice@example.com", "password": "longenough"}),
        )
        .await;
    response.assert_status(StatusCode::CREATED);
    let id = response.body["id"].as_u64().unwrap();
    assert_eq!(
        response.header("location"),
        Some(format!("/api/v1/users/{id}").as_str())
    );
    assert_eq!(response.body["username"], "alice_1");
    assert_eq!(response.body["follower_count"], 0);
    assert!(response.body.get("password_hash").is_none());
    assert!(response.body.get("email").is_none(), "emails are private");
}

async fn password_is_stored_as_an_argon2id_hash(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let user = app.signup("hashme").await;
    let (hash,): (String,) = sns_api::db::query("SELECT password_hash FROM users WHERE id = ?")
        .bind(user.id)
        .fetch_one(&mut app.db().await)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"));
    assert!(!hash.contains(&user.password));
}

async fn duplicate_username_or_email_is_409(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let body = |username: &str, email: &str| json!({"username": username, "email": email, "password": "longenough"});
    app.request(
        Method::POST,
        "/api/v1/users",
        None,
        body("bob_1", "bob@example.com"),
    )
    .await
    .assert_status(StatusCode::CREATED);
    let same_name = app
        .request(
            Method::POST,
            "/api/v1/users",
            None,
            body("bob_1", "other@example.com"),
        )
        .await;
    same_name.assert_error(StatusCode::CONFLICT, "USERNAME_TAKEN");
    let same_email = app
        .request(
            Method::POST,
            "/api/v1/users",
            None,
            body("bob_2", "BOB@example.com"),
        )
        .await;
    same_email.assert_error(StatusCode::CONFLICT, "EMAIL_TAKEN");
    // Case beyond ASCII too (SQLite's NOCASE folds ASCII only; addresses are stored folded).
    app.request(
        Method::POST,
        "/api/v1/users",
        None,
        body("emile_1", "Émile@example.com"),
    )
    .await
    .assert_status(StatusCode::CREATED);
    app.request(
        Method::POST,
        "/api/v1/users",
        None,
        body("emile_2", "éMILE@example.com"),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "EMAIL_TAKEN");
    app.login("ÉMILE@EXAMPLE.COM", "longenough").await;
}

async fn invalid_registration_is_422_naming_each_field(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let response = app
        .request(
            Method::POST,
            "/api/v1/users",
            None,
            json!({"username": "No Spaces!", "email": "not-an-email", "password": "short"}),
        )
        .await;
    response.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    let fields = &response.body["error"]["details"]["fields"];
    for field in ["username", "email", "password"] {
        assert!(fields[field].is_array(), "{field} is named: {fields}");
    }
    let all_digits = app
        .request(
            Method::POST,
            "/api/v1/users",
            None,
            json!({"username": "12345", "email": "d@example.com", "password": "longenough"}),
        )
        .await;
    all_digits.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
}

async fn missing_or_mistyped_field_is_422_naming_it(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let missing = app
        .request(
            Method::POST,
            "/api/v1/users",
            None,
            json!({"username": "carol"}),
        )
        .await;
    missing.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    assert!(missing.body["error"]["details"]["fields"]["email"].is_array());
    let mistyped = app
        .request(
            Method::POST,
            "/api/v1/users",
            None,
            json!({"username": 7, "email": "c@example.com", "password": "longenough"}),
        )
        .await;
    mistyped.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    assert!(mistyped.body["error"]["details"]["fields"]["username"].is_array());
}

async fn profile_is_found_by_id_and_by_username(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let user = app.signup("dave").await;
    let by_id = app.get(&format!("/api/v1/users/{}", user.id), None).await;
    by_id.assert_status(StatusCode::OK);
    let by_name = app
        .get(&format!("/api/v1/users/{}", user.username), None)
        .await;
    by_name.assert_status(StatusCode::OK);
    assert_eq!(by_id.body, by_name.body);
    app.get("/api/v1/users/999999999", None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "USER_NOT_FOUND");
    app.get("/api/v1/users/nobody_here", None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "USER_NOT_FOUND");
}

async fn token_is_issued_for_username_or_email_and_refused_for_a_wrong_password(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let user = app.signup("erin").await;
    let by_email = app
        .login(&format!("{}@example.com", user.username), &user.password)
        .await;
    let me = app.get("/api/v1/users/me", Some(&by_email)).await;
    me.assert_status(StatusCode::OK);
    assert_eq!(me.body["id"], user.id);
    let wrong = app
        .request(
            Method::POST,
            "/api/v1/auth/token",
            None,
            json!({"login": user.username, "password": "not the password"}),
        )
        .await;
    wrong.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    let unknown = app
        .request(
            Method::POST,
            "/api/v1/auth/token",
            None,
            json!({"login": "nobody_at_all", "password": "whatever1"}),
        )
        .await;
    unknown.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    let token = app
        .request(
            Method::POST,
            "/api/v1/auth/token",
            None,
            json!({"login": user.username, "password": user.password}),
        )
        .await;
    assert_eq!(token.body["token_type"], "Bearer");
    assert!(token.body["expires_in"].as_u64().unwrap() > 0);
}

async fn patch_me_changes_only_the_sent_fields_and_empty_clears(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let user = app.signup("frank").await;
    let patched = app
        .request(
            Method::PATCH,
            "/api/v1/users/me",
            Some(&user.token),
            json!({"display_name": "Frank", "bio": "hello", "avatar_url": "https://img.example/f.png"}),
        )
        .await;
    patched.assert_status(StatusCode::OK);
    assert_eq!(patched.body["display_name"], "Frank");
    let cleared = app
        .request(
            Method::PATCH,
            "/api/v1/users/me",
            Some(&user.token),
            json!({"bio": ""}),
        )
        .await;
    cleared.assert_status(StatusCode::OK);
    assert_eq!(cleared.body["display_name"], "Frank");
    assert_eq!(cleared.body["bio"], Value::Null);
    let bad = app
        .request(
            Method::PATCH,
            "/api/v1/users/me",
            Some(&user.token),
            json!({"avatar_url": "javascript:alert(1)"}),
        )
        .await;
    bad.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    assert!(bad.body["error"]["details"]["fields"]["avatar_url"].is_array());
    app.request(Method::PATCH, "/api/v1/users/me", None, json!({"bio": "x"}))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
}

async fn search_matches_username_and_display_name_prefixes_literally(backend: Backend) {
    let app = TestApp::spawn_on_backend(backend).await;
    let mut expected = Vec::new();
    for _ in 0..5 {
        expected.push(app.signup("zed").await.id);
    }
    let other = app.signup("zzz").await;
    app.request(
        Method::PATCH,
        "/api/v1/users/me",
        Some(&other.token),
        json!({"display_name": "zedlike"}),
    )
    .await
    .assert_status(StatusCode::OK);
    expected.push(other.id);
    let found = app.collect_pages("/api/v1/users?q=zed&limit=2", None).await;
    assert_eq!(found, expected);
    // `_` is literal, not a LIKE wildcard.
    let none = app.get("/api/v1/users?q=z_d", None).await;
    assert_eq!(none.body["items"], json!([]));
    app.get("/api/v1/users?q=", None)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "INVALID_PARAMETER");
}
