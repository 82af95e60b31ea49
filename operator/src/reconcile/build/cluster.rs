//! The whole cluster: what the builders take ([`BuildInputs`]), what they return
//! ([`ClusterObjects`]) and the Secrets the controller generates for them.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::{Resource, ResourceExt};
use serde_json::Value;

use super::naming::Naming;
use super::{api, backup, grafana, mysql, orchestrator, prometheus, proxysql, redis};
use crate::crd::SnsCluster;

/// Where Orchestrator's failover hooks and Prometheus reach the operator unless told
/// otherwise: the metrics Service of the chart installed as `sns-operator` in `sns-system`
/// (as `manifests/install.yaml` does; the chart passes its own address in any case).
pub const DEFAULT_OPERATOR_ADDRESS: &str = "sns-operator-metrics.sns-system.svc:8080";

/// The operator's image when it is not told its own (`--image`, which the chart sets).
pub const DEFAULT_OPERATOR_IMAGE: &str = "ghcr.io/sns-platform/sns-operator:latest";

/// What the builders need besides the SnsCluster itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInputs {
    /// Give every object an owner reference to the cluster (which must then have a uid, i.e.
    /// exist in the API server); false for `render`.
    pub owned: bool,
    /// `host:port` of the operator's HTTP endpoint (failover hooks, `/metrics`).
    pub operator_address: String,
    /// MySQL servers the StatefulSet keeps while a scale-down is not yet safe (the primary
    /// is among the servers to go, or they are not drained yet); `None` (or fewer than the
    /// spec's) runs what the spec asks for. Only the StatefulSet and its topology use it:
    /// clients are pointed at the servers that stay at once.
    pub mysql_servers_kept: Option<i32>,
    /// The operator's image, which the backup CronJob runs.
    pub operator_image: String,
}

impl Default for BuildInputs {
    fn default() -> Self {
        Self {
            owned: false,
            operator_address: DEFAULT_OPERATOR_ADDRESS.to_owned(),
            mysql_servers_kept: None,
            operator_image: DEFAULT_OPERATOR_IMAGE.to_owned(),
        }
    }
}

/// Every object of one cluster, in apply order.
#[derive(Debug, Clone, Default)]
pub struct ClusterObjects {
    /// Configuration files (my.cnf, redis.conf, proxysql.cnf, prometheus.yml, dashboards...).
    pub config_maps: Vec<ConfigMap>,
    /// Services (headless ones for StatefulSets, and the client-facing ones).
    pub services: Vec<Service>,
    /// MySQL, Redis and Orchestrator.
    pub stateful_sets: Vec<StatefulSet>,
    /// The API, ProxySQL, Prometheus, Alertmanager and Grafana.
    pub deployments: Vec<Deployment>,
    /// Disruption budgets.
    pub disruption_budgets: Vec<PodDisruptionBudget>,
    /// The MySQL backup schedule (with `spec.backup`).
    pub cron_jobs: Vec<CronJob>,
}

/// Why an object could not be built.
#[derive(Debug, thiserror::Error)]
#[error("building {what}: {source}")]
pub struct BuildError {
    what: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl BuildError {
    pub(super) fn new(
        what: &str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            what: what.to_owned(),
            source: source.into(),
        }
    }
}

/// Builds every object of `cluster` with the default operator address; with `owned`, each
/// carries an owner reference to it.
pub fn build_cluster(cluster: &SnsCluster, owned: bool) -> Result<ClusterObjects, BuildError> {
    build_cluster_with(
        cluster,
        &BuildInputs {
            owned,
            ..BuildInputs::default()
        },
    )
}

