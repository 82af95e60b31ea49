//! The platform as a user installs and runs it, on a real node: `helm install` of the chart
//! (the operator runs as a pod under its own ServiceAccount), `kubectl apply` of an
//! SnsCluster, and then what must hold of what the operator deployed:
//!
//! 1. it reaches Ready through the real data plane: MariaDB replicating (GTID, set up by the
//!    pods' own start script), a 6-node Redis Cluster the operator bootstrapped, the primary
//!    named by the real Orchestrator; the time to Ready is printed;
//! 2. a client journey through the API's Service: sign-up then log-in at once, follow, an
//!    upload straight to S3 (from `spec.api.s3`), a post with it, the follower's feed, the
//!    media's bytes, likes and comments, each read right after its write;
//! 3. Prometheus scrapes every target (API pods, operator, mysqld and redis exporters), has
//!    the alert rules, and knows every metric the dashboards query;
//! 4. every Redis pod deleted at once, then every Orchestrator pod one after another: the
//!    cluster is Ready again by itself and the API still writes;
//! 5. failovers under a steady write load (`platform/failover.rs`): the primary killed,
//!    its pod deleted, a planned switchover, a Redis master deleted; measured, nothing
//!    acknowledged lost;
//! 6. `kubectl delete` of the SnsCluster removes what the operator made.
//!
//! ProxySQL and Grafana cannot run here (no package or module of either can be had): the
//! cluster runs without them (`mysql.proxysql.enabled: false`, `monitoring.grafana.enabled:
//! false`), which is what the API's two pools and the Ready condition are checked for.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sns_e2e::api::ApiClient;
use sns_e2e::cluster::{TestCluster, condition, seconds_since};
use sns_e2e::install::{cluster_manifest, install_operator};
use sns_e2e::node::{Node, eventually, repo_root};
use sns_e2e::prometheus::Prometheus;
use sns_e2e::s3::S3Server;

#[path = "platform/failover.rs"]
mod failover;

/// The SnsCluster's name.
const CLUSTER: &str = "e2e";

/// A PNG header: what the journey uploads.
const PICTURE: &[u8] = b"\x89PNG\r\n\x1a\n e2e picture";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_installs_serves_recovers_and_uninstalls_on_a_real_node() {
    let node = Node::from_env().await;
    install_operator(&node).await;
    let cluster = TestCluster::new(&node, CLUSTER).await;
    let s3 = S3Server::start(&node.bridge_ip, "media");
    node.apply(
        &cluster.namespace,
        &json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": "s3-credentials" },
            "stringData": { "access-key": s3.access_key, "secret-key": s3.secret_key },
        })
        .to_string(),
    );

    let applied = Instant::now();
    node.apply(
        &cluster.namespace,
        &cluster_manifest(CLUSTER, Some(&s3)).to_string(),
    );
    let status = cluster.wait_ready(600).await;
    println!(
        "e2e: SnsCluster Ready {} s after kubectl apply",
        seconds_since(applied)
    );
    the_data_plane_is_real(&cluster, &status).await;

    let api = ApiClient::new(&cluster.service_url(&format!("{CLUSTER}-api")).await);
    the_client_journey_works(&api, &s3).await;
    prometheus_sees_everything(&cluster).await;

    let started = Instant::now();
    every_redis_pod_restarted_at_once(&cluster, &api).await;
    println!(
        "e2e: Redis Cluster healthy at new addresses, and the API writing to it, {} s after \
         every Redis pod was deleted",
        seconds_since(started)
    );
    let started = Instant::now();
    every_orchestrator_pod_restarted_in_turn(&cluster).await;
    println!(
        "e2e: three Orchestrator restarts in turn, raft agreeing after each, in {} s",
        seconds_since(started)
    );

    failover::failovers_under_load(&cluster, &api).await;

    deleting_the_cluster_removes_its_objects(&cluster).await;
    cluster.delete_namespace().await;
}

