//! Home feeds against real Redis: every scenario runs on the standalone server and on the
//! 6-node cluster.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sns_api::kv::Kv;

use crate::helpers::{Backend, TestApp, TestUser};

on_every_store!(
    feed_shows_own_and_followed_posts_newest_first,
    paging_past_the_cap_continues_from_mysql_without_gap_or_duplicate,
    posts_older_than_the_max_age_stay_out_of_redis_but_page_from_mysql,
    follow_backfills_and_unfollow_removes,
    deleted_posts_vanish_and_edits_show,
    big_authors_are_merged_at_read_time,
    an_inactive_user_is_skipped_by_fan_out_and_rebuilt_on_return,
    a_post_reaches_all_5000_followers,
);

async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with_backend(backend, |_, _| {}).await
}

/// Post ids of the whole feed, following the `Link` headers.
async fn feed_ids(app: &TestApp, user: &TestUser, limit: u32) -> Vec<u64> {
    app.collect_pages(&format!("/api/v1/feed?limit={limit}"), Some(&user.token))
        .await
}

/// Reads the feed until it is served from Redis (the first read of a missing feed is
/// answered from MySQL while the feed is rebuilt).
async fn wait_for_redis_feed(app: &TestApp, user: &TestUser) {
    for _ in 0..200 {
        let page = app.get("/api/v1/feed", Some(&user.token)).await;
        page.assert_status(StatusCode::OK);
        if page.header("x-feed-source") == Some("redis") {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the feed was never rebuilt into Redis");
}

/// Post ids held in a user's Redis feed (marker excluded).
async fn redis_feed(kv: &Kv, user_id: u64) -> Vec<u64> {
    let mut zrange = redis::cmd("ZREVRANGE");
    zrange.arg(kv.keys().feed(user_id)).arg(0).arg(-1);
    let members: Vec<String> = kv.query(&zrange).await.expect("reading a feed");
    members.iter().filter_map(|m| m.parse().ok()).collect()
}

async fn feed_shows_own_and_followed_posts_newest_first(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, bob, carol, dave) = (
        app.signup("alice").await,
        app.signup("bob").await,
        app.signup("carol").await,
        app.signup("dave").await,
    );
    app.follow(&alice, &bob).await;
    app.follow(&alice, &carol).await;
    wait_for_redis_feed(&app, &alice).await;
    let mut expected = Vec::new();
    for (author, text) in [(&bob, "b1"), (&carol, "c1"), (&alice, "a1"), (&bob, "b2")] {
        expected.push(app.create_post(author, text).await);
    }
    app.create_post(&dave, "not followed").await;
    app.wait_for_fanout().await;
    expected.reverse();
    let page = app.get("/api/v1/feed", Some(&alice.token)).await;
    page.assert_status(StatusCode::OK);
    assert_eq!(page.header("x-feed-source"), Some("redis"));
    let ids: Vec<u64> = page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, expected);
    assert_eq!(page.body["items"][0]["author"]["id"], bob.id);
    assert_eq!(redis_feed(&app.kv(), alice.id).await, expected);
    // dave's own feed has his post.
    assert_eq!(feed_ids(&app, &dave, 20).await.len(), 1);
    app.get("/api/v1/feed", None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    let store = if backend == Backend::Embedded {
        "in-process"
    } else {
        "up"
    };
    assert_eq!(app.get("/readyz", None).await.body["redis"], store);
    let metrics = app.get("/metrics", None).await;
    let Value::String(text) = &metrics.body else {
        panic!("metrics are text");
    };
    assert!(
        text.contains(r#"api_feed_reads_total{source="redis"}"#),
        "{text}"
    );
    assert!(text.contains("api_fanout_duration_seconds_count"), "{text}");
}

async fn paging_past_the_cap_continues_from_mysql_without_gap_or_duplicate(backend: Backend) {
    let app = TestApp::spawn_with_backend(backend, |config, _| config.feed.feed_cap = 5).await;
    let (alice, bob) = (app.signup("alice").await, app.signup("bob").await);
    app.follow(&alice, &bob).await;
    wait_for_redis_feed(&app, &alice).await;
    let mut expected = Vec::new();
    for i in 0..12 {
        expected.push(app.create_post(&bob, &format!("post {i}")).await);
    }
    app.wait_for_fanout().await;
    expected.reverse();
    let kv = app.kv();
    assert_eq!(
        redis_feed(&kv, alice.id).await,
        expected[..5].to_vec(),
        "the feed keeps the newest 5"
    );
    for limit in [1, 3, 5, 7, 50] {
        assert_eq!(
            feed_ids(&app, &alice, limit).await,
            expected,
            "limit {limit}"
        );
    }
}

async fn posts_older_than_the_max_age_stay_out_of_redis_but_page_from_mysql(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, bob) = (app.signup("alice").await, app.signup("bob").await);
    app.follow(&alice, &bob).await;
    let old = app.create_post(&bob, "old news").await;
    let fresh = app.create_post(&bob, "fresh").await;
    sns_api::db::query("UPDATE posts SET created_at = ? WHERE id = ?")
        .bind(sns_api::db::now() - chrono::Duration::days(8))
        .bind(old)
        .execute(&mut app.db().await)
        .await
        .unwrap();
    app.wait_for_fanout().await;
    // Rebuilt from MySQL (as after expiry or eviction), the feed takes only recent posts.
    let kv = app.kv();
    sns_api::feed::cache::delete_feed(&kv, alice.id)
        .await
        .unwrap();
    wait_for_redis_feed(&app, &alice).await;
    assert_eq!(redis_feed(&kv, alice.id).await, vec![fresh]);
    assert_eq!(feed_ids(&app, &alice, 1).await, vec![fresh, old]);
}

async fn follow_backfills_and_unfollow_removes(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, bob) = (app.signup("alice").await, app.signup("bob").await);
    let posts = [
        app.create_post(&bob, "one").await,
        app.create_post(&bob, "two").await,
    ];
    app.wait_for_fanout().await;
    wait_for_redis_feed(&app, &alice).await;
    assert!(feed_ids(&app, &alice, 20).await.is_empty());
    app.follow(&alice, &bob).await;
    let kv = app.kv();
    assert_eq!(redis_feed(&kv, alice.id).await, vec![posts[1], posts[0]]);
    assert_eq!(feed_ids(&app, &alice, 20).await, vec![posts[1], posts[0]]);
    app.request(
        Method::DELETE,
        &format!("/api/v1/users/{}/follow", bob.id),
        Some(&alice.token),
        Value::Null,
    )
    .await
    .assert_status(StatusCode::OK);
    assert!(redis_feed(&kv, alice.id).await.is_empty());
    assert!(feed_ids(&app, &alice, 20).await.is_empty());
}