/// Builds every object of `cluster` from `inputs`.
pub fn build_cluster_with(
    cluster: &SnsCluster,
    inputs: &BuildInputs,
) -> Result<ClusterObjects, BuildError> {
    let naming = Naming {
        cluster: cluster.metadata.name.as_deref().unwrap_or("sns"),
        namespace: cluster.namespace(),
        owner: if inputs.owned {
            cluster.controller_owner_ref(&())
        } else {
            None
        },
    };
    let mut objects = ClusterObjects::default();
    // The data tier first: apply order follows, so clients find their servers' Services.
    mysql::build(&naming, cluster, inputs, &mut objects)?;
    redis::build(&naming, cluster, &mut objects)?;
    api::build(&naming, cluster, &mut objects)?;
    if cluster.spec.mysql.proxysql.enabled {
        proxysql::build(&naming, cluster, &mut objects)?;
    }
    orchestrator::build(&naming, cluster, inputs, &mut objects)?;
    if let Some(backup) = &cluster.spec.backup {
        backup::build(&naming, cluster, backup, inputs, &mut objects)?;
    }
    if cluster.spec.monitoring.enabled {
        prometheus::build(&naming, cluster, inputs, &mut objects)?;
        if cluster.spec.monitoring.grafana.enabled {
            grafana::build(&naming, cluster, &mut objects)?;
        }
    }
    Ok(objects)
}

/// The Secrets the controller creates once when absent, as (name, keys): each key gets a
/// random value. The builders refer to these names and keys; nothing else defines them.
pub fn generated_secrets(cluster: &SnsCluster) -> Vec<(String, Vec<&'static str>)> {
    let name = cluster.name_any();
    let mut wanted = vec![
        (
            format!("{name}-{}", mysql::SECRET),
            vec![
                mysql::ROOT_PASSWORD,
                mysql::SNS_PASSWORD,
                mysql::REPLICATION_PASSWORD,
            ],
        ),
        // Separate Secrets rather than new keys in `-mysql`: a Secret is never rewritten, so a
        // key added to an existing one would never appear. The `-proxysql` one holds the
        // monitor user's password, which the MySQL servers use among themselves too.
        (
            format!("{name}-{}", orchestrator::SECRET),
            vec![orchestrator::TOPOLOGY_PASSWORD],
        ),
        (
            format!("{name}-{}", orchestrator::HOOK_SECRET),
            vec![orchestrator::HOOK_TOKEN],
        ),
        (
            format!("{name}-{}", proxysql::SECRET),
            vec![proxysql::MONITOR_PASSWORD],
        ),
    ];
    if cluster.spec.api.jwt_secret_name.is_none() {
        wanted.push((format!("{name}-api-jwt"), vec!["jwt-secret"]));
    }
    if cluster.spec.monitoring.enabled {
        wanted.push((
            format!("{name}-{}", mysql::EXPORTER_SECRET),
            vec![mysql::EXPORTER_PASSWORD],
        ));
        if cluster.spec.monitoring.grafana.enabled {
            wanted.push((
                format!("{name}-{}", grafana::SECRET),
                vec![grafana::ADMIN_PASSWORD],
            ));
        }
    }
    wanted
}

impl ClusterObjects {
    /// Every object as JSON values, in apply order (for `render` and for tests).
    pub fn to_values(&self) -> Result<Vec<Value>, serde_json::Error> {
        let mut values = Vec::new();
        for object in &self.config_maps {
            values.push(serde_json::to_value(object)?);
        }
        for object in &self.services {
            values.push(serde_json::to_value(object)?);
        }
        for object in &self.stateful_sets {
            values.push(serde_json::to_value(object)?);
        }
        for object in &self.deployments {
            values.push(serde_json::to_value(object)?);
        }
        for object in &self.disruption_budgets {
            values.push(serde_json::to_value(object)?);
        }
        for object in &self.cron_jobs {
            values.push(serde_json::to_value(object)?);
        }
        Ok(values)
    }
}

/// Fixtures and lookups for the builders' unit tests.
#[cfg(test)]
pub(super) mod fixtures {
    use serde_json::Value;

    use super::*;
    use crate::crd::SnsClusterSpec;

    /// An SnsCluster `prod` in namespace `sns`, with a uid (as if it existed).
    pub(crate) fn cluster(spec_json: Value) -> SnsCluster {
        let spec: SnsClusterSpec = serde_json::from_value(spec_json).unwrap();
        let mut cluster = SnsCluster::new("prod", spec);
        cluster.metadata.namespace = Some("sns".into());
        cluster.metadata.uid = Some("1234".into());
        cluster
    }

    pub(crate) fn build(spec_json: Value) -> ClusterObjects {
        build_cluster(&cluster(spec_json), false).unwrap()
    }

