//! The Helm chart (`charts/sns-operator`) and the plain-YAML install (`manifests/install.yaml`)
//! against the real test control plane started by `tests/env/control-plane.sh` (its `helm`
//! and `kubectl` come from `SNS_TEST_K8S_BIN`):
//!
//! ```text
//! helm lint ─► clean
//! helm template --set replicaCount=zero ─► refused by values.schema.json, naming the value
//! helm install (unique release, fresh namespace)
//!   └► token of the chart's ServiceAccount ─► controller in this process, with only that token
//!        └► manifests/examples/minimal.yaml ─► Ready: the chart's RBAC is enough
//! manifests/install.yaml ─► charts/render-install.sh's output, accepted by a server dry run
//! ```
//!
//! Cluster-scoped objects carry the release name, which is unique per test run.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{ListParams, Patch, PatchParams};
use kube::config::AuthInfo;
use kube::{Api, Client, ResourceExt};
use sns_operator::context::{Context, Settings};
use sns_operator::crd::SnsCluster;
use sns_operator::dataplane::DataPlane;
use sns_operator::metrics::Metrics;

use support::{admin_kubeconfig, client_from, helm, kubectl, repo_root, run, suffix};

mod support;

const CHART: &str = "charts/sns-operator";

/// A client that is the ServiceAccount `namespace/name` and nothing else: the test control
/// plane's server and CA, and a freshly minted token of that account as the only credential.
async fn service_account_client(namespace: &str, name: &str) -> Client {
    let (ok, token) = kubectl(&["create", "token", name, "-n", namespace, "--duration=1h"]);
    assert!(ok, "minting a token for {namespace}/{name}: {token}");
    let auth_info: AuthInfo =
        serde_json::from_value(serde_json::json!({ "token": token.trim() })).unwrap();
    let mut kubeconfig = admin_kubeconfig();
    for user in &mut kubeconfig.auth_infos {
        // Replaces the admin client certificate: the token is the only credential left.
        user.auth_info = Some(auth_info.clone());
    }
    client_from(kubeconfig).await
}

