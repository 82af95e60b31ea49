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