    /// The object named `name` among `objects`.
    pub(crate) fn named<'a, K: Resource>(objects: &'a [K], name: &str) -> &'a K {
        objects
            .iter()
            .find(|object| object.meta().name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no object named {name}"))
    }

    /// The file `key` of ConfigMap `name`.
    pub(crate) fn file(objects: &ClusterObjects, name: &str, key: &str) -> String {
        named(&objects.config_maps, name).data.as_ref().unwrap()[key].clone()
    }

    /// `kind/name` of every object.
    pub(crate) fn ids(objects: &ClusterObjects) -> Vec<String> {
        objects
            .to_values()
            .unwrap()
            .iter()
            .map(|value| {
                format!(
                    "{}/{}",
                    value["kind"].as_str().unwrap(),
                    value["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod pod_templates {
    //! Upgrading the operator must restart no pod of a running cluster: every pod template it
    //! renders is pinned here. A change to one rolls that workload in every cluster when the
    //! new operator starts; when that is intended (and said in the release notes), update
    //! `pod-templates.lock` with the lines this test prints.

    use serde_json::{Value, json};

    use super::fixtures::cluster;
    use super::*;
    use crate::reconcile::build::naming::config_hash;

    /// The JSON text of `value` with every object's keys sorted, so that the pin follows
    /// what the template says, not how a serializer orders it.
    fn canonical(value: &Value) -> String {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let fields: Vec<String> = keys
                    .into_iter()
                    .map(|key| format!("{}:{}", json!(key), canonical(&map[key])))
                    .collect();
                format!("{{{}}}", fields.join(","))
            }
            Value::Array(items) => {
                format!(
                    "[{}]",
                    items.iter().map(canonical).collect::<Vec<_>>().join(",")
                )
            }
            other => other.to_string(),
        }
    }

    fn templates(spec: Value) -> Vec<String> {
        let objects = build_cluster(&cluster(spec), true).unwrap();
        let mut lines = Vec::new();
        for value in objects.to_values().unwrap() {
            let template = &value["spec"]["template"];
            if template.is_null() {
                continue;
            }
            let id = format!(
                "{}/{}",
                value["kind"].as_str().unwrap(),
                value["metadata"]["name"].as_str().unwrap()
            );
            lines.push(format!("{id} {}", config_hash(&[&canonical(template)])));
        }
        lines
    }

    #[test]
    fn the_pod_templates_of_a_running_cluster_do_not_change_with_an_operator_upgrade() {
        let mut lines = vec!["# minimal".to_owned()];
        lines.extend(templates(json!({})));
        lines.push("# ha".to_owned());
        lines.extend(templates(json!({
            "api": {"replicas": 4, "resources": {"requests": {"cpu": "500m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}},
            "mysql": {"replicas": 3, "storage": "50Gi", "config": {"max_connections": "1000"},
                      "orchestrator": {"replicas": 5}, "proxysql": {"replicas": 3}},
            "redis": {"masters": 6, "replicasPerMaster": 1, "maxmemory": "2gb"},
        })));
        lines.push("# without ProxySQL and Grafana".to_owned());
        lines.extend(templates(json!({
            "mysql": {"proxysql": {"enabled": false}},
            "monitoring": {"grafana": {"enabled": false}},
        })));
        lines.push("# restored to a point in time, backed up".to_owned());
        let bucket = json!({"endpoint": "http://s3.local:9000", "bucket": "db", "credentialsSecret": "keys"});
        lines.extend(templates(json!({
            "restore": {"s3": bucket, "cluster": "old", "pointInTime": "2026-12-03T12:00:00Z"},
            "backup": {"s3": bucket},
        })));
        let rendered = lines.join("\n") + "\n";
        let pinned = include_str!("pod-templates.lock");
        assert!(
            rendered == pinned,
            "pod templates changed: an operator upgrade would restart these workloads in every \
             cluster. If intended, put this in operator/src/reconcile/build/pod-templates.lock:\n{rendered}"
        );
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use serde_json::json;

    use super::fixtures::{build, cluster, file, ids, named};
    use super::*;

    const MONITORING_OBJECTS: &[&str] = &[
        "ConfigMap/prod-prometheus",
        "ConfigMap/prod-alertmanager",
        "ConfigMap/prod-grafana",
        "ConfigMap/prod-grafana-dashboards",
        "Service/prod-api-pods",
        "Service/prod-prometheus",
        "Service/prod-alertmanager",
        "Service/prod-grafana",
        "Deployment/prod-prometheus",
        "Deployment/prod-alertmanager",
        "Deployment/prod-grafana",
    ];

    #[test]
    fn a_minimal_cluster_builds_every_component() {
        let objects = build_cluster(&cluster(json!({})), true).unwrap();
        let api = named(&objects.deployments, "prod-api");
        assert_eq!(api.spec.as_ref().unwrap().replicas, Some(2));
        let owner = &api.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.kind, "SnsCluster");
        assert_eq!(owner.controller, Some(true));
        let mysql = named(&objects.stateful_sets, "prod-mysql");
        assert_eq!(
            mysql.spec.as_ref().unwrap().replicas,
            Some(3),
            "primary + 2 replicas"
        );
        let redis = named(&objects.stateful_sets, "prod-redis");
        assert_eq!(
            redis.spec.as_ref().unwrap().replicas,
            Some(6),
            "3 masters + 3 replicas"
        );
        let mut expected = vec![
            "ConfigMap/prod-mysql",
            "ConfigMap/prod-mysql-topology",
            "ConfigMap/prod-redis",
            "ConfigMap/prod-proxysql",
            "ConfigMap/prod-orchestrator",
            "Service/prod-mysql",
            "Service/prod-mysql-read",
            "Service/prod-mysql-primary",
            "Service/prod-redis",
            "Service/prod-api",
            "Service/prod-proxysql",
            "Service/prod-orchestrator-peers",
            "Service/prod-orchestrator",
            "Service/prod-orchestrator-raft-0",
            "Service/prod-orchestrator-raft-1",
            "Service/prod-orchestrator-raft-2",
            "StatefulSet/prod-mysql",
            "StatefulSet/prod-redis",
            "StatefulSet/prod-orchestrator",
            "Deployment/prod-api",
            "Deployment/prod-proxysql",
            "PodDisruptionBudget/prod-api",
            "PodDisruptionBudget/prod-proxysql",
            "PodDisruptionBudget/prod-orchestrator",
        ];
        expected.extend(MONITORING_OBJECTS);
        let mut built = ids(&objects);
        built.sort();
        expected.sort();
        assert_eq!(built, expected);
        for value in objects.to_values().unwrap() {
            assert_eq!(
                value["metadata"]["namespace"], "sns",
                "{}",
                value["metadata"]
            );
            assert_eq!(value["metadata"]["ownerReferences"][0]["uid"], "1234");
        }
    }

    #[test]
    fn monitoring_disabled_builds_no_monitoring_object_exporter_or_user() {
        let objects = build(json!({"monitoring": {"enabled": false}}));
        let built = ids(&objects);
        for id in MONITORING_OBJECTS {
            assert!(!built.contains(&id.to_string()), "{id} was built");
        }
        let text = serde_json::to_string(&objects.to_values().unwrap()).unwrap();
        assert!(!text.contains("exporter"), "an exporter is left: {text}");
        assert!(!file(&objects, "prod-mysql", "users.sql").contains("'exporter'"));
        let secrets = generated_secrets(&cluster(json!({"monitoring": {"enabled": false}})));
        assert!(
            !secrets
                .iter()
                .any(|(name, _)| name.contains("grafana") || name.contains("exporter")),
            "{secrets:?}"
        );
    }

    #[test]
    fn proxysql_and_grafana_can_be_left_out() {
        let spec = json!({
            "mysql": {"proxysql": {"enabled": false}},
            "monitoring": {"grafana": {"enabled": false}},
        });
        let built = ids(&build(spec.clone()));
        assert!(
            !built
                .iter()
                .any(|id| id.contains("proxysql") || id.contains("grafana")),
            "{built:?}"
        );
        assert!(built.contains(&"Deployment/prod-prometheus".to_owned()));
        let secrets = generated_secrets(&cluster(spec));
        assert!(!secrets.iter().any(|(name, _)| name.contains("grafana")));
        // The MySQL servers check each other with the monitor user, ProxySQL or not.
        assert!(secrets.iter().any(|(name, _)| name == "prod-proxysql"));
    }

    #[test]
    fn a_user_alertmanager_secret_replaces_the_default_config() {
        let objects = build(json!({"monitoring": {"alertmanagerConfigSecret": "alerts"}}));
        assert!(!ids(&objects).contains(&"ConfigMap/prod-alertmanager".to_owned()));
        let deployment =
            serde_json::to_value(named(&objects.deployments, "prod-alertmanager")).unwrap();
        let volumes = &deployment["spec"]["template"]["spec"]["volumes"];
        assert_eq!(volumes[0]["secret"]["secretName"], "alerts", "{volumes}");
    }

    #[test]
    fn every_secret_reference_names_a_generated_secret_and_key() {
        let cluster = cluster(json!({}));
        let generated = generated_secrets(&cluster);
        let objects = build_cluster(&cluster, false).unwrap();
        let mut references = Vec::new();
        collect_secret_refs(&json!(objects.to_values().unwrap()), &mut references);
        assert!(references.len() > 10, "{references:?}");
        for (secret, key) in references {
            assert!(
                generated
                    .iter()
                    .any(|(name, keys)| *name == secret && keys.contains(&key.as_str())),
                "{secret}/{key} is referenced but never generated"
            );
        }
    }

    fn collect_secret_refs(value: &Value, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                if let Some(reference) = map.get("secretKeyRef") {
                    out.push((
                        reference["name"].as_str().unwrap().to_owned(),
                        reference["key"].as_str().unwrap().to_owned(),
                    ));
                }
                map.values().for_each(|v| collect_secret_refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| collect_secret_refs(v, out)),
            _ => {}
        }
    }

    /// Lines of a configuration file that carry a credential must take it from a placeholder
    /// filled at container start (`@@NAME@@`) or an environment variable (`${NAME}`); a
    /// literal would be a Secret value in a ConfigMap.
    #[test]
    fn no_configmap_holds_a_credential() {
        let objects = build(json!({"monitoring": {"enabled": true}}));
        let words = [
            "password",
            "passwd",
            "token",
            "secret",
            "identified by",
            "bearer",
        ];
        let mut checked = 0;
        for config_map in &objects.config_maps {
            let name = config_map.metadata.name.clone().unwrap_or_default();
            for (key, text) in config_map.data.clone().unwrap_or_default() {
                // Scripts hold variable names, never values; alert rules, the default
                // Alertmanager config and dashboards are files from git, where no generated
                // value can reach.
                let from_git = ["alerts.yaml", "alertmanager.yml"].contains(&key.as_str())
                    || name.ends_with("-dashboards");
                if key.ends_with(".sh") || key.ends_with(".awk") || from_git {
                    continue;
                }
                for line in text.lines() {
                    let lower = line.to_lowercase();
                    if line.trim_start().starts_with('#')
                        || !words.iter().any(|word| lower.contains(word))
                    {
                        continue;
                    }
                    checked += 1;
                    assert!(
                        line.contains("@@") || line.contains("${"),
                        "{name}/{key} holds a literal credential: {line}"
                    );
                }
            }
        }
        assert!(checked >= 8, "only {checked} credential lines found");
    }

    #[test]
    fn render_output_carries_no_owner_and_no_namespace_when_the_cluster_has_none() {
        let mut cluster = cluster(json!({}));
        cluster.metadata.namespace = None;
        let objects = build_cluster(&cluster, false).unwrap();
        for value in objects.to_values().unwrap() {
            assert!(value["metadata"].get("ownerReferences").is_none());
            assert!(value["metadata"].get("namespace").is_none());
        }
    }

    #[test]
    fn a_single_api_pod_may_not_be_evicted() {
        let objects = build(json!({"api": {"replicas": 1}}));
        let pdb = named(&objects.disruption_budgets, "prod-api")
            .spec
            .as_ref()
            .unwrap();
        assert_eq!(pdb.max_unavailable, Some(IntOrString::Int(0)));
    }
}
