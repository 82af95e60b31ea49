//! The test harness: a real API server on a free port over its own database: a MariaDB
//! database (with Redis and S3 as a test asks), or the embedded default's SQLite file,
//! in-process store and upload directory.
//!
//! The services come from `tests/env/testenv.sh`, which exports `SNS_TEST_*` variables; a test
//! that needs a service and does not find it fails with a message saying how to start it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sns_api::config::Config;
use sns_api::kv::Kv;
use sns_api::startup::App;
use sqlx::{Connection, MySqlConnection};
use tokio::sync::oneshot;

/// Reads a variable the test environment exports, failing loudly when it is absent.
pub fn test_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: start the test services with \
             `eval \"$(tests/env/testenv.sh start .testenv)\"` or run `tests/run-all.sh`"
        )
    })
}

/// A database of its own, created empty: on the test MariaDB primary, or a SQLite file in a
/// directory of its own (removed when the test ends).
pub struct TestDatabase {
    /// Database name (`test_<uuid>`).
    pub name: String,
    /// Server URL without a database, as the application user (empty for SQLite).
    pub server_url: String,
    /// The directory of a SQLite database (and of the embedded default's uploads).
    pub dir: Option<std::path::PathBuf>,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl TestDatabase {
    /// A SQLite database in a new directory under the system's temporary directory.
    pub fn create_sqlite() -> Self {
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let dir = std::env::temp_dir().join(format!("sns-embedded-{name}"));
        std::fs::create_dir_all(&dir).expect("creating the test's directory");
        Self {
            name,
            server_url: String::new(),
            dir: Some(dir),
        }
    }

    /// Creates `test_<uuid>` on the primary.
    pub async fn create() -> Self {
        Self::create_on(test_env("SNS_TEST_MYSQL_URL")).await
    }

    /// Creates `test_<uuid>` on the server at `server_url` (as the application user).
    pub async fn create_on(server_url: String) -> Self {
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = MySqlConnection::connect(&server_url)
            .await
            .expect("the test MariaDB primary accepts connections");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )))
        .execute(&mut conn)
        .await
        .expect("creating the test database");
        Self {
            name,
            server_url,
            dir: None,
        }
    }

    /// URL of this database (on the primary, for MariaDB).
    pub fn url(&self) -> String {
        match &self.dir {
            Some(dir) => format!("sqlite://{}", dir.join("sns.db").display()),
            None => format!("{}/{}", self.server_url.trim_end_matches('/'), self.name),
        }
    }

    /// URL of this database on the server at `port` (a replica), as the application user.
    pub fn url_on_port(&self, port: u16) -> String {
        let user = test_env("SNS_TEST_MYSQL_USER");
        let password = test_env("SNS_TEST_MYSQL_PASSWORD");
        format!("mysql://{user}:{password}@127.0.0.1:{port}/{}", self.name)
    }

    /// A direct connection to this database on the primary.
    pub async fn connect(&self) -> MySqlConnection {
        MySqlConnection::connect(&self.url())
            .await
            .expect("connecting to the test database")
    }
}

/// Points the app at the test S3 server (which checks signatures), under a key prefix of
/// its own.
pub fn use_test_bucket(config: &mut Config) {
    let uploads = &mut config.uploads;
    uploads.s3_endpoint = Some(test_env("SNS_TEST_S3_ENDPOINT"));
    uploads.s3_bucket = Some(test_env("SNS_TEST_S3_BUCKET"));
    uploads.s3_region = test_env("SNS_TEST_S3_REGION");
    uploads.s3_access_key_id = Some(test_env("SNS_TEST_S3_ACCESS_KEY"));
    uploads.s3_secret_access_key = Some(test_env("SNS_TEST_S3_SECRET_KEY").into());
    uploads.s3_key_prefix = format!("t-{}/", uuid::Uuid::new_v4().simple());
}

/// Where test apps' upload directories live; each app gets one of its own below, removed
/// when the app is dropped.
pub fn test_upload_dirs() -> PathBuf {
    std::env::temp_dir().join("sns-api-test-uploads")
}