/// The primary is the one Orchestrator names; the replicas replicate from it by GTID; the
/// Redis Cluster is formed; no scripted answer anywhere.
async fn the_data_plane_is_real(
    cluster: &TestCluster,
    status: &sns_operator::crd::SnsClusterStatus,
) {
    let primary = status
        .mysql
        .primary
        .clone()
        .expect("status.mysql.primary is recorded");
    assert_eq!(
        primary,
        format!("{CLUSTER}-mysql-0"),
        "the first primary is server 0"
    );
    assert_eq!(status.mysql.failover_count, 0);
    assert_eq!(status.redis.cluster_state.as_deref(), Some("ok"));
    for type_ in [
        "MysqlReady",
        "RedisReady",
        "OrchestratorReady",
        "MonitoringReady",
        "ApiReady",
    ] {
        let found = condition(status, type_).map(|c| c.status.as_str());
        assert_eq!(found, Some("True"), "{type_}");
    }
    assert!(
        condition(status, "ProxysqlReady").is_none(),
        "no ProxySQL condition without ProxySQL"
    );

    // Orchestrator itself names the primary (its /api/master, through its Service). It is
    // seeded with server 0 and finds the replicas from it at its next polls: they may come
    // a few seconds after Ready.
    let master = eventually(
        60,
        Duration::from_secs(2),
        "Orchestrator to see both replicas",
        || cluster.diagnostics(),
        || async {
            let master = orchestrator_master(cluster).await;
            let seen = master["Replicas"].as_array().map_or(0, Vec::len);
            (seen >= 2).then_some(master)
        },
    )
    .await;
    let host = master["Key"]["Hostname"].as_str().unwrap_or_default();
    assert!(
        host.starts_with(&format!("{primary}.")),
        "Orchestrator names {host} as the primary: {master}"
    );
    let replicas = master["Replicas"].as_array().map_or(0, Vec::len);
    assert_eq!(replicas, 2, "Orchestrator sees both replicas: {master}");

    // The primary's role label and Service follow.
    assert_eq!(labelled_primaries(&cluster.pods("mysql").await), [primary]);
}

/// The pods of `pods` that carry the `role=primary` label.
fn labelled_primaries(pods: &[Pod]) -> Vec<String> {
    pods.iter()
        .filter(|pod| {
            pod.labels()
                .get("sns-platform.dev/role")
                .is_some_and(|role| role == "primary")
        })
        .map(ResourceExt::name_any)
        .collect()
}

