//! The operator against a real control plane (etcd, kube-apiserver, controller-manager,
//! scheduler, KWOK nodes) started by `tests/env/control-plane.sh`: real schema and CEL
//! validation, real server-side apply, real garbage collection. One namespace per test. The
//! backup test reads the bucket of the S3 server of `tests/env/testenv.sh`.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::Api;
use sns_operator::backup::{BackupRecord, Bucket, BucketSettings, backups_prefix};
use sns_operator::context::{Context, Settings};
use sns_operator::crd::{SnsCluster, SnsClusterStatus};
use sns_operator::dataplane::DataPlane;
use sns_operator::dataplane::scripted::Scripted;
use sns_operator::metrics::Metrics;
use support::{TestNamespace, client, eventually, install_crd, kubectl};

mod support;

/// Installs the CRD and starts one controller for this test binary, on a runtime of its
/// own; returns its metrics and its scripted data plane.
fn start_operator() -> (Arc<Metrics>, Arc<Scripted>) {
    static STARTED: OnceLock<(Arc<Metrics>, Arc<Scripted>)> = OnceLock::new();
    STARTED
        .get_or_init(|| {
            install_crd();
            let metrics = Arc::new(Metrics::new().unwrap());
            let shared = metrics.clone();
            // Pod IPs are fake under KWOK: the data plane is scripted (healthy).
            let (data_plane, script) = DataPlane::scripted();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Runtime::new().unwrap();
                runtime.block_on(async {
                    let context =
                        Context::new(client().await, shared, data_plane, Settings::default());
                    sns_operator::controller::run(context, std::future::pending()).await;
                });
            });
            (metrics, script)
        })
        .clone()
}

/// A namespace of the test's own, with this binary's controller running.
async fn namespace() -> TestNamespace {
    start_operator();
    TestNamespace::new().await
}

/// Writes an SnsCluster manifest named `name` with `spec` (YAML flow style) into a temporary
/// file for kubectl.
fn write_manifest(ns: &TestNamespace, name: &str, spec: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sns-{}", ns.name));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &file,
        format!(
            "apiVersion: sns-platform.dev/v1alpha1\nkind: SnsCluster\nmetadata: {{name: {name}}}\nspec: {{{spec}}}\n"
        ),
    )
    .unwrap();
    file
}

/// Waits until the object `name` exists.
async fn wait_for<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually(30, name, || async {
        api.get_opt(name).await.unwrap().map(|_| ())
    })
    .await;
}

/// Waits until the cluster reports Ready=True and returns that status.
async fn wait_until_ready(clusters: &Api<SnsCluster>, name: &str) -> SnsClusterStatus {
    eventually(90, "Ready=True", || async {
        let status = clusters.get(name).await.unwrap().status?;
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
            .then_some(status)
    })
    .await
}