/// Points the app at a fresh local upload directory (instead of a bucket), under a key prefix
/// of its own as with the bucket.
pub fn use_test_upload_dir(config: &mut Config) {
    let id = uuid::Uuid::new_v4().simple();
    config.uploads.upload_dir = Some(test_upload_dirs().join(id.to_string()));
    config.uploads.s3_key_prefix = format!("t-{id}/");
}

/// Which object store a test app uploads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadStore {
    /// The test S3 server.
    S3,
    /// A local directory the API serves itself.
    LocalDir,
}

impl UploadStore {
    /// What the app runs on: `services` with S3; the embedded default with a directory.
    pub fn backend(self, services: Backend) -> Backend {
        match self {
            Self::S3 => services,
            Self::LocalDir => Backend::Embedded,
        }
    }

    /// Configures the app for this store.
    pub fn configure(self, config: &mut Config) {
        match self {
            Self::S3 => use_test_bucket(config),
            Self::LocalDir => use_test_upload_dir(config),
        }
    }
}

/// What a test app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// MariaDB only: feeds from MySQL, no Redis.
    MySql,
    /// MariaDB and the standalone test Redis.
    Standalone,
    /// MariaDB and the 6-node test Redis Cluster.
    Cluster,
    /// The embedded default: a SQLite file, the in-process store and an upload directory.
    Embedded,
}

impl Backend {
    /// Whether feeds, the post cache and like deltas live in a Redis-like store.
    pub fn has_store(self) -> bool {
        self != Self::MySql
    }
}

/// A running API server and an HTTP client for it.
pub struct TestApp {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub address: String,
    /// The test's own database.
    pub database: TestDatabase,
    /// The configuration the server runs with.
    pub config: Config,
    /// The server's shared state, for tests that drive its background work directly.
    pub state: sns_api::state::AppState,
    client: reqwest::Client,
    _shutdown: oneshot::Sender<()>,
}

/// A registered user and a token for them.
#[derive(Debug, Clone)]
pub struct TestUser {
    /// User id.
    pub id: u64,
    /// Username.
    pub username: String,
    /// Password used at registration.
    pub password: String,
    /// Bearer token.
    pub token: String,
}

/// A response already read: status, headers and JSON body (`Value::Null` when empty).
#[derive(Debug)]
pub struct TestResponse {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// Parsed JSON body, or `Value::Null` for an empty body.
    pub body: Value,
}

impl TestResponse {
    /// The error contract's `error.code`.
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status, printing the body when it differs.
    #[track_caller]
    pub fn assert_status(&self, expected: StatusCode) -> &Self {
        assert_eq!(
            self.status, expected,
            "unexpected status; body: {}",
            self.body
        );
        self
    }

    /// Asserts an error response: status, code, and the contract's shape.
    #[track_caller]
    pub fn assert_error(&self, status: StatusCode, code: &str) {
        self.assert_status(status);
        assert_eq!(self.error_code(), code, "body: {}", self.body);
        assert!(
            self.body["error"]["message"].is_string(),
            "body: {}",
            self.body
        );
        assert!(
            self.body["error"]["details"].is_object(),
            "body: {}",
            self.body
        );
    }
}

