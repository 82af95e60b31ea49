//! The local-directory store's own media routes: what they refuse (and that a refusal stores
//! nothing, not even part of a file), signed downloads, the signing key kept across restarts,
//! and a configured public URL and key. The upload flow shared with S3 is in `uploads`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sns_api::uploads::local::LocalDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Backend, TestApp, use_test_upload_dir};
use crate::uploads::{
    as_5000_bytes, as_gif, as_html, body_of, create_post, fetch, put, put_with, same, store_of,
    ticket, upload_png,
};

async fn spawn() -> TestApp {
    TestApp::spawn_with_backend(Backend::Embedded, |config, _| use_test_upload_dir(config)).await
}

fn upload_dir(app: &TestApp) -> PathBuf {
    app.config
        .uploads
        .upload_dir
        .clone()
        .expect("an upload directory")
}

fn local(app: &TestApp) -> std::sync::Arc<LocalDir> {
    match store_of(app) {
        sns_api::uploads::store::ObjectStore::LocalDir(local) => local,
        sns_api::uploads::store::ObjectStore::S3(_) => panic!("this app uploads to S3"),
    }
}

/// Every file under `dir`, hidden ones included, as sorted relative paths.
fn files_in(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, files: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, files);
            } else {
                let relative = path.strip_prefix(root).unwrap();
                files.push(relative.to_string_lossy().into_owned());
            }
        }
    }
    let mut files = Vec::new();
    walk(dir, dir, &mut files);
    files.sort();
    files
}

/// `url` with query parameter `name` set to `value` (or removed with `None`).
fn with_param(url: &str, name: &str, value: Option<&str>) -> String {
    let (base, query) = url.split_once('?').unwrap();
    let mut pairs: Vec<String> = query
        .split('&')
        .filter(|pair| pair.split('=').next() != Some(name))
        .map(str::to_owned)
        .collect();
    if let Some(value) = value {
        pairs.push(format!("{name}={value}"));
    }
    format!("{base}?{}", pairs.join("&"))
}

fn param<'a>(url: &'a str, name: &str) -> &'a str {
    url.split_once('?')
        .unwrap()
        .1
        .split('&')
        .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
        .unwrap()
}

/// A signature with its first digit changed.
fn flipped(signature: &str) -> String {
    let first = if signature.starts_with('0') { '1' } else { '0' };
    format!("{first}{}", &signature[1..])
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Sends a request line, headers and `body` over a raw connection, then either half-closes
/// it and reads the answer, or (with `hang_up`) drops it mid-body.
async fn raw_put(app: &TestApp, url: &str, length: u64, body: &[u8], hang_up: bool) -> String {
    let host = app.address.trim_start_matches("http://");
    let target = url.strip_prefix(&app.address).unwrap();
    let mut stream = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!(
        "PUT {target} HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/png\r\n\
         Content-Length: {length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    stream.flush().await.unwrap();
    if hang_up {
        drop(stream);
        return String::new();
    }
    stream.shutdown().await.unwrap();
    let mut answer = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer)).await;
    answer
}

