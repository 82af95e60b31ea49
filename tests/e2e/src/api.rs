//! A client of the deployed API (`/api/v1`), reached through its Service: each call is one
//! step of a client's journey, and fails the test with the status and body when the API
//! answers otherwise than it should.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The password every account of the journey gets.
const PASSWORD: &str = "correct horse battery";

/// The API at `base` (`http://HOST:PORT`).
#[derive(Clone)]
pub struct ApiClient {
    base: String,
    http: reqwest::Client,
}

impl ApiClient {
    /// A client of the API at `base`.
    pub fn new(base: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .expect("an HTTP client");
        Self {
            base: base.trim_end_matches('/').to_owned(),
            http,
        }
    }

    /// Sends `method path` (under /api/v1) with an optional bearer token and JSON body;
    /// returns the status and the JSON answer (`null` when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value), reqwest::Error> {
        let mut request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, value))
    }

    /// Like [`call`](Self::call), asserting the status.
    pub async fn expect(
        &self,
        expected: StatusCode,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Value {
        let what = format!("{method} {path}");
        let (status, value) = self
            .call(method, path, token, body)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(status, expected, "{what} answered {status}: {value}");
        value
    }

    /// `GET /feed` as the holder of `token`: status, page, and `X-Feed-Source` (`redis`
    /// or `database`).
    pub async fn feed(
        &self,
        token: &str,
    ) -> Result<(StatusCode, Value, Option<String>), reqwest::Error> {
        let response = self
            .http
            .get(format!("{}/api/v1/feed", self.base))
            .bearer_auth(token)
            .send()
            .await?;
        let status = response.status();
        let source = response
            .headers()
            .get("x-feed-source")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let page = response.json().await.unwrap_or(Value::Null);
        Ok((status, page, source))
    }

    /// `GET /readyz` answers 200.
    pub async fn is_ready(&self) -> bool {
        matches!(
            self.http.get(format!("{}/readyz", self.base)).send().await,
            Ok(response) if response.status() == StatusCode::OK
        )
    }

    /// Registers `username`, then logs in at once (a read right after the write: a lagging
    /// replica must not answer it); returns (user id, access token).
    pub async fn sign_up(&self, username: &str) -> (u64, String) {
        self.expect(
            StatusCode::CREATED,
            Method::POST,
            "/users",
            None,
            Some(json!({
                "username": username,
                "email": format!("{username}@example.com"),
                "password": PASSWORD,
            })),
        )
        .await;
        let token = self
            .expect(
                StatusCode::OK,
                Method::POST,
                "/auth/token",
                None,
                Some(json!({ "login": username, "password": PASSWORD })),
            )
            .await["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access_token for {username}"))
            .to_owned();
        let profile = self
            .expect(
                StatusCode::OK,
                Method::GET,
                &format!("/users/{username}"),
                None,
                None,
            )
            .await;
        let id = profile["id"]
            .as_u64()
            .unwrap_or_else(|| panic!("no id in {profile}"));
        (id, token)
    }

    /// Asks for an upload URL, then PUTs `bytes` to it (straight to S3); returns the object
    /// key to attach.
    pub async fn upload(
        &self,
        token: &str,
        file_name: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> String {
        let ticket = self
            .expect(
                StatusCode::OK,
                Method::POST,
                "/uploads",
                Some(token),
                Some(json!({ "files": [{
                    "file_name": file_name,
                    "content_type": content_type,
                    "size": bytes.len(),
                }]})),
            )
            .await;
        let upload = &ticket["uploads"][0];
        let url = upload["url"]
            .as_str()
            .unwrap_or_else(|| panic!("no upload url in {ticket}"));
        let response = self
            .http
            .put(url)
            .header("content-type", content_type)
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap_or_else(|e| panic!("PUT to the upload URL {url}: {e}"));
        let status = response.status();
        assert!(
            status.is_success(),
            "the upload URL answered {status}: {}",
            response.text().await.unwrap_or_default()
        );
        upload["object_key"]
            .as_str()
            .unwrap_or_else(|| panic!("no object_key in {ticket}"))
            .to_owned()
    }

    /// GETs an absolute URL (a media URL the API handed out); returns the bytes.
    pub async fn fetch(&self, url: &str) -> Vec<u8> {
        let response = self
            .http
            .get(url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        assert!(
            response.status().is_success(),
            "GET {url}: {}",
            response.status()
        );
        response
            .bytes()
            .await
            .unwrap_or_else(|e| panic!("reading {url}: {e}"))
            .to_vec()
    }
}
