//! Failovers under a steady write load through the API's Service (`sns_e2e::load`), with
//! semi-synchronous replication (the default durability), each measured and printed:
//!
//! 1. the primary's mariadbd killed (SIGKILL from the node: the container's process dies
//!    as in a crash) ─► the real Orchestrator promotes a replica;
//! 2. right after, the new primary's pod deleted with grace 0 ─► promoted again (the
//!    operator acknowledged the first recovery, so Orchestrator's block period does not
//!    hold this one back);
//! 3. a planned switchover (annotation `sns-platform.dev/switchover=any`) through
//!    Orchestrator's graceful takeover ─► no write fails at all;
//! 4. a Redis Cluster master pod deleted ─► its replica takes over; posts fan out, likes
//!    count.
//!
//! For each MySQL case: `status.mysql.primary`, `failoverCount` (exactly +1), `lastFailover`,
//! the `role=primary` label, the primary Service's endpoint and an Event follow; the API's
//! writes resume with no pod restarted; the old primary comes back read-only, replicating
//! from the new one, and the cluster is Ready. At the end every acknowledged post and like
//! is in the database.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Endpoints, Pod};
use kube::ResourceExt;
use kube::api::DeleteParams;
use reqwest::{Method, StatusCode};
use sns_e2e::api::ApiClient;
use sns_e2e::cluster::TestCluster;
use sns_e2e::install::operator_metrics_service;
use sns_e2e::load::{Gap, WriteLoad};
use sns_e2e::node::{env, eventually};
use sns_operator::dataplane::orchestrator::encode_path_segment;

use super::CLUSTER;

/// Writes acknowledged before each fault, and after it before the case is judged.
const STEADY_WRITES: usize = 100;

/// What one case measured.
struct Measured {
    case: &'static str,
    gap: Gap,
    lost: Option<usize>,
}

/// Every MySQL case, then the Redis one; prints a table of what each cost.
pub async fn failovers_under_load(cluster: &TestCluster, api: &ApiClient) {
    // Orchestrator runs no recovery in its first 3 poll periods after a start, and its
    // nodes were just restarted.
    tokio::time::sleep(Duration::from_secs(20)).await;
    semisync_is_on(cluster).await;

    let load = WriteLoad::start(api, "load_", Duration::from_millis(60)).await;
    let mut measured = Vec::new();
    for case in [Fault::KillMariadbd, Fault::DeletePod, Fault::Switchover] {
        measured.push(mysql_case(cluster, &load, case, true).await);
    }
    let (posts, likes) = load.stop().await;
    let lost = cluster.lost_writes(&posts, &likes).await;
    println!(
        "e2e: {} posts and {} likes acknowledged during the MySQL cases; {lost} missing from the primary",
        posts.len(),
        likes.values().map(BTreeSet::len).sum::<usize>()
    );
    assert_eq!(
        lost, 0,
        "semi-synchronous replication loses no acknowledged write"
    );
    for case in &mut measured {
        case.lost = Some(lost);
    }

    measured.push(redis_master_killed(cluster, api).await);
    measured.push(async_primary_killed(cluster, api).await);

    println!(
        "e2e: failover costs (RTO: the longest pause between acknowledged posts around the fault)"
    );
    println!(
        "e2e: {:<34} {:>8} {:>5} {:>9} {:>6} {:>8}",
        "case", "RTO", "5xx", "no answer", "acked", "lost"
    );
    for Measured { case, gap, lost } in &measured {
        println!(
            "e2e: {case:<34} {:>7.1}s {:>5} {:>9} {:>6} {:>8}",
            gap.recovery.map_or(f64::NAN, |d| d.as_secs_f64()),
            gap.server_errors,
            gap.transport_errors,
            gap.acknowledged,
            lost.map_or("-".to_owned(), |l| l.to_string()),
        );
    }
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    KillMariadbd,
    DeletePod,
    Switchover,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Self::KillMariadbd => "primary's mariadbd SIGKILLed",
            Self::DeletePod => "primary's pod deleted (grace 0)",
            Self::Switchover => "planned switchover",
        }
    }
}

