//! What a user does first: `helm install` of the operator's chart, and the SnsCluster every
//! end-to-end test applies, made of the images `tests/env/build-images.sh` imports.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cluster::{OPERATOR_NAMESPACE, is_ready};
use crate::node::{Node, eventually, repo_root};
use crate::s3::S3Server;

/// Images `tests/env/build-images.sh` builds and imports into the node.
pub const OPERATOR_IMAGE: (&str, &str) = ("localhost/sns-operator", "dev");
pub const API_IMAGE: &str = "localhost/sns-api:dev";
pub const MARIADB_IMAGE: &str = "localhost/mariadb:10.11";
pub const REDIS_IMAGE: &str = "localhost/redis:7.0";
pub const ORCHESTRATOR_IMAGE: &str = "localhost/orchestrator:3.2.6";
pub const PROMETHEUS_IMAGE: &str = "localhost/prometheus:v2";
pub const ALERTMANAGER_IMAGE: &str = "localhost/alertmanager:v0";
pub const MYSQLD_EXPORTER_IMAGE: &str = "localhost/mysqld-exporter:v0";
pub const REDIS_EXPORTER_IMAGE: &str = "localhost/redis-exporter:v1";

/// `helm install` of the chart with the image built here; the operator's pod runs under the
/// chart's ServiceAccount and takes the leader Lease.
pub async fn install_operator(node: &Node) {
    let chart = repo_root().join("charts/sns-operator");
    // A node kept from an earlier run may have the release: it is upgraded, and its pod
    // restarted, so that it runs the image imported since (same tag, new content).
    let (installed, _) = node.run(
        "helm",
        &["status", "sns-operator", "--namespace", OPERATOR_NAMESPACE],
        None,
    );
    if installed {
        // Helm installs a chart's CRDs only with the release, never on an upgrade: an
        // upgrade applies the new CRD first, as the README says.
        let crd = repo_root().join("crds/snsclusters.sns-platform.dev.yaml");
        node.kubectl_ok(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            crd.to_str().expect("a UTF-8 path"),
        ]);
    }
    node.helm_ok(&[
        "upgrade",
        "--install",
        "sns-operator",
        chart.to_str().expect("a UTF-8 path"),
        "--namespace",
        OPERATOR_NAMESPACE,
        "--create-namespace",
        "--set",
        &format!("image.repository={}", OPERATOR_IMAGE.0),
        "--set",
        &format!("image.tag={}", OPERATOR_IMAGE.1),
        "--set",
        "image.pullPolicy=Never",
        "--wait",
        "--timeout",
        "3m",
    ]);
    if installed {
        restart_operator(node);
    }
    let pods: Api<Pod> = Api::namespaced(node.client.clone(), OPERATOR_NAMESPACE);
    let pod = eventually(
        60,
        Duration::from_secs(1),
        "one Ready operator pod (an earlier one gone)",
        String::new,
        || async {
            let mut live: Vec<Pod> = pods
                .list(&ListParams::default().labels("app.kubernetes.io/name=sns-operator"))
                .await
                .ok()?
                .items
                .into_iter()
                .filter(|pod| pod.metadata.deletion_timestamp.is_none())
                .collect();
            (live.len() == 1 && is_ready(&live[0])).then(|| live.remove(0))
        },
    )
    .await;
    let spec = pod.spec.clone().unwrap_or_default();
    assert_eq!(
        spec.service_account_name.as_deref(),
        Some("sns-operator"),
        "the operator runs under the chart's ServiceAccount"
    );
    // The pod takes the Lease (at once, or once an earlier holder's term ran out).
    let leases: Api<Lease> = Api::namespaced(node.client.clone(), OPERATOR_NAMESPACE);
    let name = pod.name_any();
    eventually(
        60,
        Duration::from_secs(1),
        &format!("the operator's pod {name} to hold the leader Lease"),
        String::new,
        || async {
            let holder = leases
                .get_opt("sns-operator-leader")
                .await
                .ok()
                .flatten()
                .and_then(|lease| lease.spec)
                .and_then(|spec| spec.holder_identity);
            (holder.as_deref() == Some(name.as_str())).then_some(())
        },
    )
    .await;

    // Orchestrator's hook reaches the operator at the address the operator names by
    // default (its metrics Service, port 8080): a call without the token is refused there.
    let (ip, port) = operator_metrics_service(node).await;
    assert_eq!(
        format!("sns-operator-metrics.{OPERATOR_NAMESPACE}.svc:{port}"),
        sns_operator::reconcile::build::DEFAULT_OPERATOR_ADDRESS,
        "the chart's Service is where the operator's default hook address points"
    );
    // kube-proxy maps the Service to the pod within seconds of its becoming Ready.
    let url = format!(
        "http://{ip}:{port}{}",
        sns_operator::reconcile::build::HOOK_PATH
    );
    let refused = eventually(
        30,
        Duration::from_millis(500),
        "the operator's hook to answer through its Service",
        String::new,
        || async {
            reqwest::Client::new()
                .post(&url)
                .json(&json!({}))
                .send()
                .await
                .ok()
                .map(|response| response.status())
        },
    )
    .await;
    assert_eq!(refused, StatusCode::UNAUTHORIZED);
}

