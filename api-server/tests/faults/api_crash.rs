//! The API process killed (SIGKILL) in the middle of a fan-out: the outbox row survives it,
//! and the next process finishes the fan-out. Nothing lost.

use std::process::Stdio;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestDatabase, test_env};
use crate::{create_feeds, eventually, feeds_missing};

/// A real `sns-api` process on the shared MariaDB and Redis, under this test's database and
/// key prefix.
struct ApiProcess {
    child: tokio::process::Child,
    address: String,
}

impl ApiProcess {
    async fn start(database_url: &str, prefix: &str, secret: &str) -> Self {
        // A free port: bound, read, released (the server binds it again at once).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sns-api"))
            .env_clear()
            .env("API_LISTEN", format!("127.0.0.1:{port}"))
            .env("API_DATABASE_URL", database_url)
            .env("API_REDIS_URL", test_env("SNS_TEST_REDIS_URL"))
            .env("API_REDIS_KEY_PREFIX", prefix)
            .env("API_JWT_SECRET", secret)
            .env("API_RATE_LIMIT_ENABLED", "false")
            // Small pages and one worker make the fan-out long enough to be cut in two.
            .env("API_FANOUT_PAGE_SIZE", "1")
            .env("API_FANOUT_WORKERS", "1")
            .env("API_FANOUT_LEASE", "2s")
            .env("API_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("starting sns-api");
        let process = Self {
            child,
            address: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let health = format!("{}/healthz", process.address);
        eventually(30, "sns-api answers /healthz", || async {
            client
                .get(&health)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        process
    }

    /// SIGKILL: no shutdown, no cleanup, whatever was in flight is cut.
    async fn kill(mut self) {
        self.child.start_kill().expect("SIGKILL");
        self.child.wait().await.expect("reaping sns-api");
    }
}

async fn outbox_rows(database: &TestDatabase) -> u64 {
    let (rows, _parked) = sns_api::feed::store::count_outbox_jobs(&mut database.connect().await)
        .await
        .unwrap();
    rows
}

#[tokio::test]
async fn a_fan_out_cut_by_sigkill_is_finished_by_the_next_process() {
    let database = TestDatabase::create().await;
    let prefix = format!("t:{}:", uuid::Uuid::new_v4().simple());
    let secret = uuid::Uuid::new_v4().to_string();
    let first = ApiProcess::start(&database.url(), &prefix, &secret).await;

    let mut conn = database.connect().await;
    let author = crate::fixtures::insert_users(&mut conn, "author", 1).await[0];
    let followers = crate::fixtures::insert_users(&mut conn, "f", 9_000).await;
    crate::fixtures::insert_follows(&mut conn, &followers, author).await;
    let mut config =
        <sns_api::config::Config as clap::Parser>::try_parse_from(["sns-api"]).unwrap();
    config.redis.redis_url = Some(test_env("SNS_TEST_REDIS_URL"));
    config.redis.redis_key_prefix = prefix.clone();
    let kv = sns_api::kv::Kv::connect(&config.redis).unwrap().unwrap();
    create_feeds(&kv, &followers).await;

    let mut auth = config.auth.clone();
    auth.jwt_secret = Some(secret.clone().into());
    let token = sns_api::http::auth::TokenKeys::from_config(&auth)
        .issue(author)
        .unwrap();
    let created = reqwest::Client::new()
        .post(format!("{}/api/v1/posts", first.address))
        .bearer_auth(&token)
        .json(&json!({"content": "cut in the middle"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let post = created.json::<serde_json::Value>().await.unwrap()["id"]
        .as_u64()
        .unwrap();

    // Kill it once the fan-out has started but before it ends.
    let sample = &followers[..200];
    eventually(20, "the fan-out starts", || async {
        feeds_missing(&kv, sample, post).await < sample.len()
    })
    .await;
    first.kill().await;
    let missing = feeds_missing(&kv, &followers, post).await;
    assert!(missing > 0, "the kill came before the fan-out's end");
    assert_eq!(
        outbox_rows(&database).await,
        1,
        "the job outlived the process"
    );

    // A new process takes the job up once the dead one's lease ends, and finishes it.
    let second = ApiProcess::start(&database.url(), &prefix, &secret).await;
    eventually(60, "the outbox empties", || async {
        outbox_rows(&database).await == 0
    })
    .await;
    assert_eq!(feeds_missing(&kv, &followers, post).await, 0, "none lost");
    second.kill().await;
}