async fn deleted_posts_vanish_and_edits_show(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, bob) = (app.signup("alice").await, app.signup("bob").await);
    app.follow(&alice, &bob).await;
    wait_for_redis_feed(&app, &alice).await;
    let kept = app.create_post(&bob, "original").await;
    let gone = app.create_post(&bob, "regret").await;
    app.wait_for_fanout().await;
    // Read once so both bodies are in the post cache.
    assert_eq!(feed_ids(&app, &alice, 20).await, vec![gone, kept]);
    app.request(
        Method::DELETE,
        &format!("/api/v1/posts/{gone}"),
        Some(&bob.token),
        Value::Null,
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
    app.request(
        Method::PATCH,
        &format!("/api/v1/posts/{kept}"),
        Some(&bob.token),
        json!({"content": "edited"}),
    )
    .await
    .assert_status(StatusCode::OK);
    let page = app.get("/api/v1/feed", Some(&alice.token)).await;
    let items = page.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", page.body);
    assert_eq!(items[0]["id"], kept);
    assert_eq!(items[0]["content"], "edited");
    assert!(items[0]["edited_at"].is_string());
}

async fn big_authors_are_merged_at_read_time(backend: Backend) {
    let app = TestApp::spawn_with_backend(backend, |config, _| {
        config.feed.feed_big_author_followers = 2;
    })
    .await;
    let star = app.signup("star").await;
    let fans = [
        app.signup("fan").await,
        app.signup("fan").await,
        app.signup("fan").await,
    ];
    for fan in &fans {
        app.follow(fan, &star).await;
    }
    // Who counts as a big author is cached for a few seconds per reader: read only once the
    // star has crossed the threshold.
    for fan in &fans {
        wait_for_redis_feed(&app, fan).await;
    }
    wait_for_redis_feed(&app, &star).await;
    let friend = app.signup("friend").await;
    app.follow(&fans[0], &friend).await;
    let before = app.create_post(&friend, "before").await;
    let starred = app.create_post(&star, "to millions").await;
    let after = app.create_post(&friend, "after").await;
    app.wait_for_fanout().await;
    let kv = app.kv();
    assert!(
        !redis_feed(&kv, fans[0].id).await.contains(&starred),
        "not fanned out"
    );
    assert_eq!(
        redis_feed(&kv, star.id).await,
        vec![starred],
        "the author's own feed has it"
    );
    let page = app.get("/api/v1/feed", Some(&fans[0].token)).await;
    assert_eq!(page.header("x-feed-source"), Some("redis"));
    assert_eq!(
        feed_ids(&app, &fans[0], 1).await,
        vec![after, starred, before]
    );
    assert_eq!(feed_ids(&app, &fans[1], 20).await, vec![starred]);
}

