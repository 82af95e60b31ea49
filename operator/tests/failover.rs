//! Failover handling, data-plane conditions and leader election against the real control
//! plane started by `tests/env/control-plane.sh` (KWOK nodes run the pods). Each test runs its
//! own operator(s) in this process, watching only the test's namespace, with the scripted
//! data plane (pod IPs are fake under KWOK: nothing answers there) and the real HTTP server.
//!
//! ```text
//! SnsCluster minimal ─► Ready, primary minimal-mysql-0 (role=primary label)
//! controller stopped ─► hook: no token / wrong token → 401, nothing changes
//!                    ─► Orchestrator promotes mysql-1, hook → 200: count 1, label, Event, metric
//! controller again   ─► its periodic checks see the same failover: still 1
//!                    ─► mysql-2 promoted, no hook (lost) → the check records it: 2
//! scripted faults    ─► Degraded with the reason (replica stopped, lag, cluster_state fail)
//! two candidates     ─► one Lease: only the leader reconciles; it crashes → the other takes
//!                       over within the lease duration; a clean stop releases the Lease
//! Lease taken away   ─► the leader stops its controller; work in flight is dropped at once
//!                       (a clean stop lets it finish)
//! bad names in a hook ─► 400 before any API call
//! switchover annotation ─► Orchestrator's takeover once, recorded, annotation off, Event;
//!                          the failover's recovery acknowledged in Orchestrator once; a
//!                          takeover that fails makes the primary writable again
//! spec.mysql.config changed ─► replicas restarted (2, 1), switchover, old primary restarted
//! replicas 2 → 1 with the primary on server 2 ─► switchover to 0, server 2 drained, removed,
//!                          forgotten; replicas 1 → 2 ─► a server added, none restarted
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::api::PostParams;
use kube::{Api, ResourceExt};
use serde_json::{Value, json};
use sns_operator::context::{Context, Settings};
use sns_operator::crd::SnsClusterStatus;
use sns_operator::dataplane::DataPlane;
use sns_operator::dataplane::scripted::{ReplicaFault, Scripted};
use sns_operator::failover::ROLE_LABEL;
use sns_operator::leader::{LeaseSettings, run_as_leader};
use sns_operator::metrics::Metrics;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use support::{TestNamespace, client, eventually};

mod support;

fn condition<'s>(
    status: &'s SnsClusterStatus,
    type_: &str,
) -> Option<&'s sns_operator::crd::Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

fn is_true(status: &SnsClusterStatus, type_: &str) -> bool {
    condition(status, type_).is_some_and(|c| c.status == "True")
}