#[tokio::test]
async fn applying_the_minimal_example_creates_every_child_and_reaches_ready() {
    let ns = namespace().await;
    let (ok, out) = kubectl(&[
        "apply",
        "-n",
        &ns.name,
        "-f",
        "manifests/examples/minimal.yaml",
    ]);
    assert!(ok, "{out}");
    let deployment = eventually(30, "the API Deployment", || async {
        ns.api::<Deployment>().get_opt("minimal-api").await.unwrap()
    })
    .await;
    let owner = &deployment.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("SnsCluster", "minimal")
    );
    assert_eq!(deployment.spec.as_ref().unwrap().replicas, Some(2));
    // Every child of the minimal example (monitoring is on by default), and the Secrets
    // generated for it. One reconcile applies them all, the API Deployment among the first.
    for name in ["mysql", "redis", "orchestrator"] {
        wait_for(&ns.api::<StatefulSet>(), &format!("minimal-{name}")).await;
    }
    for name in [
        "mysql",
        "mysql-topology",
        "redis",
        "proxysql",
        "orchestrator",
        "prometheus",
        "alertmanager",
        "grafana",
        "grafana-dashboards",
    ] {
        wait_for(&ns.api::<ConfigMap>(), &format!("minimal-{name}")).await;
    }
    for name in [
        "mysql",
        "mysql-primary",
        "redis",
        "api",
        "api-pods",
        "proxysql",
        "orchestrator",
        "orchestrator-peers",
        "prometheus",
        "alertmanager",
        "grafana",
    ] {
        wait_for(&ns.api::<Service>(), &format!("minimal-{name}")).await;
    }
    for name in ["api", "proxysql", "prometheus", "alertmanager", "grafana"] {
        wait_for(&ns.api::<Deployment>(), &format!("minimal-{name}")).await;
    }
    for name in ["api", "proxysql", "orchestrator"] {
        wait_for(&ns.api::<PodDisruptionBudget>(), &format!("minimal-{name}")).await;
    }
    for name in [
        "mysql",
        "api-jwt",
        "orchestrator",
        "orchestrator-hook",
        "proxysql",
        "mysqld-exporter",
        "grafana",
    ] {
        wait_for(&ns.api::<Secret>(), &format!("minimal-{name}")).await;
    }
    let proxysql = ns
        .api::<ConfigMap>()
        .get("minimal-proxysql")
        .await
        .unwrap()
        .data
        .unwrap()["proxysql.cnf"]
        .clone();
    assert!(
        proxysql.contains("mysql_replication_hostgroups"),
        "{proxysql}"
    );

    // KWOK runs the pods and binds the volumes: the cluster becomes Ready.
    let clusters = ns.api::<SnsCluster>();
    let status = wait_until_ready(&clusters, "minimal").await;
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.api.ready_replicas, 2);
    for type_ in [
        "Progressing",
        "Degraded",
        "ApiReady",
        "MysqlReady",
        "RedisReady",
    ] {
        assert!(
            status.conditions.iter().any(|c| c.type_ == type_),
            "{type_}"
        );
    }
    let (ok, out) = kubectl(&["get", "sns", "-n", &ns.name]);
    assert!(ok && out.contains("READY") && out.contains("True"), "{out}");
    ns.delete().await;
}

#[tokio::test]
async fn invalid_specs_are_refused_naming_the_field() {
    let ns = namespace().await;
    for (spec, expected) in [
        (
            "mysql: {orchestrator: {replicas: 4}}",
            "orchestrator.replicas must be odd",
        ),
        ("redis: {masters: 2}", "spec.redis.masters"),
        ("mysql: {replicas: 0}", "spec.mysql.replicas"),
        ("api: {replicas: many}", "spec.api.replicas"),
    ] {
        let file = write_manifest(&ns, "bad", spec);
        let (ok, out) = kubectl(&["apply", "-n", &ns.name, "-f", file.to_str().unwrap()]);
        assert!(!ok, "{spec} was accepted");
        assert!(out.contains(expected), "{spec}: {out}");
    }
    let (ok, out) = kubectl(&["explain", "snscluster.spec.redis"]);
    assert!(ok, "{out}");
    assert!(
        out.contains("Master shards (a Redis Cluster needs at least three)."),
        "{out}"
    );
    ns.delete().await;
}

#[tokio::test]
async fn scaling_and_a_new_image_reach_the_deployment_and_deletion_collects_children() {
    let ns = namespace().await;
    let (ok, out) = kubectl(&[
        "apply",
        "-n",
        &ns.name,
        "-f",
        "manifests/examples/minimal.yaml",
    ]);
    assert!(ok, "{out}");
    let deployments = ns.api::<Deployment>();
    eventually(30, "the API Deployment", || async {
        deployments.get_opt("minimal-api").await.unwrap()
    })
    .await;
    let (ok, out) = kubectl(&[
        "scale",
        "-n",
        &ns.name,
        "snscluster/minimal",
        "--replicas=3",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = kubectl(&[
        "patch",
        "-n",
        &ns.name,
        "snscluster/minimal",
        "--type=merge",
        "-p",
        r#"{"spec":{"api":{"image":"ghcr.io/sns-platform/sns-api:0.2.0"}}}"#,
    ]);
    assert!(ok, "{out}");
    eventually(30, "3 replicas of the new image", || async {
        let deployment = deployments.get("minimal-api").await.unwrap();
        let spec = deployment.spec?;
        let image = spec.template.spec?.containers[0].image.clone()?;
        (spec.replicas == Some(3) && image.ends_with(":0.2.0")).then_some(())
    })
    .await;

    let (ok, out) = kubectl(&[
        "delete",
        "-n",
        &ns.name,
        "snscluster/minimal",
        "--wait=true",
    ]);
    assert!(ok, "{out}");
    eventually(60, "garbage collection of the children", || async {
        let left = deployments.get_opt("minimal-api").await.unwrap().is_some()
            || ns
                .api::<StatefulSet>()
                .get_opt("minimal-redis")
                .await
                .unwrap()
                .is_some()
            || ns
                .api::<Secret>()
                .get_opt("minimal-mysql")
                .await
                .unwrap()
                .is_some();
        (!left).then_some(())
    })
    .await;
    ns.delete().await;
}

/// Whether every field of `expected` is in `actual` with the same value (the API server adds
/// defaults, so `actual` may hold more).
fn is_subset(expected: &serde_json::Value, actual: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .all(|(key, value)| a.get(key).is_some_and(|other| is_subset(value, other))),
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(x, y)| is_subset(x, y))
        }
        // Quantities and ports come back normalised as the same text or number.
        _ => {
            expected == actual
                || expected.to_string().trim_matches('"') == actual.to_string().trim_matches('"')
        }
    }
}