async fn an_inactive_user_is_skipped_by_fan_out_and_rebuilt_on_return(backend: Backend) {
    let app = spawn(backend).await;
    let (alice, bob) = (app.signup("alice").await, app.signup("bob").await);
    // The follow builds alice's feed; then she goes quiet for ten days.
    app.follow(&alice, &bob).await;
    sns_api::db::query("UPDATE users SET last_active_at = ? WHERE id = ?")
        .bind(sns_api::db::now() - chrono::Duration::days(10))
        .bind(alice.id)
        .execute(&mut app.db().await)
        .await
        .unwrap();
    let post = app.create_post(&bob, "while you were away").await;
    app.wait_for_fanout().await;
    let kv = app.kv();
    assert!(
        redis_feed(&kv, alice.id).await.is_empty(),
        "no fan-out to an inactive user"
    );
    // Coming back: the stale feed is dropped, the page comes from MySQL, Redis is rebuilt.
    assert_eq!(feed_ids(&app, &alice, 20).await, vec![post]);
    wait_for_redis_feed(&app, &alice).await;
    assert_eq!(redis_feed(&kv, alice.id).await, vec![post]);
}

async fn a_post_reaches_all_5000_followers(backend: Backend) {
    let app = spawn(backend).await;
    let author = app.signup("author").await;
    let followers = app.insert_users("f", 5000).await;
    app.insert_follows(&followers, author.id).await;
    let kv = app.kv();
    // Active followers have feeds (as after their last read); a few hundred at a time, so a
    // loaded machine answers each within the Redis timeout.
    for chunk in followers.chunks(500) {
        let writes = chunk
            .iter()
            .map(|id| sns_api::feed::cache::write_feed(&kv, *id, &[], 1, 3600));
        for result in futures::future::join_all(writes).await {
            result.expect("creating a feed");
        }
    }
    let post = app.create_post(&author, "hello, all of you").await;
    app.wait_for_fanout().await;
    let mut batch = sns_api::kv::Batch::new();
    for id in &followers {
        let key = kv.keys().feed(*id);
        let mut zscore = redis::cmd("ZSCORE");
        zscore.arg(&key).arg(post);
        batch.add(key, zscore);
    }
    let scores = kv.run(batch).await.expect("reading every feed");
    let missing = scores
        .iter()
        .filter(|score| !matches!(score, redis::Value::BulkString(_) | redis::Value::Double(_)))
        .count();
    assert_eq!(missing, 0, "every follower's feed holds the post");
    let one = &followers[4321];
    let page = app.get("/api/v1/feed", Some(&app.token_for(*one))).await;
    assert_eq!(page.body["items"][0]["id"], post);
}
