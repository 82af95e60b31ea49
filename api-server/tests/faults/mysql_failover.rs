//! The MariaDB primary killed (SIGKILL) and a replica promoted, as Orchestrator does, while
//! clients keep posting: the API writes again within 10 s, without a restart, and no post it
//! acknowledged is missing. The API reaches the primary through a stand-in for the operator's
//! `mysql-primary` Service, which follows the `role=primary` label to the promoted pod.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::Connection;
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{TestApp, TestDatabase};
use crate::private_env::PrivateEnv;

/// A TCP forwarder standing for a Kubernetes Service: new connections go to whichever port
/// it points at now.
struct ServiceProxy {
    port: u16,
    target: Arc<AtomicU16>,
}

impl ServiceProxy {
    async fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = Arc::new(AtomicU16::new(target));
        let current = target.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let port = current.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(("127.0.0.1", port)).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Self { port, target }
    }

    fn point_at(&self, port: u16) {
        self.target.store(port, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn writes_resume_within_10_s_after_the_primary_is_killed_and_none_acknowledged_is_lost() {
    // Semi-synchronous replication, as production runs it: a commit returns once a replica
    // has it, so the promoted replica holds every acknowledged post.
    let env = PrivateEnv::start(true).await;
    let user = env.var("SNS_TEST_MYSQL_USER");
    let password = env.var("SNS_TEST_MYSQL_PASSWORD");
    let primary_port: u16 = env.var("SNS_TEST_MYSQL_PRIMARY_PORT").parse().unwrap();
    let service = ServiceProxy::start(primary_port).await;
    let database = TestDatabase::create_on(format!(
        "mysql://{user}:{password}@127.0.0.1:{}",
        service.port
    ))
    .await;
    let app = TestApp::spawn_on(database, |config, _| {
        config.database.database_acquire_timeout = Duration::from_secs(1);
    })
    .await;
    let author = app.signup("author").await;

    // Clients post without pause through the whole failover.
    let stop = tokio_util::sync::CancellationToken::new();
    let writer = {
        let (app, author, stop) = (&app, &author, stop.clone());
        async move {
            let mut acknowledged = Vec::new();
            let mut refused_since: Option<Instant> = None;
            let mut longest_gap = Duration::ZERO;
            let mut i = 0;
            while !stop.is_cancelled() {
                i += 1;
                let response = app
                    .request(
                        Method::POST,
                        "/api/v1/posts",
                        Some(&author.token),
                        json!({"content": format!("post {i}")}),
                    )
                    .await;
                if response.status == StatusCode::CREATED {
                    acknowledged.push(response.body["id"].as_u64().unwrap());
                    if let Some(since) = refused_since.take() {
                        longest_gap = longest_gap.max(since.elapsed());
                    }
                } else {
                    // A dependency's 503 while the primary is gone; never a 500.
                    response.assert_status(StatusCode::SERVICE_UNAVAILABLE);
                    refused_since.get_or_insert_with(Instant::now);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert!(
                refused_since.is_none(),
                "writes were still refused at the end"
            );
            (acknowledged, longest_gap)
        }
    };
    let failover = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let killed_at = Instant::now();
        let output = tokio::process::Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/env/promote-replica.sh"
            ))
            .arg(env.dir())
            .env("PROMOTE_SIGNAL", "KILL")
            .output()
            .await
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let new_primary: u16 = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap();
        // The Service follows the role=primary label to the promoted pod.
        service.point_at(new_primary);
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop.cancel();
        (new_primary, killed_at.elapsed())
    };
    let ((acknowledged, longest_gap), (new_primary, _)) = tokio::join!(writer, failover);
    assert!(
        acknowledged.len() > 20,
        "posts were written before and after"
    );
    assert!(
        longest_gap < Duration::from_secs(10),
        "writes resumed {longest_gap:?} after they stopped"
    );

    // Every acknowledged post is on the new primary.
    let mut conn = sqlx::MySqlConnection::connect(&format!(
        "mysql://{user}:{password}@127.0.0.1:{new_primary}/{}",
        app.database.name
    ))
    .await
    .unwrap();
    let stored: Vec<(u64,)> = sqlx::query_as("SELECT id FROM posts")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let stored: std::collections::HashSet<u64> = stored.into_iter().map(|(id,)| id).collect();
    let lost: Vec<&u64> = acknowledged
        .iter()
        .filter(|id| !stored.contains(id))
        .collect();
    assert!(lost.is_empty(), "acknowledged posts lost: {lost:?}");
    let profile = app.get(&format!("/api/v1/users/{}", author.id), None).await;
    // A post whose answer was lost with the primary may exist too: the count follows the rows.
    assert_eq!(profile.body["post_count"], stored.len());
}

/// A planned switchover, as Orchestrator's graceful takeover runs it, while clients keep
/// posting: the primary goes read-only, a replica catches up and is promoted, the Service
/// follows. Writes refused as read-only in between are run again by the API, so no client
/// sees an error, and the writer connections still open to the old primary are dropped
/// instead of failing one write each.
#[tokio::test]
async fn a_switchover_fails_no_write_and_loses_none() {
    let env = PrivateEnv::start(true).await;
    let user = env.var("SNS_TEST_MYSQL_USER");
    let password = env.var("SNS_TEST_MYSQL_PASSWORD");
    let admin = env.var("SNS_TEST_MYSQL_ADMIN_USER");
    let admin_password = env.var("SNS_TEST_MYSQL_ADMIN_PASSWORD");
    let primary_port: u16 = env.var("SNS_TEST_MYSQL_PRIMARY_PORT").parse().unwrap();
    let replica_port: u16 = env
        .var("SNS_TEST_MYSQL_REPLICA_PORTS")
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let service = ServiceProxy::start(primary_port).await;
    let database = TestDatabase::create_on(format!(
        "mysql://{user}:{password}@127.0.0.1:{}",
        service.port
    ))
    .await;
    let app = TestApp::spawn_on(database, |_, _| {}).await;
    let author = app.signup("author").await;
    let admin_on = |port: u16| format!("mysql://{admin}:{admin_password}@127.0.0.1:{port}");

    let stop = tokio_util::sync::CancellationToken::new();
    let writer = {
        let (app, author, stop) = (&app, &author, stop.clone());
        async move {
            let mut acknowledged = Vec::new();
            let mut failed = Vec::new();
            let mut slowest = Duration::ZERO;
            let mut i = 0;
            while !stop.is_cancelled() {
                i += 1;
                let sent = Instant::now();
                let response = app
                    .request(
                        Method::POST,
                        "/api/v1/posts",
                        Some(&author.token),
                        json!({"content": format!("post {i}")}),
                    )
                    .await;
                slowest = slowest.max(sent.elapsed());
                if response.status == StatusCode::CREATED {
                    acknowledged.push(response.body["id"].as_u64().unwrap());
                } else {
                    failed.push((response.status, response.body.to_string()));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (acknowledged, failed, slowest)
        }
    };
    let switchover = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut old = sqlx::MySqlConnection::connect(&admin_on(primary_port))
            .await
            .unwrap();
        let mut new = sqlx::MySqlConnection::connect(&admin_on(replica_port))
            .await
            .unwrap();
        // 1. The primary stops taking writes; 2. the replica applies all it has.
        sqlx::query("SET GLOBAL read_only = 1")
            .execute(&mut old)
            .await
            .unwrap();
        let (position,): (String,) = sqlx::query_as("SELECT @@global.gtid_binlog_pos")
            .fetch_one(&mut old)
            .await
            .unwrap();
        let (waited,): (i32,) = sqlx::query_as("SELECT MASTER_GTID_WAIT(?, 10)")
            .bind(&position)
            .fetch_one(&mut new)
            .await
            .unwrap();
        assert_eq!(waited, 0, "the replica caught up");
        // 3. It is promoted; 4. a moment later the Service follows it.
        for statement in ["STOP SLAVE", "RESET SLAVE ALL", "SET GLOBAL read_only = 0"] {
            sqlx::query(statement).execute(&mut new).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        service.point_at(replica_port);
        tokio::time::sleep(Duration::from_secs(2)).await;
        stop.cancel();
    };
    let ((acknowledged, failed, slowest), ()) = tokio::join!(writer, switchover);
    assert!(failed.is_empty(), "writes failed: {failed:?}");
    assert!(
        acknowledged.len() > 20,
        "posts were written before and after"
    );
    println!(
        "switchover: {} posts, none failed; the slowest answer took {slowest:?}",
        acknowledged.len()
    );

    // Every acknowledged post is on the new primary, and the last ones were written there.
    let mut conn = sqlx::MySqlConnection::connect(&format!(
        "{}/{}",
        admin_on(replica_port),
        app.database.name
    ))
    .await
    .unwrap();
    let stored: Vec<(u64,)> = sqlx::query_as("SELECT id FROM posts")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let stored: std::collections::HashSet<u64> = stored.into_iter().map(|(id,)| id).collect();
    let lost: Vec<&u64> = acknowledged
        .iter()
        .filter(|id| !stored.contains(id))
        .collect();
    assert!(lost.is_empty(), "acknowledged posts lost: {lost:?}");
    let mut old = sqlx::MySqlConnection::connect(&format!(
        "{}/{}",
        admin_on(primary_port),
        app.database.name
    ))
    .await
    .unwrap();
    let (on_old,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM posts")
        .fetch_one(&mut old)
        .await
        .unwrap();
    assert!(
        (on_old as usize) < acknowledged.len(),
        "posts were written on the new primary after the switch"
    );
}