/// Sign-up, follow, upload, post, feed, media, likes and comments, each read right after
/// its write (the API's writer pool serves those reads, never a lagging replica).
async fn the_client_journey_works(api: &ApiClient, s3: &S3Server) {
    eventually(
        60,
        Duration::from_secs(1),
        "the API's Service to answer /readyz",
        String::new,
        || async { api.is_ready().await.then_some(()) },
    )
    .await;
    let (alice, alice_token) = api.sign_up("alice").await;
    let (_, bob_token) = api.sign_up("bob").await;
    let follow = api
        .expect(
            StatusCode::OK,
            Method::PUT,
            &format!("/users/{alice}/follow"),
            Some(&bob_token),
            None,
        )
        .await;
    assert_eq!(follow["following"], true, "{follow}");

    let key = api
        .upload(&alice_token, "picture.png", "image/png", PICTURE)
        .await;
    assert_eq!(
        s3.stored(&key).as_deref(),
        Some(PICTURE),
        "the bytes went to the bucket of spec.api.s3"
    );
    let post = api
        .expect(
            StatusCode::CREATED,
            Method::POST,
            "/posts",
            Some(&alice_token),
            Some(json!({ "content": "hello from a real node", "media": [key] })),
        )
        .await;
    let post_id = post["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no id in {post}"));
    assert_eq!(post["media"][0]["key"], key.as_str(), "{post}");
    assert_eq!(post["content"], "hello from a real node", "{post}");

    // Fan-out is asynchronous: the post reaches Bob's feed shortly.
    let item = eventually(
        30,
        Duration::from_millis(300),
        "the post in the follower's feed",
        String::new,
        || async {
            let (status, feed) = api
                .call(Method::GET, "/feed", Some(&bob_token), None)
                .await
                .ok()?;
            (status == StatusCode::OK)
                .then(|| feed["items"].as_array().cloned())
                .flatten()?
                .into_iter()
                .find(|item| item["id"].as_u64() == Some(post_id))
        },
    )
    .await;
    let media_url = item["media"][0]["url"]
        .as_str()
        .unwrap_or_else(|| panic!("no media url in {item}"));
    assert_eq!(api.fetch(media_url).await, PICTURE, "the media's bytes");

    let like = api
        .expect(
            StatusCode::OK,
            Method::PUT,
            &format!("/posts/{post_id}/like"),
            Some(&bob_token),
            None,
        )
        .await;
    assert_eq!(like["liked"], true, "{like}");
    assert_eq!(like["like_count"], 1, "{like}");
    let comment = api
        .expect(
            StatusCode::CREATED,
            Method::POST,
            &format!("/posts/{post_id}/comments"),
            Some(&bob_token),
            Some(json!({ "content": "seen on the real node" })),
        )
        .await;
    let comments = api
        .expect(
            StatusCode::OK,
            Method::GET,
            &format!("/posts/{post_id}/comments"),
            None,
            None,
        )
        .await;
    assert_eq!(comments["items"][0]["id"], comment["id"], "{comments}");
    // A post is read from a replica: its counts arrive as fast as replication.
    eventually(
        10,
        Duration::from_millis(200),
        "the post's counts to show the like and the comment",
        String::new,
        || async {
            let (status, read) = api
                .call(
                    Method::GET,
                    &format!("/posts/{post_id}"),
                    Some(&bob_token),
                    None,
                )
                .await
                .ok()?;
            (status == StatusCode::OK
                && read["like_count"] == 1
                && read["comment_count"] == 1
                && read["liked_by_me"] == true)
                .then_some(())
        },
    )
    .await;
}

/// Every scrape target is up, the alert rules are loaded, and every metric a dashboard
/// panel queries has series.
async fn prometheus_sees_everything(cluster: &TestCluster) {
    let prometheus = Prometheus::new(&cluster.service_url(&format!("{CLUSTER}-prometheus")).await);
    // Targets per job: both API pods (found through DNS, refreshed every 30 s), the
    // operator, three mysqld and six redis exporters.
    let wanted = [
        ("sns-api", 2),
        ("sns-operator", 1),
        ("mysqld-exporter", 3),
        ("redis-exporter", 6),
    ];
    eventually(
        120,
        Duration::from_secs(3),
        "every Prometheus target to be up",
        String::new,
        || async {
            let targets = prometheus.targets().await.ok()?;
            let count = |job: &str| targets.iter().filter(|t| t.0 == job).count();
            let all_up = targets.iter().all(|t| t.2 == "up");
            if !all_up || wanted.iter().any(|(job, n)| count(job) != *n) {
                eprintln!("e2e: Prometheus targets not all there and up yet: {targets:?}");
                return None;
            }
            Some(())
        },
    )
    .await;

    let alerts = prometheus
        .alert_names()
        .await
        .expect("Prometheus lists its rules");
    let rules_file =
        std::fs::read_to_string(repo_root().join("operator/assets/monitoring/alerts.yaml"))
            .expect("reading alerts.yaml");
    let defined = rules_file.matches("- alert:").count();
    assert!(defined > 0);
    assert_eq!(
        alerts.len(),
        defined,
        "every alert rule is loaded: {alerts:?}"
    );

    // The journey's requests show in the API's counters from the next scrape (15 s) on.
    let panels = dashboard_queries();
    let empty = eventually(
        60,
        Duration::from_secs(5),
        "Prometheus to have every metric the dashboards query",
        String::new,
        || async {
            let (empty, missing) = dashboard_coverage(&prometheus, &panels).await;
            if !missing.is_empty() {
                eprintln!("e2e: metrics the dashboards query and Prometheus lacks: {missing:?}");
            }
            missing.is_empty().then_some(empty)
        },
    )
    .await;
    println!(
        "e2e: {} of {} dashboard queries return series; every metric they read has series; \
         empty so far (no such event yet, or one scrape only for a rate): {empty:?}",
        panels.len() - empty.len(),
        panels.len()
    );
}