/// Waits (bounded) until `dir` holds exactly `expected`.
async fn wait_for_files(dir: &Path, expected: &[&str]) {
    for _ in 0..100 {
        if files_in(dir) == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(files_in(dir), expected);
}

#[tokio::test]
async fn the_media_routes_refuse_whatever_the_signature_does_not_allow_and_store_nothing() {
    let app = spawn().await;
    let alice = app.signup("alice").await;
    let dir = upload_dir(&app);
    let ticket = ticket(&app, &alice, "image/png", 100).await;
    let url = ticket["url"].as_str().unwrap();
    let key = ticket["object_key"].as_str().unwrap();
    let send = |url: String, body: Vec<u8>, adjust: fn(&str, &str) -> Option<String>| {
        let ticket = ticket.clone();
        let app = &app;
        async move { put_with(app, &ticket, &url, body, adjust).await }
    };

    // A tampered signature, and no signature at all.
    let signature = param(url, "sig");
    send(
        with_param(url, "sig", Some(&flipped(signature))),
        body_of(100),
        same,
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "SIGNATURE_INVALID");
    send(with_param(url, "sig", None), body_of(100), same)
        .await
        .assert_error(StatusCode::FORBIDDEN, "SIGNATURE_INVALID");

    // Each signed parameter changed under the same signature: the key, the expiry, the type
    // and the length (with headers and body to match the change).
    let other_key = url.replace(
        key.rsplit('/').next().unwrap(),
        "0b8e1f0e-6a56-4c4e-9a0e-6c1b7b8e2f10.png",
    );
    assert_ne!(other_key, url);
    send(other_key, body_of(100), same)
        .await
        .assert_error(StatusCode::FORBIDDEN, "SIGNATURE_INVALID");
    let later = (param(url, "expires").parse::<u64>().unwrap() + 3600).to_string();
    send(with_param(url, "expires", Some(&later)), body_of(100), same)
        .await
        .assert_error(StatusCode::FORBIDDEN, "SIGNATURE_INVALID");
    send(
        with_param(url, "type", Some("image%2Fgif")),
        body_of(100),
        as_gif,
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "SIGNATURE_INVALID");
    send(
        with_param(url, "length", Some("5000")),
        body_of(5000),
        as_5000_bytes,
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "SIGNATURE_INVALID");

    // Headers other than the signed ones.
    let html = send(url.to_owned(), body_of(100), as_html).await;
    html.assert_error(StatusCode::FORBIDDEN, "CONTENT_TYPE_MISMATCH");
    assert_eq!(html.body["error"]["details"]["expected"], "image/png");
    send(url.to_owned(), body_of(100), |name, value| {
        (name != "content-type").then(|| value.to_owned())
    })
    .await
    .assert_error(StatusCode::FORBIDDEN, "CONTENT_TYPE_MISMATCH");
    let longer = send(url.to_owned(), body_of(5000), as_5000_bytes).await;
    longer.assert_error(StatusCode::FORBIDDEN, "CONTENT_LENGTH_MISMATCH");
    assert_eq!(longer.body["error"]["details"]["expected"], "100");

    // A body that ends before its length: refused, and so is one whose client hangs up.
    let answer = raw_put(&app, url, 100, &body_of(40), false).await;
    assert!(
        answer.starts_with("HTTP/1.1 400") && answer.contains("BODY_LENGTH_MISMATCH"),
        "{answer}"
    );
    raw_put(&app, url, 100, &body_of(40), true).await;

    // Keys that would leave the directory, and one naming the store's own files.
    for bad_key in [
        "media/%2e%2e%2F%2e%2e%2Fescaped.png",
        "media/..%2F..%2Fescaped.png",
        "media%5C..%5Cescaped.png",
        ".signing-key",
    ] {
        let target = url.replace(key, bad_key);
        assert_ne!(target, url);
        send(target, body_of(100), same)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "INVALID_MEDIA_KEY");
    }

    // An expired URL, signed with a past expiry.
    let expired = local(&app)
        .signed_put(key, "image/png", 100, unix_now() - 1)
        .unwrap();
    send(expired.url, body_of(100), same)
        .await
        .assert_error(StatusCode::FORBIDDEN, "URL_EXPIRED");

    // The upload URL does not download.
    app.send(reqwest::Client::new().get(url))
        .await
        .assert_error(StatusCode::FORBIDDEN, "SIGNATURE_INVALID");

    // None of that stored anything, not even part of a file, so the key cannot be attached.
    wait_for_files(&dir, &[".signing-key"]).await;
    let refused = create_post(&app, &alice, &[key]).await;
    refused.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED");

    // The ticket as issued still works.
    assert_eq!(put(&app, &ticket, body_of(100)).await, StatusCode::OK);
    let (parent, name) = key.rsplit_once('/').unwrap();
    wait_for_files(
        &dir,
        &[
            ".signing-key",
            &format!("{parent}/.{name}.meta"),
            &format!("{parent}/{name}"),
        ],
    )
    .await;
    create_post(&app, &alice, &[key])
        .await
        .assert_status(StatusCode::CREATED);
}

