//! Uploads on both stores: s3s-fs started with keys, so the S3 server itself checks every
//! signature, and a local directory whose signed URLs the API serves itself. Presigned PUTs,
//! what the API refuses when media is attached, media URLs in post views, and the sweep of
//! unattached uploads run on both; what the S3 server refuses is here, what the API's own
//! media routes refuse is in `local_uploads`.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sns_api::uploads::store::ObjectStore;

use crate::helpers::{Backend, TestApp, TestResponse, TestUser, UploadStore, use_test_bucket};

on_both_stores!(
    a_client_uploads_with_a_plain_put_and_the_post_shows_the_bytes,
    the_api_refuses_keys_that_are_not_the_callers_checked_uploads,
    editing_a_post_replaces_its_media_after_the_same_checks,
    the_sweep_deletes_old_unattached_uploads_and_keeps_attached_ones,
);

/// A PNG-looking body of `size` bytes (the bytes are not inspected, only counted).
pub fn body_of(size: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.resize(size, 7);
    bytes
}

async fn spawn(store: UploadStore) -> TestApp {
    TestApp::spawn_with_backend(store.backend(Backend::MySql), |config, _| {
        store.configure(config)
    })
    .await
}

/// The app's object store, to reach it behind the API's back.
pub fn store_of(app: &TestApp) -> ObjectStore {
    app.state
        .objects
        .clone()
        .expect("this app has an object store")
}

/// Asks for one upload ticket.
pub async fn ticket(app: &TestApp, user: &TestUser, content_type: &str, size: usize) -> Value {
    let response = app
        .request(
            Method::POST,
            "/api/v1/uploads",
            Some(&user.token),
            json!({"files": [{"file_name": "photo", "content_type": content_type, "size": size}]}),
        )
        .await;
    response.assert_status(StatusCode::OK);
    response.body["uploads"][0].clone()
}

/// Sends `body` to a ticket's URL with its headers, the way any HTTP client would.
pub async fn put(app: &TestApp, ticket: &Value, body: Vec<u8>) -> StatusCode {
    put_with(
        app,
        ticket,
        ticket["url"].as_str().unwrap(),
        body,
        |_, value| Some(value.to_owned()),
    )
    .await
    .status
}

/// Sends `body` to `url` with the ticket's headers, each passed through `adjust` (which
/// drops a header by answering `None`).
pub async fn put_with(
    app: &TestApp,
    ticket: &Value,
    url: &str,
    body: Vec<u8>,
    adjust: impl Fn(&str, &str) -> Option<String>,
) -> TestResponse {
    let mut request = reqwest::Client::new().put(url);
    for (name, value) in ticket["headers"].as_object().unwrap() {
        if let Some(value) = adjust(name, value.as_str().unwrap()) {
            request = request.header(name.as_str(), value);
        }
    }
    app.send(request.body(body)).await
}

/// Uploads a PNG of `size` bytes and returns its key.
/// `put_with` adjusters: the ticket's headers as they are, or with one value changed.
pub fn same(_: &str, value: &str) -> Option<String> {
    Some(value.to_owned())
}

/// The ticket's headers with `Content-Type: text/html`.
pub fn as_html(name: &str, value: &str) -> Option<String> {
    replaced(name, value, "content-type", "text/html")
}

/// The ticket's headers with `Content-Type: image/gif`.
pub fn as_gif(name: &str, value: &str) -> Option<String> {
    replaced(name, value, "content-type", "image/gif")
}

/// The ticket's headers with `Content-Length: 5000`.
pub fn as_5000_bytes(name: &str, value: &str) -> Option<String> {
    replaced(name, value, "content-length", "5000")
}

fn replaced(name: &str, value: &str, header: &str, replacement: &str) -> Option<String> {
    Some(if name == header { replacement } else { value }.to_owned())
}

pub async fn upload_png(app: &TestApp, user: &TestUser, size: usize) -> String {
    let ticket = ticket(app, user, "image/png", size).await;
    assert_eq!(put(app, &ticket, body_of(size)).await, StatusCode::OK);
    ticket["object_key"].as_str().unwrap().to_owned()
}