/// One fault of the MySQL primary under `load`; with `rejoin`, the old primary must come
/// back as a replica and the cluster be Ready again.
async fn mysql_case(
    cluster: &TestCluster,
    load: &WriteLoad,
    fault: Fault,
    rejoin: bool,
) -> Measured {
    assert!(
        load.wait_for_acknowledged(STEADY_WRITES, 60).await,
        "the load writes before the fault"
    );
    let before = cluster.status().await;
    let old = before.mysql.primary.clone().expect("a recorded primary");
    let count = before.mysql.failover_count;
    let api_restarts = cluster.restarts("api").await;
    let hooks = hooks_received(cluster).await;
    let (events_before, _) = failover_events(cluster);

    let mut faulted = Instant::now();
    match fault {
        Fault::KillMariadbd => faulted = kill_mariadbd(cluster, &old).await,
        Fault::DeletePod => {
            cluster
                .api::<Pod>()
                .delete(&old, &DeleteParams::default().grace_period(0))
                .await
                .expect("deleting the primary's pod");
        }
        Fault::Switchover => {
            cluster.node.kubectl_ok(&[
                "annotate",
                "sns",
                CLUSTER,
                "-n",
                &cluster.namespace,
                "sns-platform.dev/switchover=any",
            ]);
        }
    }
    let status = eventually(
        120,
        Duration::from_millis(250),
        &format!("{}: a new primary recorded", fault.name()),
        || cluster.diagnostics(),
        || async {
            let status = cluster.status().await;
            (status.mysql.primary.as_deref() != Some(old.as_str())).then_some(status)
        },
    )
    .await;
    let new = status.mysql.primary.clone().unwrap_or_default();
    let recorded = faulted.elapsed();
    assert_eq!(status.mysql.failover_count, count + 1, "counted once");
    let last = status.mysql.last_failover.clone().expect("lastFailover");
    assert_eq!(
        (last.from.as_str(), last.to.as_str()),
        (old.as_str(), new.as_str())
    );
    // The Orchestrator that promoted agrees.
    let master = super::orchestrator_master(cluster).await;
    let host = master["Key"]["Hostname"].as_str().unwrap_or_default();
    assert!(
        host.starts_with(&format!("{new}.")),
        "Orchestrator names {host}"
    );

    // The label, and so the primary Service, follow.
    eventually(
        60,
        Duration::from_millis(250),
        "the role=primary label and the primary Service on the new primary",
        || cluster.diagnostics(),
        || async { primary_service_is_on(cluster, &new).await.then_some(()) },
    )
    .await;
    // The API writes again by itself.
    assert!(
        load.wait_for_acknowledged(STEADY_WRITES, 120).await,
        "{}: writes resume through the API",
        fault.name()
    );
    let gap = load.gap_since(faulted);
    println!(
        "e2e: {}: {old} -> {new} recorded {:.1} s after the fault; posts paused {:.1} s at most, \
         {} 5xx, {} without answer",
        fault.name(),
        recorded.as_secs_f64(),
        gap.recovery.map_or(f64::NAN, |d| d.as_secs_f64()),
        gap.server_errors,
        gap.transport_errors
    );
    if matches!(fault, Fault::Switchover) {
        assert_eq!(
            (gap.server_errors, gap.transport_errors),
            (0, 0),
            "a switchover fails no write"
        );
    }
    // An Event for this failover: about the promoted pod (the recorder folds an Event that
    // repeats one of the same pod into a count).
    let (seen, related) = failover_events(cluster);
    assert!(
        seen > events_before,
        "a Failover Event for this failover ({seen} in all)"
    );
    assert!(
        related.contains(&new),
        "a Failover Event about {new}: {related:?}"
    );
    assert_eq!(
        cluster.restarts("api").await,
        api_restarts,
        "no API container restarted"
    );
    // Orchestrator's hook reached the operator (a takeover runs it too).
    eventually(
        30,
        Duration::from_millis(500),
        "Orchestrator's failover hook to reach the operator",
        || cluster.diagnostics(),
        || async { (hooks_received(cluster).await > hooks).then_some(()) },
    )
    .await;

    if !rejoin {
        return Measured {
            case: fault.name(),
            gap,
            lost: None,
        };
    }
    // The old primary is back, read-only, replicating from the new one; Ready again.
    eventually(
        240,
        Duration::from_secs(2),
        &format!("{old} back as a read-only replica of {new}"),
        || cluster.diagnostics(),
        || async { cluster.replicates_from(&old, &new).then_some(()) },
    )
    .await;
    cluster.wait_ready(240).await;
    Measured {
        case: fault.name(),
        gap,
        lost: None,
    }
}

