//! Likes against real Redis (standalone and cluster): idempotence, exact counts under
//! concurrency, and no like lost when Redis loses its data.

use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{Backend, TestApp};

on_every_store!(
    like_and_unlike_are_idempotent_and_counted,
    concurrent_likes_count_exactly_and_survive_redis_losing_its_data,
);

#[tokio::test]
async fn likes_work_without_redis() {
    like_and_unlike_are_idempotent_and_counted(Backend::MySql).await;
}

async fn like_and_unlike_are_idempotent_and_counted(backend: Backend) {
    let app = TestApp::spawn_with_backend(backend, |_, _| {}).await;
    let (alice, bob) = (app.signup("alice").await, app.signup("bob").await);
    let post = app.create_post(&alice, "like me").await;
    let path = format!("/api/v1/posts/{post}/like");
    for _ in 0..2 {
        let liked = app
            .request(Method::PUT, &path, Some(&bob.token), Value::Null)
            .await;
        liked.assert_status(StatusCode::OK);
        assert_eq!(liked.body["liked"], true);
        if backend.has_store() {
            assert_eq!(liked.body["like_count"], 1, "the delta shows at once");
        }
    }
    let view = app
        .get(&format!("/api/v1/posts/{post}"), Some(&bob.token))
        .await;
    assert_eq!(view.body["liked_by_me"], true);
    let by_author = app
        .get(&format!("/api/v1/posts/{post}"), Some(&alice.token))
        .await;
    assert_eq!(by_author.body["liked_by_me"], false);
    let likers = app
        .collect_pages(&format!("/api/v1/posts/{post}/likes"), None)
        .await;
    assert_eq!(likers, vec![bob.id]);
    wait_for_like_count(&app, post, 1).await;
    for _ in 0..2 {
        let unliked = app
            .request(Method::DELETE, &path, Some(&bob.token), Value::Null)
            .await;
        unliked.assert_status(StatusCode::OK);
        assert_eq!(unliked.body["liked"], false);
    }
    wait_for_like_count(&app, post, 0).await;
    app.request(
        Method::PUT,
        "/api/v1/posts/987654321/like",
        Some(&bob.token),
        Value::Null,
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "POST_NOT_FOUND");
    app.get("/api/v1/posts/987654321/likes", None)
        .await
        .assert_error(StatusCode::NOT_FOUND, "POST_NOT_FOUND");
}

/// Waits (at most 5 s, the convergence the product promises) until both the shown and the
/// stored count equal `expected`.
async fn wait_for_like_count(app: &TestApp, post: u64, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let shown =
            app.get(&format!("/api/v1/posts/{post}"), None).await.body["like_count"].as_u64();
        let (stored,): (u64,) = sns_api::db::query("SELECT like_count FROM posts WHERE id = ?")
            .bind(post)
            // A connection per check: holding the writer (one connection on SQLite) would
            // stop the app's own writes.
            .fetch_one(&mut app.db().await)
            .await
            .unwrap();
        if shown == Some(expected) && stored == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "like_count did not converge to {expected} within 5 s (shown {shown:?}, stored {stored})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deletes every key under the app's prefix, as if Redis had lost its data (only this test's
/// keys: other tests share the server).
async fn lose_redis_data(app: &TestApp) {
    let kv = app.kv();
    if app.database.dir.is_some() {
        // The embedded default's store is the app's own: it loses everything at once.
        let _: () = kv.query(&redis::cmd("FLUSHALL")).await.unwrap();
        return;
    }
    let pattern = format!("{}*", kv.keys().prefix());
    let nodes: Vec<String> = match kv.cluster_masters().await {
        Some(masters) => masters.iter().map(|m| format!("redis://{m}")).collect(),
        None => vec![app.config.redis.redis_url.clone().unwrap()],
    };
    for node in nodes {
        let client = redis::Client::open(node).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .unwrap();
            for key in keys {
                let _: i64 = redis::cmd("DEL")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
}

async fn concurrent_likes_count_exactly_and_survive_redis_losing_its_data(backend: Backend) {
    // 200 clients at once on a machine shared with the rest of the suite: connections may
    // take longer than the default 3 s to come free, and every like must be acknowledged.
    let app = TestApp::spawn_with_backend(backend, |config, _| {
        config.database.database_max_connections = 16;
        config.database.database_acquire_timeout = std::time::Duration::from_secs(15);
    })
    .await;
    let author = app.signup("author").await;
    let post = app.create_post(&author, "going viral").await;
    let users = app.insert_users("liker", 200).await;
    let tokens: Vec<String> = users.iter().map(|id| app.token_for(*id)).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    // Each client sends a random sequence of likes and unlikes; its last one decides.
    let plans: Vec<Vec<bool>> = (0..users.len())
        .map(|_| {
            (0..rng.random_range(1..=4))
                .map(|_| rng.random_bool(0.6))
                .collect()
        })
        .collect();
    let expected = plans.iter().filter(|plan| *plan.last().unwrap()).count() as u64;
    let path = format!("/api/v1/posts/{post}/like");
    let mut order: Vec<usize> = (0..users.len()).collect();
    order.shuffle(&mut rng);
    let half = order.len() / 2;

    let run = |clients: Vec<usize>| {
        let (app, path, tokens, plans) = (&app, &path, &tokens, &plans);
        async move {
            let requests = clients.into_iter().map(|client| async move {
                for like in &plans[client] {
                    let method = if *like { Method::PUT } else { Method::DELETE };
                    app.request(method, path, Some(&tokens[client]), Value::Null)
                        .await
                        .assert_status(StatusCode::OK);
                }
            });
            futures::future::join_all(requests).await;
        }
    };
    run(order[..half].to_vec()).await;
    // Redis loses everything (deltas, cached posts) while the other half is liking.
    tokio::join!(run(order[half..].to_vec()), lose_redis_data(&app));

    wait_for_like_count(&app, post, expected).await;
    let likers = app
        .collect_pages(&format!("/api/v1/posts/{post}/likes?limit=50"), None)
        .await;
    assert_eq!(likers.len() as u64, expected, "no like lost");
}