impl TestApp {
    /// Starts a server on a fresh MariaDB database with the writer only.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_, _| {}).await
    }

    /// Starts a server on `backend` with its defaults.
    pub async fn spawn_on_backend(backend: Backend) -> Self {
        Self::spawn_with_backend(backend, |_, _| {}).await
    }

    /// Starts a server on `backend` (a fresh database; Redis under a key prefix of its own),
    /// letting the test adjust the configuration.
    pub async fn spawn_with_backend(
        backend: Backend,
        adjust: impl FnOnce(&mut Config, &TestDatabase),
    ) -> Self {
        let database = match backend {
            Backend::Embedded => TestDatabase::create_sqlite(),
            _ => TestDatabase::create().await,
        };
        Self::spawn_on(database, |config, database| {
            config.redis.redis_key_prefix = format!("t:{}:", uuid::Uuid::new_v4().simple());
            match backend {
                Backend::MySql | Backend::Embedded => {}
                Backend::Standalone => {
                    config.redis.redis_url = Some(test_env("SNS_TEST_REDIS_URL"));
                }
                Backend::Cluster => {
                    config.redis.redis_cluster_nodes = test_env("SNS_TEST_REDIS_CLUSTER_NODES")
                        .split(',')
                        .map(str::to_owned)
                        .collect();
                }
            }
            adjust(config, database);
        })
        .await
    }

    /// Starts a server on a fresh database, letting the test adjust the configuration.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Config, &TestDatabase)) -> Self {
        Self::spawn_on(TestDatabase::create().await, adjust).await
    }

    /// Starts a server on `database`, letting the test adjust the configuration.
    pub async fn spawn_on(
        database: TestDatabase,
        adjust: impl FnOnce(&mut Config, &TestDatabase),
    ) -> Self {
        init_test_logging();
        let mut config = Config::try_parse_from(["sns-api"]).expect("default configuration");
        config.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        config.database.database_url = database.url().into();
        config.database.database_reader_urls = Vec::new();
        config.database.database_max_connections = 8;
        config.auth.jwt_secret = Some(uuid::Uuid::new_v4().to_string().into());
        // Every test signs up from 127.0.0.1; the limits get their own tests.
        let generous: sns_api::ratelimit::limits::Limit = "1000000/1h".parse().expect("limit");
        let limits = &mut config.rate_limits;
        limits.rate_limit_requests = generous;
        limits.rate_limit_posts = generous;
        limits.rate_limit_comments = generous;
        limits.rate_limit_likes = generous;
        limits.rate_limit_uploads = generous;
        limits.rate_limit_signups = generous;
        limits.rate_limit_login_failures = generous;
        limits.rate_limit_login_failures_per_ip = generous;
        adjust(&mut config, &database);
        let app = App::build(config.clone()).await.expect("building the app");
        let address = format!("http://{}", app.local_addr().expect("bound address"));
        let state = app.state().clone();
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        Self {
            address,
            database,
            config,
            state,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("HTTP client"),
            _shutdown: shutdown,
        }
    }

    /// Sends a request; `body` is sent as JSON unless it is `Value::Null`.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> TestResponse {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.address));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if !body.is_null() {
            request = request.json(&body);
        }
        self.send(request).await
    }

    /// Sends a prepared request and reads it; a 5xx other than a dependency's 503 fails the
    /// test, since the suite proves that nothing a client sends can produce one.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> TestResponse {
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("reading the body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        assert!(
            !status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE,
            "the server answered {status}: {body}"
        );
        TestResponse {
            status,
            headers,
            body,
        }
    }

    /// The app's Redis (or in-process store), for inspecting keys.
    pub fn kv(&self) -> Kv {
        self.state.kv.clone().expect("this app uses Redis")
    }

    /// A connection to the app's database (the writer), for setting up and checking rows.
    /// Drop it soon: on SQLite the app has one writer connection, and holding it stops the
    /// app's writes.
    pub async fn db(&self) -> sns_api::db::PooledConn {
        self.state
            .db
            .writer()
            .acquire()
            .await
            .expect("a connection to the app's database")
    }

    /// Waits (bounded) until every fan-out job has finished.
    pub async fn wait_for_fanout(&self) {
        for _ in 0..300 {
            let (pending, _) = sns_api::feed::store::count_outbox_jobs(self.state.db.writer())
                .await
                .expect("counting fan-out jobs");
            if pending == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("fan-out did not finish within 15 s");
    }

    /// A token for `user_id` signed with the app's key (for users made directly in SQL).
    pub fn token_for(&self, user_id: u64) -> String {
        let keys = sns_api::http::auth::TokenKeys::from_config(&self.config.auth);
        keys.issue(user_id).expect("issuing a token")
    }

    /// Inserts `count` users directly (no password hashing), returning their ids.
    pub async fn insert_users(&self, prefix: &str, count: usize) -> Vec<u64> {
        crate::fixtures::insert_users(&mut self.db().await, prefix, count).await
    }

    /// Makes each of `followers` follow `followee` directly in SQL, counters included.
    pub async fn insert_follows(&self, followers: &[u64], followee: u64) {
        crate::fixtures::insert_follows(&mut self.db().await, followers, followee).await;
    }

    /// A request builder for cases the typed helpers do not cover (raw bodies, headers).
    pub fn raw(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.address))
    }

    /// GET as `token` (or anonymously).
    pub async fn get(&self, path: &str, token: Option<&str>) -> TestResponse {
        self.request(Method::GET, path, token, Value::Null).await
    }

    /// Registers a user named `<prefix>_<random>` and logs them in.
    pub async fn signup(&self, prefix: &str) -> TestUser {
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let username = format!("{prefix}_{suffix}");
        let password = "correct horse battery".to_owned();
        let created = self
            .request(
                Method::POST,
                "/api/v1/users",
                None,
                json!({"username": username, "email": format!("{username}@example.com"), "password": password}),
            )
            .await;
        created.assert_status(StatusCode::CREATED);
        let id = created.body["id"].as_u64().expect("user id");
        let token = self.login(&username, &password).await;
        TestUser {
            id,
            username,
            password,
            token,
        }
    }

    /// Exchanges credentials for a token.
    pub async fn login(&self, login: &str, password: &str) -> String {
        let response = self
            .request(
                Method::POST,
                "/api/v1/auth/token",
                None,
                json!({"login": login, "password": password}),
            )
            .await;
        response.assert_status(StatusCode::OK);
        response.body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Creates a post as `user` and returns its id.
    pub async fn create_post(&self, user: &TestUser, content: &str) -> u64 {
        let response = self
            .request(
                Method::POST,
                "/api/v1/posts",
                Some(&user.token),
                json!({ "content": content }),
            )
            .await;
        response.assert_status(StatusCode::CREATED);
        response.body["id"].as_u64().expect("post id")
    }

    /// Comments on a post as `user` and returns the comment id.
    pub async fn create_comment(&self, user: &TestUser, post_id: u64, content: &str) -> u64 {
        let response = self
            .request(
                Method::POST,
                &format!("/api/v1/posts/{post_id}/comments"),
                Some(&user.token),
                json!({ "content": content }),
            )
            .await;
        response.assert_status(StatusCode::CREATED);
        response.body["id"].as_u64().expect("comment id")
    }

    /// Makes `follower` follow `followee`.
    pub async fn follow(&self, follower: &TestUser, followee: &TestUser) {
        self.request(
            Method::PUT,
            &format!("/api/v1/users/{}/follow", followee.id),
            Some(&follower.token),
            Value::Null,
        )
        .await
        .assert_status(StatusCode::OK);
    }

    /// Follows `Link: <...>; rel="next"` headers from `path` and collects every item's id.
    pub async fn collect_pages(&self, path: &str, token: Option<&str>) -> Vec<u64> {
        let mut ids = Vec::new();
        let mut next = Some(path.to_owned());
        let mut pages = 0;
        while let Some(path) = next.take() {
            pages += 1;
            assert!(pages < 1000, "paging never ends");
            let response = self.get(&path, token).await;
            response.assert_status(StatusCode::OK);
            ids.extend(
                response.body["items"]
                    .as_array()
                    .expect("items")
                    .iter()
                    .map(|item| item["id"].as_u64().expect("item id")),
            );
            let cursor = response.body["next_cursor"].as_str().map(str::to_owned);
            next = response.header("link").map(|link| {
                let target = link
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .expect("link target")
                    .to_owned();
                assert!(
                    target.contains(cursor.as_deref().expect("next_cursor with a Link")),
                    "the Link header carries next_cursor"
                );
                target
            });
            if next.is_none() {
                assert!(cursor.is_none(), "next_cursor without a Link header");
            }
        }
        ids
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(dir) = &self.config.uploads.upload_dir
            && dir.starts_with(test_upload_dirs())
        {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn init_test_logging() {
    if std::env::var("TEST_LOG").is_ok() {
        sns_api::telemetry::init(&sns_api::config::LogConfig {
            log_format: "text".into(),
            log_filter: "info,sns_api=debug".into(),
        });
    }
}