/// Creates a post with `media`.
pub async fn create_post(app: &TestApp, user: &TestUser, media: &[&str]) -> TestResponse {
    app.request(
        Method::POST,
        "/api/v1/posts",
        Some(&user.token),
        json!({"content": "with media", "media": media}),
    )
    .await
}

/// GETs `url` with a plain client: status and bytes.
pub async fn fetch(url: &str) -> (StatusCode, Vec<u8>) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status();
    (status, response.bytes().await.unwrap().to_vec())
}

async fn a_client_uploads_with_a_plain_put_and_the_post_shows_the_bytes(store: UploadStore) {
    // On Redis too, so the second read comes from the post cache (which keeps keys, not URLs).
    let app = TestApp::spawn_with_backend(store.backend(Backend::Standalone), |config, _| {
        store.configure(config);
    })
    .await;
    let alice = app.signup("alice").await;

    let limits = app.get("/api/v1/config", None).await;
    limits.assert_status(StatusCode::OK);
    assert_eq!(limits.body["uploads"]["enabled"], true);
    assert_eq!(limits.body["uploads"]["max_files"], 10);
    assert_eq!(limits.body["uploads"]["url_ttl_seconds"], 900);
    assert!(
        limits.body["uploads"]["types"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["content_type"] == "image/png" && t["max_bytes"] == 16 * 1024 * 1024)
    );

    let ticket = ticket(&app, &alice, "image/png", 1500).await;
    let key = ticket["object_key"].as_str().unwrap();
    assert!(
        key.starts_with(&format!(
            "{}media/{}/",
            app.config.uploads.s3_key_prefix, alice.id
        )) && key.ends_with(".png"),
        "{key}"
    );
    assert_eq!(ticket["method"], "PUT");
    assert_eq!(ticket["headers"]["content-type"], "image/png");
    assert_eq!(ticket["headers"]["content-length"], "1500");
    let url = ticket["url"].as_str().unwrap();
    if store == UploadStore::LocalDir {
        // Without --public-url, URLs point at the address the server bound.
        let expected = format!("{}/api/v1/media/{key}?", app.address);
        assert!(url.starts_with(&expected), "{url}");
    }
    let expires_at: chrono::DateTime<chrono::Utc> =
        ticket["expires_at"].as_str().unwrap().parse().unwrap();
    let ttl = expires_at - chrono::Utc::now();
    assert!(ttl > chrono::Duration::minutes(14) && ttl <= chrono::Duration::minutes(15));
    let bytes = body_of(1500);
    assert_eq!(put(&app, &ticket, bytes.clone()).await, StatusCode::OK);

    let created = create_post(&app, &alice, &[key]).await;
    created.assert_status(StatusCode::CREATED);
    let media = &created.body["media"][0];
    assert_eq!(media["key"], key);
    assert_eq!(media["type"], "image/png");
    assert_eq!(media["size"], 1500);
    assert_eq!(
        fetch(media["url"].as_str().unwrap()).await,
        (StatusCode::OK, bytes.clone())
    );

    let id = created.body["id"].as_u64().unwrap();
    for _ in 0..2 {
        let read = app.get(&format!("/api/v1/posts/{id}"), None).await;
        read.assert_status(StatusCode::OK);
        let url = read.body["media"][0]["url"].as_str().unwrap().to_owned();
        assert_eq!(fetch(&url).await, (StatusCode::OK, bytes.clone()));
    }
    let timeline = app
        .get(&format!("/api/v1/users/{}/posts", alice.id), None)
        .await;
    assert_eq!(timeline.body["items"][0]["media"][0]["key"], key);
}

#[tokio::test]
async fn a_public_base_url_makes_plain_media_urls() {
    let app = TestApp::spawn_with(|config, _| {
        use_test_bucket(config);
        config.uploads.media_public_base_url = Some("https://cdn.example.test/".into());
    })
    .await;
    let alice = app.signup("alice").await;
    let key = upload_png(&app, &alice, 10).await;
    let created = create_post(&app, &alice, &[&key]).await;
    created.assert_status(StatusCode::CREATED);
    assert_eq!(
        created.body["media"][0]["url"],
        format!("https://cdn.example.test/{key}")
    );
}