#[tokio::test]
async fn render_output_matches_what_the_operator_applied() {
    let ns = namespace().await;
    let (ok, out) = kubectl(&["apply", "-n", &ns.name, "-f", "manifests/examples/ha.yaml"]);
    assert!(ok, "{out}");
    let mut cluster: SnsCluster =
        serde_saphyr::from_str(include_str!("../../manifests/examples/ha.yaml")).unwrap();
    cluster.metadata.namespace = Some(ns.name.clone());
    let rendered = sns_operator::reconcile::build::build_cluster(&cluster, false)
        .unwrap()
        .to_values()
        .unwrap();
    for expected in rendered {
        let kind = expected["kind"].as_str().unwrap().to_lowercase();
        let name = expected["metadata"]["name"].as_str().unwrap().to_owned();
        let live = eventually(30, &format!("{kind}/{name}"), || {
            let (kind, name, ns) = (kind.clone(), name.clone(), ns.name.clone());
            async move {
                let (ok, out) = kubectl(&["get", "-n", &ns, &kind, &name, "-o", "json"]);
                ok.then(|| serde_json::from_str::<serde_json::Value>(&out).unwrap())
            }
        })
        .await;
        assert!(
            is_subset(&expected["spec"], &live["spec"])
                && is_subset(&expected["data"], &live["data"]),
            "{kind}/{name} differs from render:\nrendered {}\nlive {}",
            expected["spec"],
            live["spec"]
        );
        assert!(is_subset(
            &expected["metadata"]["labels"],
            &live["metadata"]["labels"]
        ));
    }
    ns.delete().await;
}

#[tokio::test]
async fn a_paused_cluster_gets_no_writes_until_unpaused() {
    let ns = namespace().await;
    let file = write_manifest(&ns, "quiet", "paused: true");
    let (ok, out) = kubectl(&["apply", "-n", &ns.name, "-f", file.to_str().unwrap()]);
    assert!(ok, "{out}");
    // Give the controller time to see it; a paused cluster must stay without children
    // and without a status.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        ns.api::<Deployment>()
            .get_opt("quiet-api")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        ns.api::<Secret>()
            .get_opt("quiet-mysql")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        ns.api::<SnsCluster>()
            .get("quiet")
            .await
            .unwrap()
            .status
            .is_none()
    );
    let (ok, out) = kubectl(&[
        "patch",
        "-n",
        &ns.name,
        "snscluster/quiet",
        "--type=merge",
        "-p",
        r#"{"spec":{"paused":false}}"#,
    ]);
    assert!(ok, "{out}");
    eventually(30, "children after unpausing", || async {
        ns.api::<Deployment>().get_opt("quiet-api").await.unwrap()
    })
    .await;
    ns.delete().await;
}

#[tokio::test]
async fn a_cluster_at_rest_gets_no_writes_for_60_seconds() {
    let ns = namespace().await;
    let (metrics, _) = start_operator();
    let (ok, out) = kubectl(&[
        "apply",
        "-n",
        &ns.name,
        "-f",
        "manifests/examples/minimal.yaml",
    ]);
    assert!(ok, "{out}");
    let clusters = ns.api::<SnsCluster>();
    wait_until_ready(&clusters, "minimal").await;
    // Let the last pod and status events settle, then watch a quiet minute.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let versions = || async {
        let (ok, out) = kubectl(&[
            "get",
            "-n",
            &ns.name,
            "snscluster,deployment,statefulset,service,configmap,secret,poddisruptionbudget",
            "-o",
            "jsonpath={range .items[*]}{.kind}/{.metadata.name}={.metadata.resourceVersion} {end}",
        ]);
        assert!(ok, "{out}");
        out
    };
    let label = format!("{}/minimal", ns.name);
    let before = versions().await;
    let patches_before = metrics.patches_for(&label);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(versions().await, before, "no object changed");
    assert_eq!(
        metrics.patches_for(&label),
        patches_before,
        "no patch was sent"
    );
    assert!(
        patches_before > 0,
        "the cluster was built by patches counted here"
    );
    ns.delete().await;
}