/// With `durability: async` (applied by the operator to the running servers), the primary
/// killed under load: the failover works the same, and the acknowledged writes the
/// promoted replica never received are counted (printed, not asserted: that is what async
/// means). The old primary may hold transactions nobody else has, and then stops
/// replicating for a person to decide, so the cluster is not required to be Ready after.
async fn async_primary_killed(cluster: &TestCluster, api: &ApiClient) -> Measured {
    cluster.node.kubectl_ok(&[
        "patch",
        "sns",
        CLUSTER,
        "-n",
        &cluster.namespace,
        "--type=merge",
        "-p",
        r#"{"spec":{"mysql":{"durability":"async"}}}"#,
    ]);
    let pods: Vec<String> = cluster
        .pods("mysql")
        .await
        .iter()
        .map(ResourceExt::name_any)
        .collect();
    eventually(
        120,
        Duration::from_secs(1),
        "the operator to turn semi-sync off on every running server",
        || cluster.diagnostics(),
        || async {
            pods.iter()
                .all(|pod| {
                    let (ok, out) = cluster.sql_try(
                        pod,
                        "SELECT @@rpl_semi_sync_master_enabled, @@rpl_semi_sync_slave_enabled",
                    );
                    ok && out.trim() == "0\t0"
                })
                .then_some(())
        },
    )
    .await;
    let load = WriteLoad::start(api, "aload_", Duration::from_millis(60)).await;
    let mut measured = mysql_case(cluster, &load, Fault::KillMariadbd, false).await;
    let (posts, likes) = load.stop().await;
    let lost = cluster.lost_writes(&posts, &likes).await;
    println!(
        "e2e: async: {} posts and {} likes acknowledged; {lost} missing from the new primary",
        posts.len(),
        likes.values().map(BTreeSet::len).sum::<usize>()
    );
    measured.case = "async: primary's mariadbd SIGKILLed";
    measured.lost = Some(lost);
    measured
}

/// Semi-synchronous replication is on where the spec asks for it (the default): the
/// primary waits for its replicas, both of which acknowledge.
async fn semisync_is_on(cluster: &TestCluster) {
    let primary = cluster
        .status()
        .await
        .mysql
        .primary
        .expect("a recorded primary");
    let status = cluster.sql(
        &primary,
        "SHOW GLOBAL STATUS WHERE Variable_name IN \
         ('Rpl_semi_sync_master_status', 'Rpl_semi_sync_master_clients')",
    );
    assert!(
        status.contains("Rpl_semi_sync_master_status\tON"),
        "semi-sync on the primary: {status}"
    );
    assert!(
        status.contains("Rpl_semi_sync_master_clients\t2"),
        "both replicas acknowledge: {status}"
    );
}