/// One operator of this test: a context on the scripted data plane, its HTTP server, and
/// (while running) its controller.
struct Operator {
    context: Arc<Context>,
    script: Arc<Scripted>,
    url: String,
    controller: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Operator {
    /// The context and its HTTP server, and the controller running.
    async fn start(namespace: &str, instance: &str) -> Self {
        let mut operator = Self::new(namespace, instance).await;
        operator.start_controller();
        operator
    }

    /// The context and its HTTP server, no controller (leader election starts it).
    async fn new(namespace: &str, instance: &str) -> Self {
        let (data_plane, script) = DataPlane::scripted();
        let settings = Settings {
            watch_namespace: Some(namespace.to_owned()),
            check_interval: Duration::from_secs(1),
            instance: instance.to_owned(),
            ..Settings::default()
        };
        let metrics = Arc::new(Metrics::new().unwrap());
        let context = Context::new(client().await, metrics, data_plane, settings);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(sns_operator::server::serve(
            listener,
            context.clone(),
            std::future::pending(),
        ));
        Self {
            context,
            script,
            url,
            controller: None,
        }
    }

    fn start_controller(&mut self) {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(sns_operator::controller::run(
            self.context.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        self.controller = Some((stop, task));
    }

    async fn stop_controller(&mut self) {
        let (stop, task) = self.controller.take().unwrap();
        stop.send(()).unwrap();
        task.await.unwrap();
    }

    async fn hook(&self, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .post(format!("{}/hooks/orchestrator/failover", self.url))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

async fn primary_labelled(ns: &TestNamespace) -> Vec<String> {
    ns.api::<Pod>()
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|pod| pod.labels().get(ROLE_LABEL).is_some_and(|v| v == "primary"))
        .map(|pod| pod.name_any())
        .collect()
}

async fn failover_events(ns: &TestNamespace) -> Vec<Event> {
    ns.api::<Event>()
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Failover"))
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("minimal"))
        .collect()
}

/// Annotates the SnsCluster `minimal` asking for a switchover to `to`.
async fn ask_switchover(clusters: &Api<sns_operator::crd::SnsCluster>, to: &str) {
    clusters
        .patch(
            "minimal",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({
                "metadata": { "annotations": { "sns-platform.dev/switchover": to } }
            })),
        )
        .await
        .unwrap();
}

/// Waits for Ready with `pod` recorded and labelled as the primary.
async fn wait_for_primary(ns: &TestNamespace, pod: &str) -> SnsClusterStatus {
    eventually(120, &format!("Ready with primary {pod}"), || async {
        let status = ns.status().await;
        let labelled = primary_labelled(ns).await;
        (is_true(&status, "Ready")
            && status.mysql.primary.as_deref() == Some(pod)
            && labelled == [pod])
        .then_some(status)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_is_authenticated_recorded_once_and_a_lost_hook_is_caught() {
    let ns = TestNamespace::new().await;
    let mut operator = Operator::start(&ns.name, "failover-test").await;
    ns.apply_minimal();
    let label = format!("{}/minimal", ns.name);

    // Arrange: Ready, with the lowest ordinal as the first primary (no failover counted).
    let status = wait_for_primary(&ns, "minimal-mysql-0").await;
    assert_eq!(status.mysql.failover_count, 0);
    assert_eq!(status.mysql.last_failover, None);
    assert_eq!(status.redis.cluster_state.as_deref(), Some("ok"));
    assert_eq!(
        operator.script.bootstraps(),
        1,
        "the Redis Cluster was bootstrapped once"
    );
    let secret = ns
        .api::<Secret>()
        .get("minimal-orchestrator-hook")
        .await
        .unwrap();
    let token = String::from_utf8(secret.data.unwrap()["token"].0.clone()).unwrap();
    // With the controller stopped, the hook is the only way a failover can be recorded.
    operator.stop_controller().await;

    let report = |successor: &str| {
        json!({
            "cluster": "minimal",
            "namespace": ns.name,
            "failedHost": "minimal-mysql-0.minimal-mysql",
            "failedPort": 3306,
            "successorHost": format!("{successor}.minimal-mysql.{}.svc.cluster.local", ns.name),
            "successorPort": 3306,
        })
    };

    // Act and assert: no token, a wrong token: 401 and nothing changes.
    let (code, body) = operator.hook(None, report("minimal-mysql-1")).await;
    assert_eq!(code, 401, "{body}");
    assert_eq!(body["error"]["code"], "MISSING_TOKEN", "{body}");
    let (code, body) = operator
        .hook(Some("not-the-token"), report("minimal-mysql-1"))
        .await;
    assert_eq!(code, 401, "{body}");
    assert_eq!(body["error"]["code"], "INVALID_TOKEN", "{body}");
    let unchanged = ns.status().await;
    assert_eq!(unchanged.mysql, status.mysql);
    assert_eq!(primary_labelled(&ns).await, ["minimal-mysql-0"]);

    // Orchestrator promotes mysql-1, then runs its hook.
    operator.script.set_primary(Some("minimal-mysql-1"));
    let (code, body) = operator.hook(Some(&token), report("minimal-mysql-1")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body,
        json!({"recorded": true, "primary": "minimal-mysql-1", "failoverCount": 1})
    );
    let status = ns.status().await;
    assert_eq!(status.mysql.primary.as_deref(), Some("minimal-mysql-1"));
    assert_eq!(status.mysql.failover_count, 1);
    // The former primary is fenced (read_only=1) in case it still runs.
    assert_eq!(operator.script.fenced(), vec!["minimal-mysql-0".to_owned()]);
    let last = status.mysql.last_failover.clone().unwrap();
    assert_eq!(
        (last.from.as_str(), last.to.as_str()),
        ("minimal-mysql-0", "minimal-mysql-1")
    );
    assert!(
        chrono::DateTime::parse_from_rfc3339(&last.time).is_ok(),
        "{last:?}"
    );
    assert_eq!(primary_labelled(&ns).await, ["minimal-mysql-1"]);
    let events = eventually(10, "the Failover event", || async {
        let events = failover_events(&ns).await;
        (!events.is_empty()).then_some(events)
    })
    .await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].type_.as_deref(), Some("Warning"));
    assert!(
        events[0]
            .note
            .as_deref()
            .unwrap()
            .contains("promoted minimal-mysql-1"),
        "{:?}",
        events[0].note
    );
    assert_eq!(operator.context.metrics.failovers_for(&label), 1);
    let scraped = reqwest::get(format!("{}/metrics", operator.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        scraped.contains(&format!(
            "operator_failovers_total{{cluster=\"{label}\"}} 1"
        )),
        "{scraped}"
    );

    // The periodic check (controller running again, every second) sees the same failover
    // in Orchestrator's API, and Orchestrator repeating its hook: neither counts it again.
    operator.start_controller();
    let calls = operator.script.orchestrator_calls();
    eventually(30, "two periodic checks", || async {
        (operator.script.orchestrator_calls() >= calls + 2).then_some(())
    })
    .await;
    let (code, body) = operator.hook(Some(&token), report("minimal-mysql-1")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["recorded"], false, "{body}");
    let status = ns.status().await;
    assert_eq!(status.mysql.failover_count, 1);
    assert_eq!(status.mysql.last_failover, Some(last));
    assert_eq!(operator.context.metrics.failovers_for(&label), 1);
    assert_eq!(failover_events(&ns).await.len(), 1);

    // A lost hook: Orchestrator promotes mysql-2 and nobody calls; the check records it.
    operator.script.set_primary(Some("minimal-mysql-2"));
    let status = eventually(30, "the check to record the second failover", || async {
        let status = ns.status().await;
        (status.mysql.primary.as_deref() == Some("minimal-mysql-2")).then_some(status)
    })
    .await;
    assert_eq!(status.mysql.failover_count, 2);
    let last = status.mysql.last_failover.unwrap();
    assert_eq!(
        (last.from.as_str(), last.to.as_str()),
        ("minimal-mysql-1", "minimal-mysql-2")
    );
    eventually(10, "the label on minimal-mysql-2", || async {
        (primary_labelled(&ns).await == ["minimal-mysql-2"]).then_some(())
    })
    .await;
    assert_eq!(operator.context.metrics.failovers_for(&label), 2);

    operator.stop_controller().await;
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_plane_faults_make_the_cluster_degraded_with_the_reason() {
    let ns = TestNamespace::new().await;
    let mut operator = Operator::start(&ns.name, "health-test").await;
    ns.apply_minimal();
    wait_for_primary(&ns, "minimal-mysql-0").await;

    // A replica's SQL thread stops.
    operator.script.set_replica_fault(
        "minimal-mysql-2",
        Some(ReplicaFault::SqlThreadStopped(
            "Could not execute Write_rows_v1 event".into(),
        )),
    );
    let status = eventually(30, "Degraded=True", || async {
        let status = ns.status().await;
        is_true(&status, "Degraded").then_some(status)
    })
    .await;
    let degraded = condition(&status, "Degraded").unwrap();
    assert_eq!(degraded.reason, "ReplicaNotReplicating");
    assert!(
        degraded
            .message
            .starts_with("minimal-mysql-2 is not replicating: SQL thread stopped"),
        "{degraded:?}"
    );
    let mysql = condition(&status, "MysqlReady").unwrap();
    assert_eq!(
        (mysql.status.as_str(), mysql.reason.as_str()),
        ("False", "ReplicaNotReplicating")
    );
    assert!(!is_true(&status, "Ready"));

    // Lag instead: still degraded, another reason.
    operator
        .script
        .set_replica_fault("minimal-mysql-2", Some(ReplicaFault::Lagging(120)));
    eventually(30, "ReplicationLag", || async {
        let status = ns.status().await;
        condition(&status, "Degraded")
            .filter(|c| c.reason == "ReplicationLag")
            .map(|c| assert!(c.message.contains("more than 30 s behind"), "{c:?}"))
    })
    .await;

    // Healed; then the Redis Cluster fails.
    operator.script.set_replica_fault("minimal-mysql-2", None);
    eventually(30, "Ready again", || async {
        let status = ns.status().await;
        (is_true(&status, "Ready") && !is_true(&status, "Degraded")).then_some(())
    })
    .await;
    operator.script.set_redis_state(Some("fail"));
    let status = eventually(30, "Degraded by Redis", || async {
        let status = ns.status().await;
        is_true(&status, "Degraded").then_some(status)
    })
    .await;
    assert_eq!(
        condition(&status, "Degraded").unwrap().reason,
        "ClusterStateFail"
    );
    assert_eq!(condition(&status, "RedisReady").unwrap().status, "False");
    assert_eq!(status.redis.cluster_state.as_deref(), Some("fail"));

    // Events on the transitions of Degraded (and of Ready).
    let reasons: Vec<String> = ns
        .api::<Event>()
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.reason)
        .collect();
    for reason in ["Ready", "NotReady", "Degraded", "Recovered"] {
        assert!(reasons.iter().any(|r| r == reason), "{reason}: {reasons:?}");
    }
    operator.stop_controller().await;
    ns.delete().await;
}

/// A candidate: its own context and metrics, the controller run under leader election.
fn candidate(
    context: Arc<Context>,
    lease: LeaseSettings,
) -> (oneshot::Sender<()>, JoinHandle<Result<(), String>>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let controller_context = context.clone();
        run_as_leader(
            context.client.clone(),
            lease,
            &context.metrics,
            async move {
                let _ = stopped.await;
            },
            move |stop| sns_operator::controller::run(controller_context, stop),
        )
        .await
        .map_err(|lost| lost.to_string())
    });
    (stop, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_reconciles_and_another_takes_over_within_the_lease_duration() {
    let ns = TestNamespace::new().await;
    let label = format!("{}/minimal", ns.name);
    let lease_duration = Duration::from_secs(4);
    let lease = |identity: &str| LeaseSettings {
        namespace: ns.name.clone(),
        name: "sns-operator-leader".into(),
        identity: identity.into(),
        lease_duration,
        renew_deadline: Duration::from_secs(3),
        retry_period: Duration::from_millis(500),
    };
    let mut candidates = Vec::new();
    for identity in ["operator-a", "operator-b"] {
        let operator = Operator::new(&ns.name, identity).await;
        let running = candidate(operator.context.clone(), lease(identity));
        candidates.push((identity, operator, running));
    }
    ns.apply_minimal();
    wait_for_primary(&ns, "minimal-mysql-0").await;

    // Exactly one leads, and only it reconciled (and wrote).
    let leases = ns.api::<Lease>();
    let holder = leases
        .get("sns-operator-leader")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity
        .unwrap();
    let index = candidates.iter().position(|c| c.0 == holder).unwrap();
    let (_, leader, (_leader_stop, leader_task)) = candidates.remove(index);
    let (_, follower, (follower_stop, follower_task)) = candidates.remove(0);
    let (leader, follower) = (&leader, &follower);
    let metrics = |o: &Operator| o.context.metrics.clone();
    assert_eq!(metrics(leader).is_leader.get(), 1);
    assert_eq!(metrics(follower).is_leader.get(), 0);
    assert!(metrics(leader).reconciles.get() > 0);
    assert!(metrics(leader).patches_for(&label) > 0);
    assert_eq!(
        metrics(follower).reconciles.get(),
        0,
        "a follower never reconciles"
    );
    assert_eq!(metrics(follower).patches_for(&label), 0);

    // The leader crashes (no release): the follower takes over once the Lease expires.
    leader_task.abort();
    let crashed = Instant::now();
    eventually(30, "the follower to reconcile", || async {
        (metrics(follower).reconciles.get() > 0).then_some(())
    })
    .await;
    // The follower saw the Lease change at most a retry period before the crash, waits the
    // lease duration from then, and notices within one more retry period.
    let took = crashed.elapsed();
    eprintln!("took over {took:?} after the leader crashed (lease {lease_duration:?})");
    assert!(
        took <= lease_duration + Duration::from_secs(3),
        "took over after {took:?} (lease {lease_duration:?})"
    );
    let spec = leases
        .get("sns-operator-leader")
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(
        spec.holder_identity.as_deref(),
        Some(follower.context.settings.instance.as_str())
    );
    assert!(spec.lease_transitions.unwrap_or(0) >= 1, "{spec:?}");

    // A clean stop releases the Lease at once.
    follower_stop.send(()).unwrap();
    assert_eq!(follower_task.await.unwrap(), Ok(()));
    let spec = leases
        .get("sns-operator-leader")
        .await
        .unwrap()
        .spec
        .unwrap();
    assert_eq!(spec.holder_identity, None, "released: {spec:?}");
    assert_eq!(metrics(follower).is_leader.get(), 0);
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_whose_lease_is_taken_stops_its_controller() {
    let ns = TestNamespace::new().await;
    let operator = Operator::new(&ns.name, "operator-a").await;
    let settings = LeaseSettings {
        namespace: ns.name.clone(),
        name: "sns-operator-leader".into(),
        identity: "operator-a".into(),
        lease_duration: Duration::from_secs(4),
        renew_deadline: Duration::from_secs(3),
        retry_period: Duration::from_millis(500),
    };
    let (_stop, task) = candidate(operator.context.clone(), settings);
    let metrics = operator.context.metrics.clone();
    eventually(10, "leadership", || async {
        (metrics.is_leader.get() == 1).then_some(())
    })
    .await;

    // Someone else writes the Lease as its holder (e.g. after a network partition).
    let leases = ns.api::<Lease>();
    steal_lease(&leases, "sns-operator-leader").await;

    steps_down(task, "the leader steps down within a few retry periods").await;
    assert_eq!(metrics.is_leader.get(), 0);
    let holder = leases
        .get("sns-operator-leader")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity;
    assert_eq!(
        holder.as_deref(),
        Some("intruder"),
        "a deposed leader does not release"
    );
    ns.delete().await;
}

/// Writes the Lease `name` with another holder, as a candidate that won it would.
/// Waits (at most 5 s) for a leader whose Lease was taken to stop, saying it lost the Lease.
async fn steps_down(task: JoinHandle<Result<(), String>>, what: &str) {
    let outcome = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect(what)
        .unwrap();
    assert!(
        outcome
            .as_ref()
            .is_err_and(|lost| lost.contains("held by another")),
        "{outcome:?}"
    );
}

async fn steal_lease(leases: &Api<Lease>, name: &str) {
    let mut lease = leases.get(name).await.unwrap();
    let spec = lease.spec.as_mut().unwrap();
    spec.holder_identity = Some("intruder".into());
    spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        k8s_openapi::jiff::Timestamp::now(),
    ));
    leases
        .replace(name, &PostParams::default(), &lease)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_leader_drops_its_work_at_once_and_a_clean_stop_lets_it_finish() {
    let ns = TestNamespace::new().await;
    let settings = |name: &str| LeaseSettings {
        namespace: ns.name.clone(),
        name: name.into(),
        identity: "operator-a".into(),
        lease_duration: Duration::from_secs(4),
        renew_deadline: Duration::from_secs(3),
        retry_period: Duration::from_millis(500),
    };

    // Work that, told to stop, would drain forever (a reconcile stuck in slow calls).
    let (started, is_started) = oneshot::channel::<()>();
    let (alive, mut is_alive) = oneshot::channel::<()>();
    let (lease, kube) = (settings("deposed"), client().await);
    let task = tokio::spawn(async move {
        let metrics = Metrics::new().unwrap();
        run_as_leader(
            kube,
            lease,
            &metrics,
            std::future::pending(),
            |stop| async move {
                let _alive = alive;
                started.send(()).unwrap();
                stop.await;
                std::future::pending::<()>().await;
            },
        )
        .await
        .map_err(|lost| lost.to_string())
    });
    is_started.await.unwrap();
    steal_lease(&ns.api::<Lease>(), "deposed").await;
    steps_down(task, "the leader steps down without waiting for its work").await;
    assert_eq!(
        is_alive.try_recv(),
        Err(oneshot::error::TryRecvError::Closed),
        "the work was dropped"
    );

    // A clean stop instead: the work is told to stop and may finish what it was doing.
    let (started, is_started) = oneshot::channel::<()>();
    let (shutdown, shut_down) = oneshot::channel::<()>();
    let finished = Arc::new(AtomicBool::new(false));
    let (lease, kube) = (settings("clean"), client().await);
    let work_finished = finished.clone();
    let task = tokio::spawn(async move {
        let metrics = Metrics::new().unwrap();
        let shutdown = async move {
            let _ = shut_down.await;
        };
        run_as_leader(kube, lease, &metrics, shutdown, |stop| async move {
            started.send(()).unwrap();
            stop.await;
            tokio::time::sleep(Duration::from_secs(1)).await;
            work_finished.store(true, Ordering::SeqCst);
        })
        .await
        .map_err(|lost| lost.to_string())
    });
    is_started.await.unwrap();
    shutdown.send(()).unwrap();
    assert_eq!(task.await.unwrap(), Ok(()));
    assert!(finished.load(Ordering::SeqCst), "the work drained");
    let holder = ns
        .api::<Lease>()
        .get("clean")
        .await
        .unwrap()
        .spec
        .unwrap()
        .holder_identity;
    assert_eq!(holder, None, "released after the drain");
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_naming_no_valid_cluster_or_namespace_is_refused_before_any_api_call() {
    let ns = TestNamespace::new().await;
    let operator = Operator::new(&ns.name, "names-test").await;
    let body = |cluster: &str, namespace: &str| {
        json!({
            "cluster": cluster,
            "namespace": namespace,
            "successorHost": "minimal-mysql-1.minimal-mysql",
        })
    };
    for (cluster, namespace) in [
        ("minimal?watch=true", ns.name.as_str()),
        ("x/../../secrets", ns.name.as_str()),
        ("..", ns.name.as_str()),
        ("Minimal", ns.name.as_str()),
        ("minimal", "kube-system/secrets"),
        ("minimal", "default?x=1"),
        ("minimal", "my.namespace"),
        ("minimal", ""),
    ] {
        let (code, answer) = operator
            .hook(Some("any-token"), body(cluster, namespace))
            .await;
        assert_eq!(code, 400, "{cluster:?} in {namespace:?}: {answer}");
        assert_eq!(answer["error"]["code"], "INVALID_NAME", "{answer}");
    }
    // A valid subdomain passes the check and reaches the token (no such Secret: 401).
    let (code, answer) = operator
        .hook(Some("any-token"), body("my.cluster", &ns.name))
        .await;
    assert_eq!(code, 401, "{answer}");
    assert_eq!(answer["error"]["code"], "INVALID_TOKEN", "{answer}");
    ns.delete().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switchover_annotation_is_carried_out_once_and_the_recovery_acknowledged() {
    let ns = TestNamespace::new().await;
    let operator = Operator::start(&ns.name, "switchover-test").await;
    ns.apply_minimal();
    wait_for_primary(&ns, "minimal-mysql-0").await;
    let clusters: Api<sns_operator::crd::SnsCluster> = ns.api();

    // Act: ask for a switchover to any replica.
    ask_switchover(&clusters, "any").await;

    // Assert: the first replica was promoted through Orchestrator and recorded as a
    // failover, the label followed, the annotation is gone, and an Event says so.
    let status = wait_for_primary(&ns, "minimal-mysql-1").await;
    assert_eq!(status.mysql.failover_count, 1);
    let cluster = clusters.get("minimal").await.unwrap();
    assert!(
        !cluster
            .annotations()
            .contains_key("sns-platform.dev/switchover"),
        "the request is taken off once handled"
    );
    eventually(10, "the Switchover event", || async {
        ns.api::<Event>()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("Switchover"))
            .filter(|e| {
                e.note
                    .as_deref()
                    .is_some_and(|n| n.contains("minimal-mysql-1"))
            })
    })
    .await;
    // Once healthy, the recovery is acknowledged in Orchestrator, naming the old primary,
    // and only once however many checks follow.
    eventually(30, "the recovery acknowledged", || async {
        (operator.script.acknowledged() == ["minimal-mysql-0.minimal-mysql"]).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(operator.script.acknowledged().len(), 1, "acknowledged once");
    assert_eq!(ns.status().await.mysql.failover_count, 1, "switched once");

    // A takeover that fails leaves the primary it turned read-only taking writes again.
    operator.script.set_takeover_failing(true);
    ask_switchover(&clusters, "minimal-mysql-2").await;
    let failed = eventually(30, "a SwitchoverFailed event", || async {
        ns.api::<Event>()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("SwitchoverFailed"))
    })
    .await;
    assert!(
        failed
            .note
            .as_deref()
            .is_some_and(|n| n.contains("minimal-mysql-1 takes writes again")),
        "{failed:?}"
    );
    assert_eq!(
        operator.script.made_writable(),
        ["minimal-mysql-1.minimal-mysql"]
    );
    operator.script.set_takeover_failing(false);

    // A request naming no replica is refused with a Warning Event, and taken off too.
    ask_switchover(&clusters, "nope-0").await;
    eventually(30, "the SwitchoverFailed event", || async {
        ns.api::<Event>()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|e| {
                e.reason.as_deref() == Some("SwitchoverFailed")
                    && e.note.as_deref().is_some_and(|n| n.contains("nope-0"))
            })
    })
    .await;
    let cluster = clusters.get("minimal").await.unwrap();
    assert!(
        !cluster
            .annotations()
            .contains_key("sns-platform.dev/switchover")
    );
    assert_eq!(
        ns.status().await.mysql.primary.as_deref(),
        Some("minimal-mysql-1")
    );
    ns.delete().await;
}

/// `pod name -> uid` of the cluster's MySQL pods that are not being deleted.
async fn mysql_pods(ns: &TestNamespace) -> std::collections::BTreeMap<String, String> {
    ns.api::<Pod>()
        .list(&kube::api::ListParams::default().labels("app.kubernetes.io/component=mysql"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .map(|pod| (pod.name_any(), pod.uid().unwrap_or_default()))
        .collect()
}

/// The notes of the cluster's Events with one of `reasons`, oldest first, as
/// `reason: note`.
async fn events(ns: &TestNamespace, reasons: &[&str]) -> Vec<String> {
    let mut events: Vec<Event> = ns
        .api::<Event>()
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| reasons.contains(&e.reason.as_deref().unwrap_or_default()))
        .collect();
    events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    events
        .into_iter()
        .map(|e| {
            format!(
                "{}: {}",
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default()
            )
        })
        .collect()
}

async fn patch_spec(ns: &TestNamespace, spec: Value) {
    ns.api::<sns_operator::crd::SnsCluster>()
        .patch(
            "minimal",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({ "spec": spec })),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_change_rolls_the_primary_last_and_scaling_restarts_no_server() {
    let ns = TestNamespace::new().await;
    let operator = Operator::start(&ns.name, "roll-test").await;
    ns.apply_minimal();
    wait_for_primary(&ns, "minimal-mysql-0").await;
    let before = mysql_pods(&ns).await;
    assert_eq!(before.len(), 3);

    // Act: a MySQL setting changes (read at start only).
    patch_spec(
        &ns,
        json!({ "mysql": { "config": { "max_connections": "321" } } }),
    )
    .await;

    // Assert: every server restarted once, replicas first from the highest ordinal, then the
    // primary role handed to an updated replica, then the old primary.
    let after = eventually(
        180,
        "every MySQL pod restarted and the cluster Ready",
        || async {
            let pods = mysql_pods(&ns).await;
            let status = ns.status().await;
            (pods.len() == 3
                && pods.iter().all(|(name, uid)| before.get(name) != Some(uid))
                && is_true(&status, "Ready"))
            .then_some(pods)
        },
    )
    .await;
    let steps = events(&ns, &["RollingRestart", "Switchover"]).await;
    let order: Vec<&str> = steps
        .iter()
        .map(|step| {
            if step.starts_with("Switchover") {
                "switchover"
            } else if step.contains("restarting minimal-mysql-2") {
                "2"
            } else if step.contains("restarting minimal-mysql-1") {
                "1"
            } else if step.contains("restarting minimal-mysql-0") {
                "0"
            } else {
                "?"
            }
        })
        .collect();
    assert_eq!(order, ["2", "1", "switchover", "0"], "{steps:#?}");
    assert!(steps[2].contains("over to minimal-mysql-1"), "{steps:#?}");
    let status = wait_for_primary(&ns, "minimal-mysql-1").await;
    assert_eq!(
        status.mysql.failover_count, 1,
        "one handover for the whole roll"
    );
    // Nothing more to do: the roll is over.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        mysql_pods(&ns).await,
        after,
        "no restart once every server is updated"
    );

    // Act: down to two servers while the primary is server 2 (a switchover asked for).
    ask_switchover(&ns.api(), "minimal-mysql-2").await;
    wait_for_primary(&ns, "minimal-mysql-2").await;
    patch_spec(&ns, json!({ "mysql": { "replicas": 1 } })).await;

    // Assert: server 2 hands over to server 0 first, then goes, drained from Orchestrator
    // first and forgotten after; no other server is restarted.
    let status = eventually(120, "two MySQL servers, Ready", || async {
        let pods = mysql_pods(&ns).await;
        let status = ns.status().await;
        (pods.len() == 2 && is_true(&status, "Ready")).then_some(status)
    })
    .await;
    assert_eq!(status.mysql.primary.as_deref(), Some("minimal-mysql-0"));
    let pods = mysql_pods(&ns).await;
    for server in ["minimal-mysql-0", "minimal-mysql-1"] {
        assert_eq!(
            pods.get(server),
            after.get(server),
            "{server} not restarted"
        );
    }
    let steps = events(&ns, &["Switchover", "ScaledDown"]).await;
    assert!(
        steps[steps.len() - 2].contains("over to minimal-mysql-0")
            && steps[steps.len() - 2].contains("scale-down")
            && steps[steps.len() - 1].starts_with("ScaledDown: removing minimal-mysql-2"),
        "{steps:#?}"
    );
    let host = "minimal-mysql-2.minimal-mysql";
    assert!(
        operator.script.never_promoted().iter().any(|h| h == host),
        "{host} drained"
    );
    eventually(30, &format!("{host} forgotten by Orchestrator"), || async {
        operator
            .script
            .forgotten()
            .iter()
            .any(|h| h == host)
            .then_some(())
    })
    .await;

    // Act: back to three servers.
    let kept = mysql_pods(&ns).await;
    patch_spec(&ns, json!({ "mysql": { "replicas": 2 } })).await;

    // Assert: two servers added, the one running untouched.
    eventually(120, "three MySQL servers Ready", || async {
        let pods = mysql_pods(&ns).await;
        (pods.len() == 3 && is_true(&ns.status().await, "Ready")).then_some(())
    })
    .await;
    assert_eq!(
        mysql_pods(&ns).await.get("minimal-mysql-0"),
        kept.get("minimal-mysql-0")
    );
    ns.delete().await;
}
