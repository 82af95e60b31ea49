//! Redis stopped for real while authors post: posts, likes and comments keep working, feeds
//! come from MySQL, the breaker opens, fan-outs park in the recovery queue, and once Redis is
//! back every follower's feed holds every post.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sns_api::config::Config;

use crate::helpers::{TestApp, TestDatabase};
use crate::private_env::PrivateEnv;
use crate::{create_feeds, eventually, feeds_missing, metric, outbox};

/// An app on the shared MariaDB and the private Redis, with fast retries.
async fn spawn(env: &PrivateEnv, adjust: impl FnOnce(&mut Config)) -> TestApp {
    let redis_url = env.var("SNS_TEST_REDIS_URL");
    TestApp::spawn_on(TestDatabase::create().await, |config, _| {
        config.redis.redis_url = Some(redis_url);
        config.redis.redis_key_prefix = format!("t:{}:", uuid::Uuid::new_v4().simple());
        config.redis.redis_timeout = Duration::from_millis(200);
        config.redis.redis_retry_delays =
            vec![Duration::from_millis(200), Duration::from_millis(400)];
        config.redis.redis_breaker_min_calls = 5;
        config.redis.redis_breaker_open_for = Duration::from_secs(5);
        config.redis.recovery_replay_delay = Duration::from_millis(5);
        adjust(config);
    })
    .await
}

#[tokio::test]
async fn a_5000_follower_post_while_redis_is_down_reaches_every_feed_once_it_is_back() {
    let env = PrivateEnv::start(false).await;
    let app = spawn(&env, |_| {}).await;
    let author = app.signup("author").await;
    let followers = app.insert_users("f", 5000).await;
    app.insert_follows(&followers, author.id).await;
    let kv = app.kv();
    create_feeds(&kv, &followers).await;
    let reader = app.token_for(followers[1234]);
    let before = app.create_post(&author, "before the outage").await;
    app.wait_for_fanout().await;
    assert_eq!(feeds_missing(&kv, &followers, before).await, 0);

    env.testenv("redis-down", &[]).await;

    let post = app.create_post(&author, "while Redis is down").await;
    // Reads: from MySQL, marked, with the new post.
    let page = app.get("/api/v1/feed", Some(&reader)).await;
    page.assert_status(StatusCode::OK);
    assert_eq!(page.header("x-feed-source"), Some("database"));
    assert_eq!(page.body["items"][0]["id"], post);
    // Likes and comments keep working.
    let like = app
        .request(
            Method::PUT,
            &format!("/api/v1/posts/{post}/like"),
            Some(&reader),
            Value::Null,
        )
        .await;
    assert!(like.status.is_success(), "like: {}", like.body);
    let comment = app
        .request(
            Method::POST,
            &format!("/api/v1/posts/{post}/comments"),
            Some(&reader),
            json!({"content": "still here"}),
        )
        .await;
    comment.assert_status(StatusCode::CREATED);
    // Without the Redis delta, the count shows the like once the flusher has recounted.
    eventually(5, "the like is counted", || async {
        let shown = app
            .get(&format!("/api/v1/posts/{post}"), Some(&reader))
            .await;
        shown.body["like_count"] == 1 && shown.body["liked_by_me"] == true
    })
    .await;

    // The breaker opens (fan-out retries and reads fail) and says so in /metrics.
    eventually(15, "the breaker opens", || async {
        app.get("/api/v1/feed", Some(&reader)).await;
        metric(&app, "api_redis_breaker_state").await == 2.0
    })
    .await;
    // Retries used up: the fan-out waits parked, in memory and in MySQL.
    eventually(15, "the fan-out is parked", || async {
        outbox(&app).await == (1, 1)
    })
    .await;
    assert_eq!(metric(&app, "api_recovery_queue_depth").await, 1.0);
    assert!(metric(&app, "api_feed_fallback_reads_total").await >= 1.0);

    env.testenv("redis-up", &[]).await;

    app.wait_for_fanout().await;
    assert_eq!(feeds_missing(&kv, &followers, post).await, 0, "none lost");
    assert_eq!(
        feeds_missing(&kv, &followers, before).await,
        0,
        "Redis kept its data"
    );
    assert!(metric(&app, "api_recovery_replays_total").await >= 1.0);
    eventually(15, "the breaker closes", || async {
        app.get("/api/v1/feed", Some(&reader)).await;
        metric(&app, "api_redis_breaker_state").await == 0.0
    })
    .await;
    let page = app.get("/api/v1/feed", Some(&reader)).await;
    assert_eq!(page.header("x-feed-source"), Some("redis"));
    assert_eq!(page.body["items"][0]["id"], post);
}