#[tokio::test]
async fn the_s3_server_refuses_whatever_the_signature_does_not_allow() {
    let app = TestApp::spawn_with(|config, _| {
        use_test_bucket(config);
        config.uploads.upload_url_ttl = Duration::from_secs(1);
    })
    .await;
    let alice = app.signup("alice").await;
    let ticket = ticket(&app, &alice, "image/png", 100).await;
    let url = ticket["url"].as_str().unwrap();

    // A tampered signature.
    let signature_at = url.find("X-Amz-Signature=").unwrap() + "X-Amz-Signature=".len();
    let mut tampered = url.to_owned();
    let flipped = if &url[signature_at..=signature_at] == "0" {
        "1"
    } else {
        "0"
    };
    tampered.replace_range(signature_at..=signature_at, flipped);
    assert_eq!(
        put_with(&app, &ticket, &tampered, body_of(100), same)
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    // Another key under the same signature.
    let key = ticket["object_key"].as_str().unwrap();
    let other_key = url.replace(
        key.rsplit('/').next().unwrap(),
        "0b8e1f0e-6a56-4c4e-9a0e-6c1b7b8e2f10.png",
    );
    assert_ne!(other_key, url);
    assert_eq!(
        put_with(&app, &ticket, &other_key, body_of(100), same)
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    // A different Content-Type.
    assert_eq!(
        put_with(&app, &ticket, url, body_of(100), as_html)
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    // A different Content-Length (more bytes than were declared).
    assert_eq!(
        put_with(&app, &ticket, url, body_of(5000), as_5000_bytes)
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    // Expired.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        put(&app, &ticket, body_of(100)).await,
        StatusCode::FORBIDDEN
    );

    // None of those stored anything, so the key cannot be attached.
    let refused = create_post(&app, &alice, &[key]).await;
    refused.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    let message = refused.body["error"]["details"]["fields"]["media[0]"][0]
        .as_str()
        .unwrap();
    assert!(message.contains("no uploaded object"), "{message}");
}

#[tokio::test]
async fn upload_requests_are_checked_before_any_byte_moves() {
    let app = spawn(UploadStore::S3).await;
    let alice = app.signup("alice").await;
    let file = |content_type: &str, size: u64| json!({"file_name": "a.bin", "content_type": content_type, "size": size});
    let send = |files: Value| {
        app.request(
            Method::POST,
            "/api/v1/uploads",
            Some(&alice.token),
            json!({ "files": files }),
        )
    };

    send(json!([]))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "INVALID_FILE_COUNT");
    let eleven: Vec<Value> = (0..11).map(|_| file("image/png", 10)).collect();
    send(json!(eleven))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "INVALID_FILE_COUNT");

    let svg = send(json!([file("image/png", 10), file("image/svg+xml", 10)])).await;
    svg.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "MEDIA_TYPE_NOT_ALLOWED");
    assert_eq!(
        svg.body["error"]["details"]["field"],
        "files[1].content_type"
    );
    assert!(
        svg.body["error"]["details"]["allowed"]
            .as_array()
            .unwrap()
            .contains(&json!("video/mp4"))
    );

    let huge = send(json!([file("image/jpeg", 16 * 1024 * 1024 + 1)])).await;
    huge.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "UPLOAD_TOO_LARGE");
    assert_eq!(huge.body["error"]["details"]["field"], "files[0].size");
    assert_eq!(huge.body["error"]["details"]["max_bytes"], 16 * 1024 * 1024);
    // Videos have their own, larger limit.
    send(json!([file("video/mp4", 50 * 1024 * 1024)]))
        .await
        .assert_status(StatusCode::OK);

    let empty = send(json!([file("image/png", 0)])).await;
    empty.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    assert!(empty.body["error"]["details"]["fields"]["files[0].size"].is_array());
    let unnamed = send(json!([{"file_name": "", "content_type": "image/gif", "size": 3}])).await;
    unnamed.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");

    let anonymous = app
        .request(
            Method::POST,
            "/api/v1/uploads",
            None,
            json!({"files": [file("image/png", 1)]}),
        )
        .await;
    anonymous.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
}