/// Whether the SnsCluster reports Ready=True.
fn is_ready(cluster: &SnsCluster) -> bool {
    cluster.status.as_ref().is_some_and(|status| {
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

#[test]
fn the_chart_lints_clean() {
    let (ok, out) = helm(&["lint", "--strict", CHART]);
    assert!(ok, "{out}");
    assert!(
        !out.contains("[WARNING]") && !out.contains("[ERROR]"),
        "{out}"
    );
    let (ok, out) = helm(&["lint", "--strict", CHART, "--set", "cluster.enabled=true"]);
    assert!(ok, "with an SnsCluster from values: {out}");
}

#[test]
fn the_values_schema_refuses_bad_values_naming_them() {
    for (value, expected) in [
        ("replicaCount=zero", "replicaCount"),
        ("replicaCount=0", "replicaCount"),
        ("image.repository=5", "image/repository"),
        ("metrics.port=http", "metrics/port"),
        ("replicaConut=2", "replicaConut"),
    ] {
        let (ok, out) = helm(&["template", "schema", CHART, "--set", value]);
        assert!(!ok, "{value} was accepted");
        assert!(out.contains(expected), "{value}: {out}");
    }
    let (ok, out) = helm(&[
        "template",
        "schema",
        CHART,
        "--set",
        "cluster.enabled=true",
        "--set",
        "cluster.spec.api.replicas=3",
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("kind: SnsCluster") && out.contains("replicas: 3"),
        "{out}"
    );
}

#[test]
fn the_plain_install_is_the_rendered_chart_and_the_api_server_accepts_it() {
    let (ok, rendered) = run(PathBuf::from("bash"), &["charts/render-install.sh", "-"]);
    assert!(ok, "{rendered}");
    let committed = std::fs::read_to_string(repo_root().join("manifests/install.yaml")).unwrap();
    assert!(
        rendered == committed,
        "manifests/install.yaml is stale: run charts/render-install.sh"
    );

    // A server dry run creates nothing, so the namespaced objects need their namespace to
    // exist for real; made here when absent, and removed again.
    let (exists, _) = kubectl(&["get", "namespace", "sns-system"]);
    if !exists {
        let (ok, out) = kubectl(&["create", "namespace", "sns-system"]);
        assert!(ok || out.contains("AlreadyExists"), "{out}");
    }
    let (ok, out) = kubectl(&[
        "apply",
        "--server-side",
        "--dry-run=server",
        "-f",
        "manifests/install.yaml",
    ]);
    assert!(ok, "{out}");
    for object in [
        "namespace/sns-system",
        "customresourcedefinition.apiextensions.k8s.io/snsclusters.sns-platform.dev",
        "clusterrole.rbac.authorization.k8s.io/sns-operator",
        "deployment.apps/sns-operator",
    ] {
        assert!(out.contains(object), "{object}: {out}");
    }
    if !exists {
        let (ok, out) = kubectl(&["delete", "namespace", "sns-system", "--wait=false"]);
        assert!(ok, "{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_installed_chart_gives_its_service_account_enough_rights_to_reach_ready_and_roll() {
    let id = suffix();
    let release = format!("sns-operator-{id}");
    let operator_namespace = format!("t-{id}");
    let cluster_namespace = format!("t-{}", suffix());

    // Arrange: the chart, installed as a user would (the CRD comes from its crds/).
    let (ok, out) = helm(&[
        "install",
        &release,
        CHART,
        "--namespace",
        &operator_namespace,
        "--create-namespace",
        "--wait",
        "--timeout=90s",
    ]);
    assert!(ok, "helm install: {out}");
    let admin = client_from(admin_kubeconfig()).await;
    let deployment = Api::<Deployment>::namespaced(admin.clone(), &operator_namespace)
        .get(&release)
        .await
        .unwrap();
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.security_context.unwrap().run_as_non_root, Some(true));
    let container = pod.containers[0].security_context.clone().unwrap();
    assert_eq!(container.read_only_root_filesystem, Some(true));
    assert_eq!(
        container.capabilities.unwrap().drop,
        Some(vec!["ALL".to_owned()])
    );
    Api::<ServiceAccount>::namespaced(admin.clone(), &operator_namespace)
        .get(&release)
        .await
        .unwrap();
    Api::<ClusterRole>::all(admin.clone())
        .get(&release)
        .await
        .unwrap();
    let (ok, out) = kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/snsclusters.sns-platform.dev",
    ]);
    assert!(ok, "the CRD is established: {out}");

    let operator = service_account_client(&operator_namespace, &release).await;
    let refused = Api::<Secret>::all(operator.clone())
        .list(&Default::default())
        .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(status)) if status.code == 403),
        "the ServiceAccount must not read Secrets: {refused:?}"
    );
    let (ok, out) = kubectl(&["create", "namespace", &cluster_namespace]);
    assert!(ok, "{out}");
    let (ok, out) = kubectl(&[
        "apply",
        "-n",
        &cluster_namespace,
        "-f",
        "manifests/examples/minimal.yaml",
    ]);
    assert!(ok, "{out}");

    // Act: the operator, as the chart's ServiceAccount, until the cluster is Ready.
    let metrics = Arc::new(Metrics::new().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // Pod IPs are fake under KWOK: the data plane is scripted; every Kubernetes call the
    // data-plane step makes (pods, Secrets, status, labels, Events) is the ServiceAccount's.
    let (data_plane, _script) = DataPlane::scripted();
    let context = Context::new(operator, metrics.clone(), data_plane, Settings::default());
    let controller = sns_operator::controller::run(context, async move {
        let _ = stopped.await;
    });
    let clusters = Api::<SnsCluster>::namespaced(admin.clone(), &cluster_namespace);
    let pods = Api::<Pod>::namespaced(admin.clone(), &cluster_namespace);
    let mysql_pods = || async {
        pods.list(&ListParams::default().labels("app.kubernetes.io/component=mysql"))
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| (p.name_any(), p.uid().unwrap_or_default()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let wait_ready =
        |what: &'static str, done: Option<std::collections::BTreeMap<String, String>>| {
            let clusters = clusters.clone();
            let metrics = metrics.clone();
            async move {
                let deadline = Instant::now() + Duration::from_secs(120);
                loop {
                    let cluster = clusters.get("minimal").await.unwrap();
                    let replaced = match &done {
                        None => true,
                        Some(before) => {
                            let now = mysql_pods().await;
                            now.len() == before.len()
                                && now.iter().all(|(name, uid)| before.get(name) != Some(uid))
                        }
                    };
                    if replaced && is_ready(&cluster) {
                        break;
                    }
                    // A refused request shows up as operator_reconcile_errors_total{step=..}.
                    assert!(
                        Instant::now() < deadline,
                        "{what}: not done after 120 s: {:?}\noperator metrics:\n{}",
                        cluster.status,
                        metrics.render()
                    );
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        };
    let wait = async {
        wait_ready("Ready", None).await;
        // And to roll the MySQL servers (the operator deletes their pods one at a time).
        let before = mysql_pods().await;
        clusters
            .patch(
                "minimal",
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({
                    "spec": { "mysql": { "config": { "max_connections": "300" } } }
                })),
            )
            .await
            .unwrap();
        wait_ready("every MySQL server restarted", Some(before)).await;
        stop.send(()).unwrap();
    };
    tokio::join!(controller, wait);

    // Assert: the children exist, written by the operator's field manager.
    let api = Api::<Deployment>::namespaced(admin.clone(), &cluster_namespace)
        .get("minimal-api")
        .await
        .unwrap();
    let managers: Vec<_> = api
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|f| f.manager)
        .collect();
    assert!(
        managers
            .iter()
            .any(|m| m == sns_operator::controller::FIELD_MANAGER),
        "{managers:?}"
    );

    if std::env::var("KEEP_TEST_NAMESPACE").is_err() {
        let (ok, out) = kubectl(&["delete", "namespace", &cluster_namespace, "--wait=false"]);
        assert!(ok, "{out}");
        let (ok, out) = helm(&["uninstall", &release, "--namespace", &operator_namespace]);
        assert!(ok, "helm uninstall: {out}");
        let (ok, out) = kubectl(&["delete", "namespace", &operator_namespace, "--wait=false"]);
        assert!(ok, "{out}");
    }
}
