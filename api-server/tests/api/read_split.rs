//! Reads go to the replicas, round-robin, and fall back to the writer when none answers.
//!
//! Only this file routes reads to the shared replicas (every other test reads from the
//! writer), so stopping replication here cannot disturb another test.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::{Connection, MySqlConnection};

use crate::helpers::{TestApp, test_env};

fn replica_ports() -> Vec<u16> {
    test_env("SNS_TEST_MYSQL_REPLICA_PORTS")
        .split(',')
        .map(|port| port.trim().parse().expect("replica port"))
        .collect()
}

async fn admin_on(port: u16) -> MySqlConnection {
    let user = test_env("SNS_TEST_MYSQL_ADMIN_USER");
    let password = test_env("SNS_TEST_MYSQL_ADMIN_PASSWORD");
    MySqlConnection::connect(&format!("mysql://{user}:{password}@127.0.0.1:{port}"))
        .await
        .expect("admin connection")
}

async fn primary_gtid_position() -> String {
    let port: u16 = test_env("SNS_TEST_MYSQL_PRIMARY_PORT")
        .parse()
        .expect("primary port");
    let mut primary = admin_on(port).await;
    let (position,): (String,) = sqlx::query_as("SELECT @@GLOBAL.gtid_binlog_pos")
        .fetch_one(&mut primary)
        .await
        .expect("gtid_binlog_pos");
    position
}

/// Waits until every replica has applied everything the primary has written so far.
async fn wait_for_replicas() {
    let position = primary_gtid_position().await;
    for port in replica_ports() {
        let mut replica = admin_on(port).await;
        let (waited,): (Option<i64>,) = sqlx::query_as("SELECT MASTER_GTID_WAIT(?, 30)")
            .bind(&position)
            .fetch_one(&mut replica)
            .await
            .expect("MASTER_GTID_WAIT");
        assert_eq!(
            waited,
            Some(0),
            "replica on {port} caught up with {position}"
        );
    }
}

async fn set_replication(running: bool) {
    let statement = if running { "START SLAVE" } else { "STOP SLAVE" };
    for port in replica_ports() {
        sqlx::query(statement)
            .execute(&mut admin_on(port).await)
            .await
            .expect(statement);
    }
}

#[tokio::test]
async fn reads_go_to_replicas_and_see_writes_once_replication_catches_up() {
    let ports = replica_ports();
    let app = TestApp::spawn_with(|config, database| {
        config.database.database_reader_urls = ports
            .iter()
            .map(|port| database.url_on_port(*port).into())
            .collect();
    })
    .await;
    let alice = app.signup("alice").await;
    wait_for_replicas().await;

    set_replication(false).await;
    let created = app
        .request(
            Method::POST,
            "/api/v1/posts",
            Some(&alice.token),
            json!({"content": "fresh"}),
        )
        .await;
    let post_id = created.body["id"].as_u64();
    let mut while_stopped = Vec::new();
    for _ in 0..ports.len() {
        let path = format!("/api/v1/posts/{}", post_id.unwrap_or(0));
        while_stopped.push(app.get(&path, None).await.status);
    }
    let mut writer = app.database.connect().await;
    let on_writer: Option<(u64,)> = sqlx::query_as("SELECT id FROM posts WHERE id = ?")
        .bind(post_id.unwrap_or(0))
        .fetch_optional(&mut writer)
        .await
        .expect("reading the writer");
    // Replication restarts before any assertion so a failure cannot leave it stopped.
    set_replication(true).await;

    created.assert_status(StatusCode::CREATED);
    assert!(on_writer.is_some(), "the writer has the row");
    assert!(
        while_stopped
            .iter()
            .all(|status| *status == StatusCode::NOT_FOUND),
        "every replica-routed read missed the unreplicated row: {while_stopped:?}"
    );
    wait_for_replicas().await;
    for _ in 0..ports.len() {
        app.get(&format!("/api/v1/posts/{}", post_id.unwrap_or(0)), None)
            .await
            .assert_status(StatusCode::OK);
    }
}

#[tokio::test]
async fn reads_fall_back_to_the_writer_when_every_replica_is_down() {
    let app = TestApp::spawn_with(|config, database| {
        // Nothing listens on these ports: both replicas are down.
        config.database.database_reader_urls = vec![
            format!("mysql://sns:x@127.0.0.1:1/{}", database.name).into(),
            format!("mysql://sns:x@127.0.0.1:9/{}", database.name).into(),
        ];
    })
    .await;
    let alice = app.signup("alice").await;
    let post = app.create_post(&alice, "still readable").await;
    for _ in 0..4 {
        let read = app.get(&format!("/api/v1/posts/{post}"), None).await;
        read.assert_status(StatusCode::OK);
        assert_eq!(read.body["content"], "still readable");
    }
    let timeline = app
        .collect_pages(&format!("/api/v1/users/{}/posts", alice.id), None)
        .await;
    assert_eq!(timeline, vec![post]);
}

#[tokio::test]
async fn a_dead_replica_is_skipped_while_a_live_one_serves() {
    let ports = replica_ports();
    let app = TestApp::spawn_with(|config, database| {
        config.database.database_reader_urls = vec![
            format!("mysql://sns:x@127.0.0.1:1/{}", database.name).into(),
            database.url_on_port(ports[0]).into(),
        ];
    })
    .await;
    let alice = app.signup("alice").await;
    let post = app.create_post(&alice, "replicated").await;
    wait_for_replicas().await;
    for _ in 0..4 {
        app.get(&format!("/api/v1/posts/{post}"), None)
            .await
            .assert_status(StatusCode::OK);
    }
}