#[tokio::test]
async fn a_statefulset_whose_volume_claims_changed_is_made_again() {
    let ns = namespace().await;
    // Arrange: the Orchestrator StatefulSet as an operator made it before raft state moved
    // to a volume: no volume claims, a field that cannot change in place.
    let stateful_sets = ns.api::<StatefulSet>();
    let labels = serde_json::json!({
        "app.kubernetes.io/instance": "minimal",
        "app.kubernetes.io/component": "orchestrator",
    });
    let old: StatefulSet = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": { "name": "minimal-orchestrator", "labels": labels },
        "spec": {
            "serviceName": "minimal-orchestrator-peers",
            "replicas": 3,
            "podManagementPolicy": "Parallel",
            "selector": { "matchLabels": labels },
            "template": {
                "metadata": { "labels": labels },
                "spec": { "containers": [{ "name": "orchestrator", "image": "openarkcode/orchestrator:v3.2.5" }] },
            },
        },
    }))
    .unwrap();
    stateful_sets
        .create(&kube::api::PostParams::default(), &old)
        .await
        .unwrap();

    ns.apply_minimal();

    eventually(
        60,
        "the StatefulSet made again with its volume claims",
        || async {
            let sts = stateful_sets
                .get_opt("minimal-orchestrator")
                .await
                .unwrap()?;
            // Made again by the operator: its volume claims, and owned by the cluster.
            let owned = sts
                .metadata
                .owner_references
                .as_ref()
                .is_some_and(|owners| owners.iter().any(|o| o.kind == "SnsCluster"));
            let claims = sts.spec?.volume_claim_templates?;
            (owned
                && claims
                    .iter()
                    .any(|claim| claim.metadata.name.as_deref() == Some("data")))
            .then_some(())
        },
    )
    .await;
    ns.delete().await;
}