async fn the_api_refuses_keys_that_are_not_the_callers_checked_uploads(store: UploadStore) {
    let app = TestApp::spawn_with(|config, _| {
        store.configure(config);
        config.uploads.upload_max_image_bytes = 1000;
    })
    .await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let store = store_of(&app);

    let reason = |response: &TestResponse, field: &str| {
        response.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
        response.body["error"]["details"]["fields"][field][0]
            .as_str()
            .unwrap_or_else(|| panic!("{field} is named: {}", response.body))
            .to_owned()
    };

    // Bob's upload is real, but not Alice's.
    let bobs = upload_png(&app, &bob, 10).await;
    let mine = upload_png(&app, &alice, 10).await;
    let response = create_post(&app, &alice, &[&mine, &bobs]).await;
    assert!(reason(&response, "media[1]").contains("not one of your uploads"));

    // Under Alice's prefix, but nothing was uploaded there.
    let missing = format!(
        "{}media/{}/0b8e1f0e-6a56-4c4e-9a0e-6c1b7b8e2f10.png",
        app.config.uploads.s3_key_prefix, alice.id
    );
    assert!(
        reason(&create_post(&app, &alice, &[&missing]).await, "media[0]")
            .contains("no uploaded object")
    );

    // An object larger than the limit, stored under Alice's prefix behind the API's back.
    let oversize = format!(
        "{}media/{}/1c9e2f0e-6a56-4c4e-9a0e-6c1b7b8e2f10.png",
        app.config.uploads.s3_key_prefix, alice.id
    );
    let signed = store
        .presign_put(&oversize, "image/png", 2000, Duration::from_secs(60))
        .await
        .unwrap();
    let ticket = json!({"url": signed.url, "headers": signed.headers});
    assert_eq!(put(&app, &ticket, body_of(2000)).await, StatusCode::OK);
    let too_big = reason(&create_post(&app, &alice, &[&oversize]).await, "media[0]");
    assert!(too_big.contains("2000 bytes"), "{too_big}");

    // Stored as another type than its name says.
    let mislabelled = format!(
        "{}media/{}/2d9e2f0e-6a56-4c4e-9a0e-6c1b7b8e2f10.png",
        app.config.uploads.s3_key_prefix, alice.id
    );
    let signed = store
        .presign_put(&mislabelled, "text/html", 10, Duration::from_secs(60))
        .await
        .unwrap();
    let ticket = json!({"url": signed.url, "headers": signed.headers});
    assert_eq!(put(&app, &ticket, body_of(10)).await, StatusCode::OK);
    assert!(
        reason(
            &create_post(&app, &alice, &[&mislabelled]).await,
            "media[0]"
        )
        .contains("text/html")
    );

    // Listed twice; and a made-up name.
    assert!(
        reason(
            &create_post(&app, &alice, &[&mine, &mine]).await,
            "media[1]"
        )
        .contains("twice")
    );
    let made_up = format!(
        "{}media/{}/../x.png",
        app.config.uploads.s3_key_prefix, alice.id
    );
    assert!(
        reason(&create_post(&app, &alice, &[&made_up]).await, "media[0]")
            .contains("not an upload key")
    );

    // None of the refusals stored a post; the good key still attaches.
    let profile = app.get(&format!("/api/v1/users/{}", alice.id), None).await;
    assert_eq!(profile.body["post_count"], 0);
    create_post(&app, &alice, &[&mine])
        .await
        .assert_status(StatusCode::CREATED);
}