/// The queries of `panels` that return no series, and the metrics of those that Prometheus
/// has no series of. A query may be empty only for want of events (no 5xx, no fallback
/// yet); each metric it reads must still be known.
async fn dashboard_coverage(
    prometheus: &Prometheus,
    panels: &[(String, String)],
) -> (Vec<String>, Vec<String>) {
    let mut missing = Vec::new();
    let mut empty = Vec::new();
    for (dashboard, expr) in panels {
        if prometheus.series(expr).await.unwrap_or(0) > 0 {
            continue;
        }
        empty.push(expr.clone());
        for metric in metric_names(expr) {
            let known = prometheus
                .series(&format!("count({{__name__=\"{metric}\"}})"))
                .await
                .unwrap_or(0);
            if known == 0 {
                missing.push(format!("{dashboard}: {metric} (in {expr})"));
            }
        }
    }
    (empty, missing)
}

/// Every panel query of the dashboards the operator ships, as (dashboard file, expression).
fn dashboard_queries() -> Vec<(String, String)> {
    let dir = repo_root().join("operator/assets/monitoring/dashboards");
    let mut queries = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("reading the dashboards") {
        let path = entry.expect("a directory entry").path();
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("reading a dashboard"))
                .expect("a dashboard is JSON");
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut stack = vec![dashboard];
        while let Some(node) = stack.pop() {
            for panel in node["panels"].as_array().into_iter().flatten() {
                for target in panel["targets"].as_array().into_iter().flatten() {
                    if let Some(expr) = target["expr"].as_str() {
                        queries.push((name.clone(), expr.to_owned()));
                    }
                }
                stack.push(panel.clone());
            }
        }
    }
    assert!(
        !queries.is_empty(),
        "no dashboard query found in {}",
        dir.display()
    );
    queries
}

/// The metric names in a PromQL expression: identifiers followed by `{`, `[` or `)` that
/// are neither functions nor keywords.
fn metric_names(expr: &str) -> Vec<String> {
    const NOT_METRICS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
        "le",
    ];
    let mut names = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        if c == '"' {
            // Skip a string (a label value).
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += 1;
            }
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < bytes.len()
                && ((bytes[i] as char).is_ascii_alphanumeric()
                    || bytes[i] == b'_'
                    || bytes[i] == b':')
            {
                i += 1;
            }
            let word = &expr[start..i];
            let next = expr[i..].trim_start().chars().next();
            let is_call = next == Some('(');
            let inside_braces = expr[..start].rfind('{') > expr[..start].rfind('}');
            let inside_by = expr[..start].rfind('(').is_some_and(|open| {
                let before = expr[..open].trim_end();
                before.ends_with("by")
                    || before.ends_with("without")
                    || before.ends_with("on")
                    || before.ends_with("ignoring")
            }) && expr[..start].rfind('(') > expr[..start].rfind(')');
            if !is_call
                && !inside_braces
                && !inside_by
                && !NOT_METRICS.contains(&word)
                && word.contains('_')
            {
                names.push(word.to_owned());
            }
            continue;
        }
        i += 1;
    }
    names.sort();
    names.dedup();
    names
}