/// Kills the mariadbd process of `pod`'s mariadb container from the node (SIGKILL; the
/// container's own PID 1 ignores signals sent from inside it); returns when it was sent.
async fn kill_mariadbd(cluster: &TestCluster, pod: &str) -> Instant {
    let pod = cluster
        .api::<Pod>()
        .get(pod)
        .await
        .expect("the primary's pod");
    let container = pod
        .status
        .and_then(|s| s.container_statuses)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.name == "mariadb")
        .and_then(|c| c.container_id)
        .expect("the mysql container's id");
    let id = container.trim_start_matches("containerd://");
    let socket = env("SNS_NODE_CTR_SOCKET");
    let (ok, tasks) = cluster.node.run(
        "ctr",
        &["--address", &socket, "-n", "k8s.io", "tasks", "ls"],
        None,
    );
    assert!(ok, "ctr tasks ls: {tasks}");
    let pid = tasks
        .lines()
        .find(|line| line.starts_with(id))
        .and_then(|line| line.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no task of container {id} in {tasks}"));
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_eq!(
        comm.trim(),
        "mariadbd",
        "the container's process is mariadbd"
    );
    let killed = Instant::now();
    let (ok, out) = cluster.node.run("kill", &["-KILL", pid], None);
    assert!(ok, "kill -KILL {pid}: {out}");
    killed
}

/// Failover Events so far (repeats counted) and the pods they are about.
fn failover_events(cluster: &TestCluster) -> (i64, Vec<String>) {
    let events: serde_json::Value = serde_json::from_str(&cluster.node.kubectl_ok(&[
        "get",
        "events.events.k8s.io",
        "-n",
        &cluster.namespace,
        "--field-selector",
        "reason=Failover",
        "-o",
        "json",
    ]))
    .expect("Events as JSON");
    let items = events["items"].as_array().cloned().unwrap_or_default();
    let seen = items
        .iter()
        .map(|e| e["series"]["count"].as_i64().unwrap_or(1))
        .sum();
    let related = items
        .iter()
        .filter_map(|e| e["related"]["name"].as_str().map(str::to_owned))
        .collect();
    (seen, related)
}

/// Authenticated failover reports the operator got from Orchestrator's hook for this
/// cluster (`operator_failover_hooks_total`, on the operator's metrics Service).
async fn hooks_received(cluster: &TestCluster) -> u64 {
    let (ip, port) = operator_metrics_service(&cluster.node).await;
    let text = reqwest::get(format!("http://{ip}:{port}/metrics"))
        .await
        .expect("the operator's metrics")
        .text()
        .await
        .expect("the operator's metrics text");
    let series = format!(
        "operator_failover_hooks_total{{cluster=\"{}/{CLUSTER}\"}} ",
        cluster.namespace
    );
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

/// Whether `pod` alone carries role=primary and the primary Service's endpoint is its IP.
async fn primary_service_is_on(cluster: &TestCluster, pod: &str) -> bool {
    let pods = cluster.pods("mysql").await;
    let labelled = super::labelled_primaries(&pods);
    let ip = pods
        .iter()
        .find(|p| p.name_any() == pod)
        .and_then(|p| p.status.as_ref())
        .and_then(|s| s.pod_ip.clone());
    let endpoints = cluster
        .api::<Endpoints>()
        .get_opt(&format!("{CLUSTER}-mysql-primary"))
        .await
        .ok()
        .flatten();
    let addresses: Vec<String> = endpoints
        .and_then(|e| e.subsets)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|s| s.addresses.unwrap_or_default())
        .map(|a| a.ip)
        .collect();
    labelled == [pod] && ip.is_some_and(|ip| addresses == [ip])
}