#[tokio::test]
async fn an_outage_past_the_in_memory_bound_loses_nothing_and_memory_stays_bounded() {
    let env = PrivateEnv::start(false).await;
    let app = spawn(&env, |config| config.redis.recovery_queue_capacity = 3).await;
    let author = app.signup("author").await;
    let followers = app.insert_users("f", 50).await;
    app.insert_follows(&followers, author.id).await;
    let kv = app.kv();
    create_feeds(&kv, &followers).await;

    env.testenv("redis-down", &[]).await;
    let mut posts = Vec::new();
    for i in 0..12 {
        posts.push(app.create_post(&author, &format!("post {i}")).await);
    }
    eventually(30, "every fan-out is parked", || async {
        outbox(&app).await == (12, 12)
    })
    .await;
    assert_eq!(
        metric(&app, "api_recovery_queue_depth").await,
        3.0,
        "the bound holds"
    );
    assert_eq!(metric(&app, "api_recovery_overflows_total").await, 9.0);

    env.testenv("redis-up", &[]).await;
    app.wait_for_fanout().await;
    for post in posts {
        assert_eq!(
            feeds_missing(&kv, &followers, post).await,
            0,
            "post {post} reached every feed"
        );
    }
    assert_eq!(metric(&app, "api_recovery_queue_depth").await, 0.0);
}

#[tokio::test]
async fn fallback_reads_are_bounded_in_number_and_time_and_the_excess_gets_503() {
    let env = PrivateEnv::start(false).await;
    let app = spawn(&env, |config| {
        config.feed.feed_fallback_concurrency = 1;
        config.feed.feed_fallback_timeout = Duration::from_secs(1);
    })
    .await;
    let users = app.insert_users("r", 6).await;
    let tokens: Vec<String> = users.iter().map(|id| app.token_for(*id)).collect();
    env.testenv("redis-down", &[]).await;
    // Once the breaker is open, requests skip Redis at once.
    eventually(15, "the breaker opens", || async {
        app.get("/api/v1/feed", Some(&tokens[0]))
            .await
            .assert_status(StatusCode::OK);
        metric(&app, "api_redis_breaker_state").await == 2.0
    })
    .await;

    // A slow database: the fallback query waits on a table lock held by this connection.
    let mut locker = app.database.connect().await;
    sqlx::query("LOCK TABLES follows WRITE")
        .execute(&mut locker)
        .await
        .unwrap();
    let slow = app.get("/api/v1/feed", Some(&tokens[1]));
    let excess = async {
        // Once the slow read holds the only slot, every other read is refused at once.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut pages = Vec::new();
        for token in &tokens[2..] {
            pages.push(app.get("/api/v1/feed", Some(token)).await);
        }
        pages
    };
    let (slow, refused) = tokio::join!(slow, excess);
    for page in &refused {
        page.assert_error(StatusCode::SERVICE_UNAVAILABLE, "FEED_UNAVAILABLE");
        assert!(page.header("retry-after").is_some());
    }
    // The slow read itself ends at the time bound, with 503, not when the lock goes.
    slow.assert_error(StatusCode::SERVICE_UNAVAILABLE, "FEED_UNAVAILABLE");
    let text = app.get("/metrics", None).await.body;
    let text = text.as_str().unwrap();
    assert!(
        text.contains("api_feed_fallback_refused_total{reason=\"busy\"} 4"),
        "the 4 excess reads were refused for want of a slot, without waiting:\n{text}"
    );
    assert!(text.contains("api_feed_fallback_refused_total{reason=\"timeout\"} 1"));
    sqlx::query("UNLOCK TABLES")
        .execute(&mut locker)
        .await
        .unwrap();

    let page = app.get("/api/v1/feed", Some(&tokens[2])).await;
    page.assert_status(StatusCode::OK);
    assert_eq!(page.header("x-feed-source"), Some("database"));
}

#[tokio::test]
async fn a_follow_while_redis_is_down_reaches_the_redis_feed_once_it_is_back() {
    let env = PrivateEnv::start(false).await;
    let app = spawn(&env, |_| {}).await;
    let alice = app.signup("alice").await;
    let bob = app.signup("bob").await;
    let backlog = [
        app.create_post(&bob, "one").await,
        app.create_post(&bob, "two").await,
    ];
    // Alice has a Redis feed (her first read builds it).
    app.get("/api/v1/feed", Some(&alice.token)).await;
    let kv = app.kv();
    eventually(10, "alice's feed is built", || async {
        sns_api::feed::cache::feed_exists(&kv, alice.id)
            .await
            .unwrap()
    })
    .await;

    env.testenv("redis-down", &[]).await;
    app.request(
        Method::PUT,
        &format!("/api/v1/users/{}/follow", bob.id),
        Some(&alice.token),
        Value::Null,
    )
    .await
    .assert_status(StatusCode::OK);
    // Meanwhile MySQL serves the page, backlog included.
    let page = app.get("/api/v1/feed", Some(&alice.token)).await;
    assert_eq!(page.header("x-feed-source"), Some("database"));
    assert_eq!(page.body["items"][0]["id"], backlog[1]);
    // The follow's feed update waits in the outbox.
    assert_eq!(outbox(&app).await.0, 1);

    env.testenv("redis-up", &[]).await;
    app.wait_for_fanout().await;
    let ids: Vec<u64> = redis::cmd("ZREVRANGEBYSCORE")
        .arg(app.kv().keys().feed(alice.id))
        .arg("(+inf")
        .arg("-inf")
        .query_async(
            &mut redis::Client::open(env.var("SNS_TEST_REDIS_URL"))
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        ids,
        vec![backlog[1], backlog[0]],
        "the Redis feed holds the backlog"
    );
    let page = app.get("/api/v1/feed", Some(&alice.token)).await;
    assert_eq!(page.header("x-feed-source"), Some("redis"));
    assert_eq!(page.body["items"][1]["id"], backlog[0]);
}