#[tokio::test]
async fn a_backup_schedule_is_made_and_the_newest_backup_in_the_bucket_reaches_the_status() {
    let ns = namespace().await;
    // The test services' S3 server, under a prefix of this namespace's own.
    let env = |name: &str| {
        std::env::var(name)
            .unwrap_or_else(|_| panic!("{name}: source tests/env/testenv.sh's env file"))
    };
    let (ok, out) = kubectl(&[
        "create",
        "secret",
        "generic",
        "backup-keys",
        "-n",
        &ns.name,
        &format!(
            "--from-literal=access-key={}",
            env("SNS_TEST_S3_ACCESS_KEY")
        ),
        &format!(
            "--from-literal=secret-key={}",
            env("SNS_TEST_S3_SECRET_KEY")
        ),
    ]);
    assert!(ok, "{out}");
    let prefix = format!("{}/", ns.name);
    let manifest = write_manifest(
        &ns,
        "shop",
        &format!(
            "backup: {{s3: {{endpoint: '{}', bucket: '{}', prefix: '{prefix}', credentialsSecret: backup-keys}}, schedule: '0 3 * * *', keep: 2}}",
            env("SNS_TEST_S3_ENDPOINT"),
            env("SNS_TEST_S3_BUCKET"),
        ),
    );
    let (ok, out) = kubectl(&["apply", "-n", &ns.name, "-f", manifest.to_str().unwrap()]);
    assert!(ok, "{out}");
    let clusters: Api<SnsCluster> = ns.api();
    let backup_ready = |reason: &'static str| {
        let clusters = clusters.clone();
        async move {
            eventually(60, &format!("BackupReady {reason}"), || async {
                let status = clusters.get("shop").await.unwrap().status?;
                status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "BackupReady" && c.reason == reason)
                    .then_some(status)
            })
            .await
        }
    };

    // The schedule runs the operator's image with the bucket's keys; no backup yet.
    wait_for(&ns.api::<CronJob>(), "shop-mysql-backup").await;
    let cron = ns.api::<CronJob>().get("shop-mysql-backup").await.unwrap();
    assert_eq!(cron.spec.schedule, "0 3 * * *");
    let status = wait_until_ready(&clusters, "shop").await;
    let condition = status
        .conditions
        .iter()
        .find(|c| c.type_ == "BackupReady")
        .expect("a BackupReady condition");
    assert_eq!(
        (condition.status.as_str(), condition.reason.as_str()),
        ("False", "NoBackupYet"),
        "no backup yet, which does not keep the cluster from Ready: {condition:?}"
    );

    // A backup appears in the bucket (what `sns-operator backup` writes last).
    let bucket = Bucket::new(&BucketSettings {
        endpoint: env("SNS_TEST_S3_ENDPOINT"),
        bucket: env("SNS_TEST_S3_BUCKET"),
        region: "us-east-1".into(),
        prefix: prefix.clone(),
        access_key: env("SNS_TEST_S3_ACCESS_KEY"),
        secret_key: env("SNS_TEST_S3_SECRET_KEY"),
    });
    let record = BackupRecord {
        id: "20261203-030000".into(),
        cluster: "shop".into(),
        donor: "shop-mysql-2.shop-mysql".into(),
        bytes: 42 * 1024 * 1024,
        started_at: "2026-12-03T03:00:00Z".into(),
        finished_at: "2026-12-03T03:00:09Z".into(),
    };
    let base = backups_prefix(&prefix, "shop");
    bucket
        .put(
            &format!("{base}{}/backup.json", record.id),
            serde_json::to_vec(&record).unwrap(),
            "application/json",
        )
        .await
        .unwrap();

    let status = backup_ready("BackedUp").await;
    let backup = status.backup.expect("status.backup");
    assert_eq!(backup.last_backup.as_deref(), Some("20261203-030000"));
    assert_eq!(backup.last_backup_bytes, Some(42 * 1024 * 1024));
    assert_eq!(
        backup.last_backup_donor.as_deref(),
        Some("shop-mysql-2.shop-mysql")
    );
    assert_eq!(backup.backups, 1);

    // The primary's closed binary log is archived, and the archive is complete.
    let (_, script) = start_operator();
    let log = binary_log(&[(1_764_730_800, 1), (1_764_730_805, 2)]);
    script.set_binlogs(
        "shop-mysql-0",
        "0-100-2",
        vec![("mysql-bin.000001".into(), log.clone())],
    );
    let status = eventually(120, "the log archived", || async {
        let status = clusters.get("shop").await.unwrap().status?;
        let archived = status.backup.as_ref()?.archived_gtid.is_some();
        (archived
            && status
                .conditions
                .iter()
                .any(|c| c.type_ == "BinlogArchiveReady" && c.reason == "Archived"))
        .then_some(status)
    })
    .await;
    let backup = status.backup.expect("status.backup");
    assert_eq!(backup.archived_gtid.as_deref(), Some("0-100-2"));
    assert_eq!(backup.archive_server.as_deref(), Some("shop-mysql-0"));
    assert_eq!(
        backup.archived_transaction_time.as_deref(),
        Some("2025-12-03T03:00:05Z")
    );
    assert!(backup.archive_complete_time.is_some(), "{backup:?}");
    let key = format!(
        "{prefix}shop/binlog/shop-mysql-0/mysql-bin.000001.{}",
        log.len()
    );
    assert_eq!(
        bucket.get(&key).await.unwrap(),
        log,
        "the log as the server has it"
    );
    ns.delete().await;
}

/// A MariaDB binary log with one transaction per (time, sequence): the magic, a format
/// description, then per transaction a GTID event and a row event.
fn binary_log(transactions: &[(u32, u64)]) -> Vec<u8> {
    let event = |kind: u8, time: u32, body: &[u8]| {
        let mut bytes = time.to_le_bytes().to_vec();
        bytes.push(kind);
        bytes.extend_from_slice(&100u32.to_le_bytes());
        bytes.extend_from_slice(&u32::try_from(19 + body.len()).unwrap().to_le_bytes());
        bytes.extend_from_slice(&[0; 6]);
        bytes.extend_from_slice(body);
        bytes
    };
    let mut log = b"\xfebin".to_vec();
    log.extend(event(15, transactions[0].0, &[0; 100]));
    for (time, sequence) in transactions {
        let mut gtid = sequence.to_le_bytes().to_vec();
        gtid.extend_from_slice(&[0; 14]);
        log.extend(event(162, *time, &gtid));
        log.extend(event(30, *time, &[7; 64]));
    }
    log
}