/// A Redis master pod deleted under a (lighter) load: its replica is promoted by the
/// cluster itself, the pod comes back as a replica, and no acknowledged like or post is
/// missing: likes counted, posts in the follower's feed.
async fn redis_master_killed(cluster: &TestCluster, api: &ApiClient) -> Measured {
    // Lighter than the MySQL load: the follower's feed (800 entries) must hold every post
    // written during the case.
    let load = WriteLoad::start(api, "rload_", Duration::from_millis(250)).await;
    assert!(load.wait_for_acknowledged(40, 60).await, "the load writes");
    let pods = cluster.pods("redis").await;
    let master = pods
        .iter()
        .map(ResourceExt::name_any)
        .find(|pod| {
            cluster
                .exec(pod, "redis", &["redis-cli", "role"])
                .starts_with("master")
        })
        .expect("a Redis master");
    let faulted = Instant::now();
    cluster
        .api::<Pod>()
        .delete(&master, &DeleteParams::default().grace_period(0))
        .await
        .expect("deleting a Redis master pod");
    eventually(
        120,
        Duration::from_millis(500),
        "the Redis Cluster to serve every slot again",
        || cluster.diagnostics(),
        || async {
            let pods = cluster.pods("redis").await;
            let other = pods.iter().find(|p| p.name_any() != master)?;
            let info = cluster.exec(
                &other.name_any(),
                "redis",
                &["redis-cli", "cluster", "info"],
            );
            info.contains("cluster_state:ok").then_some(())
        },
    )
    .await;
    assert!(
        load.wait_for_acknowledged(40, 120).await,
        "writes go on after the Redis failover"
    );
    let gap = load.gap_since(faulted);
    let reader = load.reader_token.clone();
    let (posts, likes) = load.stop().await;
    cluster.wait_ready(240).await;
    println!(
        "e2e: Redis master {master} deleted: writes went on ({} 5xx, {} without answer); {} posts, {} likes acknowledged",
        gap.server_errors,
        gap.transport_errors,
        posts.len(),
        likes.values().map(BTreeSet::len).sum::<usize>()
    );

    // Every acknowledged like is counted (a like acknowledged may also have been stored
    // for a write whose answer was lost: at least as many).
    for (post, likers) in &likes {
        eventually(
            60,
            Duration::from_millis(500),
            &format!(
                "post {post} to count its {} acknowledged likes",
                likers.len()
            ),
            || cluster.diagnostics(),
            || async {
                let (status, body) = api
                    .call(Method::GET, &format!("/posts/{post}"), None, None)
                    .await
                    .ok()?;
                let count = body["like_count"].as_u64()?;
                (status == StatusCode::OK && count >= likers.len() as u64).then_some(())
            },
        )
        .await;
    }
    // Every acknowledged post is in the follower's feed.
    let missing = eventually(
        60,
        Duration::from_secs(1),
        "every acknowledged post in the follower's feed",
        || cluster.diagnostics(),
        || async {
            let seen = feed_ids(api, &reader).await?;
            let missing: Vec<u64> = posts.difference(&seen).copied().collect();
            if !missing.is_empty() {
                eprintln!(
                    "e2e: {} acknowledged posts not in the feed yet",
                    missing.len()
                );
                return None;
            }
            Some(missing)
        },
    )
    .await;
    assert!(missing.is_empty());
    let lost = cluster.lost_writes(&posts, &likes).await;
    assert_eq!(lost, 0, "no acknowledged write lost with the Redis master");
    Measured {
        case: "Redis master pod deleted",
        gap,
        lost: Some(lost),
    }
}

/// Every post id in the feed of the holder of `token`, page after page.
async fn feed_ids(api: &ApiClient, token: &str) -> Option<BTreeSet<u64>> {
    let mut ids = BTreeSet::new();
    let mut cursor: Option<String> = None;
    for _ in 0..40 {
        let path = match &cursor {
            None => "/feed?limit=50".to_owned(),
            Some(c) => format!("/feed?limit=50&cursor={}", encode_path_segment(c)),
        };
        let (status, page) = api.call(Method::GET, &path, Some(token), None).await.ok()?;
        if status != StatusCode::OK {
            return None;
        }
        for item in page["items"].as_array()? {
            ids.insert(item["id"].as_u64()?);
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Some(ids),
        }
    }
    Some(ids)
}