/// Replaces the operator's pod (as an upgrade does) and waits for the new one.
pub fn restart_operator(node: &Node) {
    for args in [
        ["rollout", "restart", "deployment/sns-operator"],
        ["rollout", "status", "deployment/sns-operator"],
    ] {
        let mut args = args.to_vec();
        args.extend(["--namespace", OPERATOR_NAMESPACE]);
        node.kubectl_ok(&args);
    }
}

/// Cluster IP and port of the operator's metrics Service (its hook and `/metrics`).
pub async fn operator_metrics_service(node: &Node) -> (String, i32) {
    let services: Api<Service> = Api::namespaced(node.client.clone(), OPERATOR_NAMESPACE);
    let service = services
        .get("sns-operator-metrics")
        .await
        .expect("the operator's metrics Service");
    let spec = service.spec.unwrap_or_default();
    let ip = spec.cluster_ip.unwrap_or_default();
    let port = spec.ports.unwrap_or_default().first().map_or(0, |p| p.port);
    (ip, port)
}

/// 1 primary + 2 replicas, 3 Orchestrator nodes, 3 Redis masters with a replica each,
/// monitoring on (without Grafana), no ProxySQL, uploads to the test's S3 server (with
/// `s3`; its keys in the Secret `s3-credentials`).
pub fn cluster_manifest(name: &str, s3: Option<&S3Server>) -> Value {
    let mut manifest = json!({
        "apiVersion": "sns-platform.dev/v1alpha1",
        "kind": "SnsCluster",
        "metadata": { "name": name },
        "spec": {
            "api": {
                "image": API_IMAGE,
                "replicas": 2,
                // The failover cases' write load is many clients' worth from one address
                // and a few accounts: the rate limits (tested on their own) would refuse it.
                "env": [{ "name": "API_RATE_LIMIT_ENABLED", "value": "false" }],
            },
            "mysql": {
                "image": MARIADB_IMAGE,
                "replicas": 2,
                "storage": "1Gi",
                "orchestrator": { "image": ORCHESTRATOR_IMAGE, "replicas": 3 },
                "proxysql": { "enabled": false },
            },
            "redis": {
                "image": REDIS_IMAGE,
                "masters": 3,
                "replicasPerMaster": 1,
                "storage": "1Gi",
                "maxmemory": "64mb",
            },
            "monitoring": {
                "enabled": true,
                "prometheusImage": PROMETHEUS_IMAGE,
                "alertmanagerImage": ALERTMANAGER_IMAGE,
                "mysqldExporterImage": MYSQLD_EXPORTER_IMAGE,
                "redisExporterImage": REDIS_EXPORTER_IMAGE,
                "grafana": { "enabled": false },
            },
        },
    });
    if let Some(s3) = s3 {
        manifest["spec"]["api"]["s3"] = json!({
            "endpoint": s3.endpoint,
            "bucket": s3.bucket,
            "credentialsSecret": "s3-credentials",
        });
    }
    manifest
}