/// Every Redis pod deleted at once: they come back with new IPs while each remembers its
/// peers at their old ones; the operator meets them again, every node reports
/// `cluster_state:ok` and knows every other at its pod's current IP, and the API writes to
/// Redis again (a new post fans out into a follower's feed, read from Redis).
async fn every_redis_pod_restarted_at_once(cluster: &TestCluster, api: &ApiClient) {
    let pods = cluster.pods("redis").await;
    assert_eq!(pods.len(), 6);
    let old_ips: BTreeSet<String> = pods.iter().filter_map(pod_ip).collect();
    cluster.replace_pods(&pods, 300).await;
    eventually(
        300,
        Duration::from_secs(2),
        "every Redis node to be in a healthy cluster with its peers at their new IPs",
        || cluster.diagnostics(),
        || async {
            let pods = cluster.pods("redis").await;
            let ips: BTreeSet<String> = pods.iter().filter_map(pod_ip).collect();
            if ips.len() != 6 {
                return None;
            }
            for pod in &pods {
                let name = pod.name_any();
                let info = cluster.exec(&name, "redis", &["redis-cli", "cluster", "info"]);
                let nodes = cluster.exec(&name, "redis", &["redis-cli", "cluster", "nodes"]);
                let known: BTreeSet<String> = nodes
                    .lines()
                    .filter_map(|line| line.split_whitespace().nth(1))
                    .filter_map(|address| address.split(':').next())
                    .map(str::to_owned)
                    .collect();
                if !info.contains("cluster_state:ok") || known != ips {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    let new_ips: BTreeSet<String> = cluster
        .pods("redis")
        .await
        .iter()
        .filter_map(pod_ip)
        .collect();
    println!(
        "e2e: Redis pods came back at {} new IPs of 6",
        new_ips.difference(&old_ips).count()
    );
    let status = cluster.wait_ready(300).await;
    assert_eq!(status.redis.cluster_state.as_deref(), Some("ok"));

    // Every API pod finds the nodes at their new addresses, even one no request reached.
    let api_pods: Vec<String> = cluster
        .pods("api")
        .await
        .iter()
        .filter_map(pod_ip)
        .collect();
    assert_eq!(api_pods.len(), 2);
    eventually(
        60,
        Duration::from_secs(1),
        "every API pod to report Redis up (its /readyz gives Redis 1 s)",
        || cluster.diagnostics(),
        || async {
            for ip in &api_pods {
                let ready: Value = reqwest::get(format!("http://{ip}:8080/readyz"))
                    .await
                    .ok()?
                    .json()
                    .await
                    .ok()?;
                if ready["redis"] != "up" {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;

    // The API follows the nodes to their new addresses: a post fans out into a feed in
    // Redis, and the feed is served from there.
    let (author, author_token) = api.sign_up("carol").await;
    let (_, reader_token) = api.sign_up("dave").await;
    api.expect(
        StatusCode::OK,
        Method::PUT,
        &format!("/users/{author}/follow"),
        Some(&reader_token),
        None,
    )
    .await;
    let post = api
        .expect(
            StatusCode::CREATED,
            Method::POST,
            "/posts",
            Some(&author_token),
            Some(json!({ "content": "after the Redis restart" })),
        )
        .await;
    let post_id = post["id"].as_u64().unwrap_or_default();
    eventually(
        60,
        Duration::from_millis(500),
        "the post in a feed served from Redis after the restart",
        || cluster.diagnostics(),
        || async {
            let (status, feed, source) = api.feed(&reader_token).await.ok()?;
            let found = feed["items"]
                .as_array()?
                .iter()
                .any(|item| item["id"].as_u64() == Some(post_id));
            (status == StatusCode::OK && found && source.as_deref() == Some("redis")).then_some(())
        },
    )
    .await;
}

/// Every Orchestrator pod deleted in turn, each once the one before is back and healthy in
/// raft: each restarted node rejoins (its peers reach it at its Service's unchanged IP), the
/// three agree on one leader, and Orchestrator still names the primary.
async fn every_orchestrator_pod_restarted_in_turn(cluster: &TestCluster) {
    let mut pods = cluster.pods("orchestrator").await;
    pods.sort_by_key(ResourceExt::name_any);
    assert_eq!(pods.len(), 3);
    // Each node through its own raft Service (`<cluster>-orchestrator-raft-N`).
    let mut nodes = Vec::new();
    for index in 0..pods.len() {
        let service = format!("{CLUSTER}-orchestrator-raft-{index}");
        nodes.push(cluster.service_port_url(&service, Some("http")).await);
    }
    for pod in &pods {
        cluster.replace_pods(std::slice::from_ref(pod), 180).await;
        eventually(
            120,
            Duration::from_secs(2),
            &format!(
                "raft to agree on one leader after {} restarted",
                pod.name_any()
            ),
            || cluster.diagnostics(),
            || raft_agrees(&nodes),
        )
        .await;
    }
    cluster.wait_ready(180).await;
    let master = orchestrator_master(cluster).await;
    let host = master["Key"]["Hostname"].as_str().unwrap_or_default();
    assert!(
        host.starts_with(&format!("{CLUSTER}-mysql-0.")),
        "Orchestrator names the primary after its restarts: {master}"
    );
}

/// The raft leader's answer to `/api/master/<cluster>` (a follower answers from its own
/// view, which lags a promotion): the leader's address from any node, through the Service.
async fn orchestrator_master(cluster: &TestCluster) -> Value {
    let orchestrator = cluster
        .service_url(&format!("{CLUSTER}-orchestrator"))
        .await;
    let leader: String = reqwest::get(format!("{orchestrator}/api/raft-leader"))
        .await
        .expect("Orchestrator answers")
        .json()
        .await
        .expect("the raft leader's address");
    let (ip, _) = leader
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("a raft leader address: {leader:?}"));
    reqwest::get(format!("http://{ip}:3000/api/master/{CLUSTER}"))
        .await
        .expect("Orchestrator answers")
        .json()
        .await
        .expect("Orchestrator answers JSON")
}

/// `Some` when every node answers its raft state, exactly one is the leader, and every node
/// names the same leader.
async fn raft_agrees(nodes: &[String]) -> Option<()> {
    let mut states = Vec::new();
    let mut leaders = BTreeSet::new();
    for node in nodes {
        let state: String = reqwest::get(format!("{node}/api/raft-state"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let leader: String = reqwest::get(format!("{node}/api/raft-leader"))
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        states.push(state);
        leaders.insert(leader);
    }
    let leading = states.iter().filter(|s| *s == "Leader").count();
    let following = states.iter().filter(|s| *s == "Follower").count();
    (leading == 1 && following == nodes.len() - 1 && leaders.len() == 1 && !leaders.contains(""))
        .then_some(())
}

/// A pod's IP.
fn pod_ip(pod: &Pod) -> Option<String> {
    pod.status.as_ref().and_then(|s| s.pod_ip.clone())
}

/// `kubectl delete` of the SnsCluster: its Deployments, StatefulSets (and so pods),
/// Services, ConfigMaps and generated Secrets go with it. The data volumes stay (a deleted
/// resource must not take the data with it: delete the claims to drop it).
async fn deleting_the_cluster_removes_its_objects(cluster: &TestCluster) {
    cluster.node.kubectl_ok(&[
        "delete",
        "sns",
        CLUSTER,
        "-n",
        &cluster.namespace,
        "--wait=true",
        "--timeout=120s",
    ]);
    let selector = format!("app.kubernetes.io/instance={CLUSTER}");
    let params = ListParams::default().labels(&selector);
    eventually(
        180,
        Duration::from_secs(2),
        "every object of the deleted SnsCluster to be gone",
        || cluster.diagnostics(),
        || async {
            let left = count(cluster.api::<Deployment>(), &params).await?
                + count(cluster.api::<StatefulSet>(), &params).await?
                + count(cluster.api::<Service>(), &params).await?
                + count(cluster.api::<ConfigMap>(), &params).await?
                + count(cluster.api::<Pod>(), &params).await?;
            let secrets = cluster
                .api::<Secret>()
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .iter()
                .filter(|s| s.name_any().starts_with(&format!("{CLUSTER}-")))
                .count();
            (left + secrets == 0).then_some(())
        },
    )
    .await;
    // The test's own Secret, not the operator's, is still there.
    let own: Api<Secret> = cluster.api();
    assert!(own.get_opt("s3-credentials").await.ok().flatten().is_some());
    let _ = own.delete("s3-credentials", &DeleteParams::default()).await;
}

/// How many objects `api` lists with `params` (`None` when the API server fails).
async fn count<K>(api: Api<K>, params: &ListParams) -> Option<usize>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.list(params).await.ok().map(|list| list.items.len())
}