#[tokio::test]
async fn a_body_longer_or_shorter_than_signed_or_stalled_is_not_stored() {
    let app = spawn().await;
    let dir = upload_dir(&app);
    let local = local(&app);
    let key = format!(
        "{}media/1/0b8e1f0e-6a56-4c4e-9a0e-6c1b7b8e2f10.png",
        app.config.uploads.s3_key_prefix
    );
    let chunks = |sizes: &[usize]| {
        let chunks: Vec<Result<axum::body::Bytes, std::io::Error>> = sizes
            .iter()
            .map(|size| Ok(axum::body::Bytes::from(body_of(*size))))
            .collect();
        futures::stream::iter(chunks)
    };
    let idle = Duration::from_secs(5);
    let budget = Duration::from_secs(60);

    let longer = local
        .write(&key, "image/png", 100, chunks(&[60, 60]), idle, budget)
        .await;
    assert!(
        matches!(longer, Err(sns_api::uploads::local::WriteError::TooLong)),
        "{longer:?}"
    );
    let shorter = local
        .write(&key, "image/png", 100, chunks(&[60]), idle, budget)
        .await;
    assert!(
        matches!(
            shorter,
            Err(sns_api::uploads::local::WriteError::Incomplete { received: 60 })
        ),
        "{shorter:?}"
    );
    let stalled = local
        .write(
            &key,
            "image/png",
            100,
            futures::StreamExt::chain(chunks(&[60]), futures::stream::pending()),
            Duration::from_millis(100),
            budget,
        )
        .await;
    assert!(
        matches!(stalled, Err(sns_api::uploads::local::WriteError::Stalled)),
        "{stalled:?}"
    );
    // A trickle: every chunk well within the idle timeout, the whole body (10 x 60 ms at
    // least, however slow the machine) not within the 300 ms budget.
    let trickle = futures::StreamExt::then(chunks(&[10; 10]), |chunk| async move {
        tokio::time::sleep(Duration::from_millis(60)).await;
        chunk
    });
    let too_slow = local
        .write(
            &key,
            "image/png",
            100,
            trickle,
            idle,
            Duration::from_millis(300),
        )
        .await;
    assert!(
        matches!(too_slow, Err(sns_api::uploads::local::WriteError::TooSlow)),
        "{too_slow:?}"
    );
    assert_eq!(files_in(&dir), [".signing-key"]);

    local
        .write(&key, "image/png", 100, chunks(&[60, 40]), idle, budget)
        .await
        .unwrap();
    let head = store_of(&app).head(&key).await.unwrap().unwrap();
    assert_eq!(head.size, 100);
    assert_eq!(head.content_type.as_deref(), Some("image/png"));
    let listed = store_of(&app)
        .list(&format!("{}media/", app.config.uploads.s3_key_prefix))
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        [key.as_str()]
    );
    store_of(&app).delete(&key).await.unwrap();
    assert_eq!(files_in(&dir), [".signing-key"]);
    assert!(store_of(&app).head(&key).await.unwrap().is_none());
}

#[tokio::test]
async fn media_urls_are_signed_gets_that_expire_and_serve_the_stored_bytes() {
    let app = spawn().await;
    let alice = app.signup("alice").await;
    // Larger than the JSON body limit and than one chunk of the body stream.
    const SIZE: usize = 300 * 1024 + 7;
    let key = upload_png(&app, &alice, SIZE).await;
    let created = create_post(&app, &alice, &[&key]).await;
    created.assert_status(StatusCode::CREATED);
    let url = created.body["media"][0]["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("{}/api/v1/media/{key}?", app.address)),
        "{url}"
    );

    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "image/png");
    assert_eq!(header("content-length"), SIZE.to_string());
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert!(header("cache-control").starts_with("private, max-age="));
    // Downloads are authorised by their signature, not counted against rate limits.
    assert!(response.headers().get("x-ratelimit-limit").is_none());
    assert_eq!(response.bytes().await.unwrap().to_vec(), body_of(SIZE));
    let head = reqwest::Client::new().head(&url).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(head.headers()["content-length"], SIZE.to_string().as_str());
    assert_eq!(head.headers()["accept-ranges"], "bytes");

    // One byte range (players seek with these): 206 with exactly those bytes.
    let ranged = |range: &'static str| {
        reqwest::Client::new()
            .get(&url)
            .header("range", range)
            .send()
    };
    let part = ranged("bytes=100000-100009").await.unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        part.headers()["content-range"],
        format!("bytes 100000-100009/{SIZE}").as_str()
    );
    assert_eq!(part.headers()["content-type"], "image/png");
    assert_eq!(
        part.bytes().await.unwrap().to_vec(),
        body_of(SIZE)[100_000..100_010].to_vec()
    );
    let tail = ranged("bytes=-7").await.unwrap();
    assert_eq!(tail.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        tail.bytes().await.unwrap().to_vec(),
        body_of(SIZE)[SIZE - 7..].to_vec()
    );
    let past = app
        .send(
            reqwest::Client::new()
                .get(&url)
                .header("range", format!("bytes={SIZE}-")),
        )
        .await;
    past.assert_error(StatusCode::RANGE_NOT_SATISFIABLE, "RANGE_NOT_SATISFIABLE");
    assert_eq!(
        past.header("content-range"),
        Some(format!("bytes */{SIZE}").as_str())
    );

    let get = |url: String| app.send(reqwest::Client::new().get(url));
    get(with_param(&url, "sig", Some(&flipped(param(&url, "sig")))))
        .await
        .assert_error(StatusCode::FORBIDDEN, "SIGNATURE_INVALID");
    let later = (param(&url, "expires").parse::<u64>().unwrap() + 60).to_string();
    get(with_param(&url, "expires", Some(&later)))
        .await
        .assert_error(StatusCode::FORBIDDEN, "SIGNATURE_INVALID");
    let other = upload_png(&app, &alice, 10).await;
    get(url.replace(&key, &other))
        .await
        .assert_error(StatusCode::FORBIDDEN, "SIGNATURE_INVALID");
    // A download URL does not upload, even with a type and length added.
    let as_put = with_param(
        &with_param(&url, "type", Some("image%2Fpng")),
        "length",
        Some("300"),
    );
    let ticket = json!({"headers": {"content-type": "image/png", "content-length": "300"}});
    put_with(&app, &ticket, &as_put, body_of(300), |_, value| {
        Some(value.to_owned())
    })
    .await
    .assert_error(StatusCode::FORBIDDEN, "SIGNATURE_INVALID");

    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let expired = store_of(&app)
        .presign_get(&key, an_hour_ago, Duration::from_secs(60))
        .await
        .unwrap();
    get(expired)
        .await
        .assert_error(StatusCode::FORBIDDEN, "URL_EXPIRED");
    let missing = format!(
        "{}media/{}/1c9e2f0e-6a56-4c4e-9a0e-6c1b7b8e2f10.png",
        app.config.uploads.s3_key_prefix, alice.id
    );
    let missing = store_of(&app)
        .presign_get(&missing, SystemTime::now(), Duration::from_secs(60))
        .await
        .unwrap();
    get(missing)
        .await
        .assert_error(StatusCode::NOT_FOUND, "MEDIA_NOT_FOUND");
    app.request(
        Method::DELETE,
        &format!("/api/v1/media/{key}"),
        None,
        Value::Null,
    )
    .await
    .assert_error(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED");
    assert_eq!(fetch(&url).await, (StatusCode::OK, body_of(SIZE)));
}

