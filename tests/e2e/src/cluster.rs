//! A namespace of the test's own on the node, holding one SnsCluster: its status, pods and
//! Services, and what to print when something does not come.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, ResourceExt};
use sns_operator::crd::{Condition, SnsCluster, SnsClusterStatus};

use crate::node::{Node, eventually, suffix};

/// Namespace of the operator the tests install with the chart.
pub const OPERATOR_NAMESPACE: &str = "sns-system";

/// One SnsCluster `name` in a namespace made for the test.
pub struct TestCluster {
    /// The node.
    pub node: Node,
    /// `e2e-<random>`.
    pub namespace: String,
    /// The SnsCluster's name.
    pub name: String,
}

impl TestCluster {
    /// Creates the namespace `e2e-<random>`; the SnsCluster is the caller's to apply.
    pub async fn new(node: &Node, name: &str) -> Self {
        let namespace = format!("e2e-{}", suffix());
        let mut object = Namespace::default();
        object.metadata.name = Some(namespace.clone());
        Api::<Namespace>::all(node.client.clone())
            .create(&PostParams::default(), &object)
            .await
            .expect("creating the test namespace");
        Self {
            node: node.clone(),
            namespace,
            name: name.to_owned(),
        }
    }

    /// The API of a namespaced kind in the test's namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.node.client.clone(), &self.namespace)
    }

    /// The SnsCluster's status (empty before the operator wrote one).
    pub async fn status(&self) -> SnsClusterStatus {
        self.api::<SnsCluster>()
            .get(&self.name)
            .await
            .expect("reading the SnsCluster")
            .status
            .unwrap_or_default()
    }

    /// Waits up to `seconds` for the Ready condition to be True; returns the status.
    pub async fn wait_ready(&self, seconds: u64) -> SnsClusterStatus {
        eventually(
            seconds,
            Duration::from_secs(2),
            &format!("SnsCluster {}/{} to be Ready", self.namespace, self.name),
            || self.diagnostics(),
            || async {
                let status = self.status().await;
                condition(&status, "Ready")
                    .is_some_and(|c| c.status == "True")
                    .then_some(status)
            },
        )
        .await
    }

    /// The pods of one component (`mysql`, `redis`, `orchestrator`, `api`...).
    pub async fn pods(&self, component: &str) -> Vec<Pod> {
        let selector = format!(
            "app.kubernetes.io/instance={},app.kubernetes.io/component={component}",
            self.name
        );
        self.api::<Pod>()
            .list(&ListParams::default().labels(&selector))
            .await
            .expect("listing pods")
            .items
    }

    /// `http://CLUSTER-IP:PORT` of the Service `name`'s first port: the host reaches
    /// Services through the node's bridge, where kube-proxy maps them to pods.
    pub async fn service_url(&self, name: &str) -> String {
        self.service_port_url(name, None).await
    }

    /// `http://CLUSTER-IP:PORT` of the Service `name`'s port named `port` (its first port
    /// when `None`).
    pub async fn service_port_url(&self, name: &str, port: Option<&str>) -> String {
        let service = self
            .api::<Service>()
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("Service {name}: {e}"));
        let spec = service.spec.unwrap_or_default();
        let ip = spec
            .cluster_ip
            .filter(|ip| ip != "None")
            .unwrap_or_else(|| panic!("Service {name} has no cluster IP"));
        let port = spec
            .ports
            .and_then(|ports| {
                ports
                    .iter()
                    .find(|p| port.is_none_or(|wanted| p.name.as_deref() == Some(wanted)))
                    .map(|p| p.port)
            })
            .unwrap_or_else(|| panic!("Service {name} has no port {port:?}"));
        format!("http://{ip}:{port}")
    }

    /// Deletes `pods` with no grace period, and waits until each is back (a new pod of the
    /// same name) and Ready, for at most `seconds`.
    pub async fn replace_pods(&self, pods: &[Pod], seconds: u64) {
        let api = self.api::<Pod>();
        let old: Vec<(String, String)> = pods
            .iter()
            .map(|pod| (pod.name_any(), pod.uid().unwrap_or_default()))
            .collect();
        for (name, _) in &old {
            api.delete(name, &DeleteParams::default().grace_period(0))
                .await
                .unwrap_or_else(|e| panic!("deleting pod {name}: {e}"));
        }
        let names: Vec<&str> = old.iter().map(|(name, _)| name.as_str()).collect();
        eventually(
            seconds,
            Duration::from_secs(1),
            &format!("pods {names:?} to come back Ready"),
            || self.diagnostics(),
            || async {
                for (name, uid) in &old {
                    let pod = api.get_opt(name).await.ok().flatten()?;
                    if pod.uid().as_deref() == Some(uid.as_str()) || !is_ready(&pod) {
                        return None;
                    }
                }
                Some(())
            },
        )
        .await;
    }

    /// Runs `command` in `container` of `pod`; returns its output (failure fails the test).
    pub fn exec(&self, pod: &str, container: &str, command: &[&str]) -> String {
        let mut args = vec!["exec", "-n", &self.namespace, pod, "-c", container, "--"];
        args.extend_from_slice(command);
        self.node.kubectl_ok(&args)
    }

    /// What to read when something did not come: the conditions, the pods, and the last
    /// lines of every container of a pod that is not Ready, and the operator's.
    pub fn diagnostics(&self) -> String {
        let ns = self.namespace.as_str();
        let mut text = String::new();
        let mut section = |title: &str, args: &[&str]| {
            let (_, out) = self.node.kubectl(args);
            text.push_str(&format!("\n----- {title}\n{out}"));
        };
        section(
            "SnsCluster conditions",
            &[
                "get",
                "sns",
                &self.name,
                "-n",
                ns,
                "-o",
                "jsonpath={range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{\"\\n\"}{end}",
            ],
        );
        section("pods", &["get", "pods", "-n", ns, "-o", "wide"]);
        section(
            "events",
            &["get", "events", "-n", ns, "--sort-by=.lastTimestamp"],
        );
        // NAME and every container's ready flag, e.g. `e2e-mysql-0   true,false`.
        let (_, pods) = self.node.kubectl(&[
            "get",
            "pods",
            "-n",
            ns,
            "--no-headers",
            "-o",
            "custom-columns=NAME:.metadata.name,READY:.status.containerStatuses[*].ready",
        ]);
        let names: Vec<&str> = pods
            .lines()
            .filter_map(|line| line.split_once(char::is_whitespace))
            .filter(|(name, ready)| {
                !ready.trim().split(',').all(|flag| flag == "true")
                    && name.len() < 100
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            })
            .map(|(name, _)| name)
            .collect();
        for pod in names.into_iter().take(6) {
            section(
                &format!("logs of {pod}"),
                &["logs", "-n", ns, pod, "--all-containers", "--tail=40"],
            );
        }
        section(
            "operator logs",
            &[
                "logs",
                "-n",
                OPERATOR_NAMESPACE,
                "-l",
                "app.kubernetes.io/name=sns-operator",
                "--tail=60",
            ],
        );
        text
    }

    /// Deletes the namespace (kept with `KEEP_TEST_NAMESPACE=1`, to look at).
    pub async fn delete_namespace(&self) {
        if std::env::var("KEEP_TEST_NAMESPACE").is_ok() {
            return;
        }
        let _ = Api::<Namespace>::all(self.node.client.clone())
            .delete(&self.namespace, &DeleteParams::default())
            .await;
    }
}

/// The condition `type_` of `status`.
pub fn condition<'s>(status: &'s SnsClusterStatus, type_: &str) -> Option<&'s Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Seconds since `start`, with one decimal.
pub fn seconds_since(start: Instant) -> String {
    format!("{:.1}", start.elapsed().as_secs_f64())
}
