//! A Redis Cluster master killed (SIGKILL) while posts fan out: its replica takes over, every
//! fan-out completes, and every follower's feed holds every post.

use std::time::Duration;

use crate::helpers::{TestApp, TestDatabase};
use crate::private_env::PrivateEnv;
use crate::{create_feeds, eventually, feeds_missing, outbox};

#[tokio::test]
async fn fan_outs_survive_a_killed_cluster_master() {
    let env = PrivateEnv::start(false).await;
    let nodes: Vec<String> = env
        .var("SNS_TEST_REDIS_CLUSTER_NODES")
        .split(',')
        .map(str::to_owned)
        .collect();
    let app = TestApp::spawn_on(TestDatabase::create().await, |config, _| {
        config.redis.redis_cluster_nodes = nodes;
        config.redis.redis_key_prefix = format!("t:{}:", uuid::Uuid::new_v4().simple());
        config.redis.redis_timeout = Duration::from_millis(300);
        config.redis.redis_retry_delays = [200, 400, 800, 1600].map(Duration::from_millis).to_vec();
        config.redis.redis_breaker_open_for = Duration::from_secs(1);
        config.redis.recovery_replay_delay = Duration::from_millis(5);
    })
    .await;
    let author = app.signup("author").await;
    let followers = app.insert_users("f", 3000).await;
    app.insert_follows(&followers, author.id).await;
    let kv = app.kv();
    create_feeds(&kv, &followers).await;
    // The feeds must be on the replicas before a master dies.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let masters = kv.cluster_masters().await.expect("a cluster");
    let victim = masters[0].rsplit(':').next().unwrap().to_owned();

    let mut posts = Vec::new();
    for i in 0..30 {
        if i == 8 {
            env.testenv("kill-redis-node", &[&victim]).await;
        }
        posts.push(app.create_post(&author, &format!("post {i}")).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eventually(90, "every fan-out completes", || async {
        outbox(&app).await.0 == 0
    })
    .await;
    for post in posts {
        assert_eq!(
            feeds_missing(&kv, &followers, post).await,
            0,
            "post {post}: none lost"
        );
    }
    let page = app
        .get("/api/v1/feed", Some(&app.token_for(followers[77])))
        .await;
    assert_eq!(page.header("x-feed-source"), Some("redis"));
}