#[tokio::test]
async fn a_generated_signing_key_is_kept_so_urls_survive_a_restart() {
    let first = spawn().await;
    let dir = upload_dir(&first);
    let key_file = dir.join(".signing-key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let alice = first.signup("alice").await;
    let ticket = ticket(&first, &alice, "image/png", 50).await;

    // A second process on the same directory (its own port and database).
    let prefix = first.config.uploads.s3_key_prefix.clone();
    let second = TestApp::spawn_with_backend(Backend::Embedded, |config, _| {
        config.uploads.upload_dir = Some(dir.clone());
        config.uploads.s3_key_prefix = prefix;
    })
    .await;
    let url = ticket["url"]
        .as_str()
        .unwrap()
        .replace(&first.address, &second.address);
    let response = put_with(&second, &ticket, &url, body_of(50), |_, value| {
        Some(value.to_owned())
    })
    .await;
    response.assert_status(StatusCode::OK);
    let key = ticket["object_key"].as_str().unwrap();
    let start = SystemTime::now();
    let from_first = store_of(&first)
        .presign_get(key, start, Duration::from_secs(60))
        .await
        .unwrap();
    let from_second = store_of(&second)
        .presign_get(key, start, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(param(&from_first, "sig"), param(&from_second, "sig"));
    assert_eq!(fetch(&from_first).await, (StatusCode::OK, body_of(50)));
}

#[tokio::test]
async fn a_configured_public_url_and_signing_key_are_used() {
    let app = TestApp::spawn_with_backend(Backend::Embedded, |config, _| {
        use_test_upload_dir(config);
        config.uploads.public_url = Some("https://sns.example.test/base/".into());
        config.uploads.upload_signing_key = Some(
            "a signing key of more than thirty-two bytes"
                .to_owned()
                .into(),
        );
    })
    .await;
    let alice = app.signup("alice").await;
    let ticket = ticket(&app, &alice, "video/mp4", 10).await;
    let url = ticket["url"].as_str().unwrap();
    let key = ticket["object_key"].as_str().unwrap();
    assert!(
        url.starts_with(&format!(
            "https://sns.example.test/base/api/v1/media/{key}?"
        )),
        "{url}"
    );
    assert_eq!(param(url, "type"), "video%2Fmp4");
    // No key file: the configured key signs.
    assert!(files_in(&upload_dir(&app)).is_empty());
    // Behind a proxy that strips the base path, the same URL reaches this server.
    let direct = url.replace("https://sns.example.test/base", &app.address);
    put_with(&app, &ticket, &direct, body_of(10), |_, value| {
        Some(value.to_owned())
    })
    .await
    .assert_status(StatusCode::OK);
}