async fn editing_a_post_replaces_its_media_after_the_same_checks(store: UploadStore) {
    let app = spawn(store).await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let first = upload_png(&app, &alice, 10).await;
    let second = upload_png(&app, &alice, 20).await;
    let created = create_post(&app, &alice, &[&first]).await;
    let id = created.body["id"].as_u64().unwrap();
    let path = format!("/api/v1/posts/{id}");

    let edited = app
        .request(
            Method::PATCH,
            &path,
            Some(&alice.token),
            json!({"media": [second, first]}),
        )
        .await;
    edited.assert_status(StatusCode::OK);
    let keys: Vec<&str> = edited.body["media"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, [second.as_str(), first.as_str()]);
    assert!(edited.body["edited_at"].is_string());

    let bobs = upload_png(&app, &bob, 10).await;
    let refused = app
        .request(
            Method::PATCH,
            &path,
            Some(&alice.token),
            json!({"media": [bobs]}),
        )
        .await;
    refused.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");
    let not_author = app
        .request(
            Method::PATCH,
            &path,
            Some(&bob.token),
            json!({"media": [bobs]}),
        )
        .await;
    not_author.assert_error(StatusCode::FORBIDDEN, "FORBIDDEN");

    let cleared = app
        .request(
            Method::PATCH,
            &path,
            Some(&alice.token),
            json!({"media": []}),
        )
        .await;
    cleared.assert_status(StatusCode::OK);
    assert_eq!(cleared.body["media"], json!([]));
    assert_eq!(app.get(&path, None).await.body["media"], json!([]));
}

async fn the_sweep_deletes_old_unattached_uploads_and_keeps_attached_ones(store: UploadStore) {
    let app = TestApp::spawn_with(|config, _| {
        store.configure(config);
        config.uploads.upload_unattached_max_age = Duration::from_secs(2);
    })
    .await;
    let alice = app.signup("alice").await;
    let store = store_of(&app);
    let attached = upload_png(&app, &alice, 10).await;
    let unattached = upload_png(&app, &alice, 10).await;
    let on_deleted_post = upload_png(&app, &alice, 10).await;
    let post = create_post(&app, &alice, &[&attached]).await;
    post.assert_status(StatusCode::CREATED);
    let doomed = create_post(&app, &alice, &[&on_deleted_post]).await;
    let doomed_path = format!("/api/v1/posts/{}", doomed.body["id"]);
    app.request(
        Method::DELETE,
        &doomed_path,
        Some(&alice.token),
        Value::Null,
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);

    // Young objects are left alone.
    let report = sns_api::uploads::sweep::sweep_unattached(&app.state)
        .await
        .unwrap();
    assert_eq!(report.deleted, 0);
    assert!(store.head(&unattached).await.unwrap().is_some());

    // S3 timestamps have one-second precision (files' finer): wait past the age with a margin.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    // Past three quarters of the age, an unattached upload can no longer be attached.
    let late = create_post(&app, &alice, &[&unattached]).await;
    late.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");

    let report = sns_api::uploads::sweep::sweep_unattached(&app.state)
        .await
        .unwrap();
    assert_eq!(report.deleted, 2, "{report:?}");
    assert!(store.head(&unattached).await.unwrap().is_none());
    assert!(store.head(&on_deleted_post).await.unwrap().is_none());
    assert!(store.head(&attached).await.unwrap().is_some());
    let read = app
        .get(&format!("/api/v1/posts/{}", post.body["id"]), None)
        .await;
    let url = read.body["media"][0]["url"].as_str().unwrap();
    assert_eq!(fetch(url).await.0, StatusCode::OK);
    // An attached key stays attachable past the window (an edit that keeps it).
    let kept = app
        .request(
            Method::PATCH,
            &format!("/api/v1/posts/{}", post.body["id"]),
            Some(&alice.token),
            json!({"media": [attached]}),
        )
        .await;
    kept.assert_status(StatusCode::OK);
}

#[tokio::test]
async fn without_a_store_uploads_answer_503_and_say_so_in_the_limits() {
    let app = TestApp::spawn().await;
    let alice = app.signup("alice").await;
    let response = app
        .request(
            Method::POST,
            "/api/v1/uploads",
            Some(&alice.token),
            json!({"files": [{"file_name": "a", "content_type": "image/png", "size": 1}]}),
        )
        .await;
    response.assert_error(StatusCode::SERVICE_UNAVAILABLE, "UPLOADS_UNAVAILABLE");
    assert!(response.header("retry-after").is_some());
    assert_eq!(
        app.get("/api/v1/config", None).await.body["uploads"]["enabled"],
        false
    );
    // The local directory's media routes exist only with one.
    app.get("/api/v1/media/media/1/x.png?expires=1&sig=00", None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "ROUTE_NOT_FOUND");
}
