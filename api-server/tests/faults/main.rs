//! Faults injected for real: Redis stopped, a Redis Cluster master killed, the API process
//! killed mid-fan-out, the MariaDB primary killed and a replica promoted. Each test that breaks
//! a service runs on services of its own (`tests/env/testenv.sh` in a private directory), so
//! the other tests never see the fault.

// The whole binary is tests (scenario helpers are not `#[test]`s themselves).
#![allow(clippy::unwrap_used)]

#[path = "../api/fixtures.rs"]
mod fixtures;
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;

mod api_crash;
mod cluster_failover;
mod mysql_failover;
mod private_env;
mod redis_outage;

use helpers::TestApp;
use sns_api::kv::{Batch, Kv};

/// A metric's value as `/metrics` shows it now (the sum over its label sets; 0 if absent).
pub async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app
        .raw(reqwest::Method::GET, "/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Gives each user an (empty) Redis feed, as after their last read: fan-out only writes to
/// feeds that exist.
pub async fn create_feeds(kv: &Kv, users: &[u64]) {
    for chunk in users.chunks(500) {
        let writes = chunk
            .iter()
            .map(|id| sns_api::feed::cache::write_feed(kv, *id, &[], 1, 3600));
        for result in futures::future::join_all(writes).await {
            result.expect("creating a feed");
        }
    }
}

/// How many of `users`' Redis feeds lack `post`.
pub async fn feeds_missing(kv: &Kv, users: &[u64], post: u64) -> usize {
    let mut missing = 0;
    for chunk in users.chunks(2000) {
        let mut batch = Batch::new();
        for id in chunk {
            let key = kv.keys().feed(*id);
            let mut zscore = redis::cmd("ZSCORE");
            zscore.arg(&key).arg(post);
            batch.add(key, zscore);
        }
        let scores = kv.run(batch).await.expect("reading feeds");
        missing += scores
            .iter()
            .filter(|score| !matches!(score, redis::Value::BulkString(_) | redis::Value::Double(_)))
            .count();
    }
    missing
}

/// Waits (bounded) until `check` holds, polling every 100 ms.
pub async fn eventually<F, Fut>(seconds: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {seconds} s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Outbox jobs, and how many are parked.
pub async fn outbox(app: &TestApp) -> (u64, u64) {
    sns_api::feed::store::count_outbox_jobs(&mut app.database.connect().await)
        .await
        .unwrap()
}
