//! Pure builders: an `SnsCluster` in, the Kubernetes objects it stands for out. The reconciler
//! applies them and `sns-operator render` prints them, so both always agree.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::{Resource, ResourceExt};
use serde_json::{Value, json};

use crate::crd::SnsCluster;

/// Port the API listens on inside its pod.
pub const API_PORT: i32 = 8080;
/// MySQL's port.
pub const MYSQL_PORT: i32 = 3306;
/// ProxySQL's client port.
pub const PROXYSQL_PORT: i32 = 6033;
/// Redis' port.
pub const REDIS_PORT: i32 = 6379;

/// Every object of one cluster, in apply order.
#[derive(Debug, Clone)]
pub struct ClusterObjects {
    /// Configuration files (my.cnf, redis.conf).
    pub config_maps: Vec<ConfigMap>,
    /// Services (headless ones for StatefulSets, and the client-facing ones).
    pub services: Vec<Service>,
    /// MySQL and Redis.
    pub stateful_sets: Vec<StatefulSet>,
    /// The API.
    pub deployments: Vec<Deployment>,
    /// Disruption budgets.
    pub disruption_budgets: Vec<PodDisruptionBudget>,
}

/// Why an object could not be built.
#[derive(Debug, thiserror::Error)]
#[error("building {what}: {source}")]
pub struct BuildError {
    what: String,
    #[source]
    source: serde_json::Error,
}

/// Names and labels shared by the builders.
struct Naming<'a> {
    cluster: &'a str,
    namespace: Option<String>,
    owner: Option<OwnerReference>,
}

impl Naming<'_> {
    fn name(&self, component: &str) -> String {
        format!("{}-{component}", self.cluster)
    }

    fn labels(&self, component: &str) -> Value {
        json!({
            "app.kubernetes.io/name": "sns-platform",
            "app.kubernetes.io/instance": self.cluster,
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/managed-by": "sns-operator",
        })
    }

    fn selector(&self, component: &str) -> Value {
        json!({
            "app.kubernetes.io/instance": self.cluster,
            "app.kubernetes.io/component": component,
        })
    }

    fn metadata(&self, name: &str, component: &str) -> Value {
        let mut metadata = json!({ "name": name, "labels": self.labels(component) });
        if let Some(namespace) = &self.namespace {
            metadata["namespace"] = json!(namespace);
        }
        if let Some(owner) = &self.owner {
            metadata["ownerReferences"] = json!([owner]);
        }
        metadata
    }
}

fn typed<T: serde::de::DeserializeOwned>(what: &str, value: Value) -> Result<T, BuildError> {
    serde_json::from_value(value).map_err(|source| BuildError {
        what: what.to_owned(),
        source,
    })
}

/// Builds every object of `cluster`; with `owned`, each carries an owner reference to it
/// (the cluster must then have a uid, i.e. exist in the API server).
pub fn build_cluster(cluster: &SnsCluster, owned: bool) -> Result<ClusterObjects, BuildError> {
    let naming = Naming {
        cluster: cluster.metadata.name.as_deref().unwrap_or("sns"),
        namespace: cluster.namespace(),
        owner: if owned {
            cluster.controller_owner_ref(&())
        } else {
            None
        },
    };
    Ok(ClusterObjects {
        config_maps: vec![
            mysql_config(&naming, cluster)?,
            redis_config(&naming, cluster)?,
        ],
        services: vec![
            headless_service(&naming, "mysql", MYSQL_PORT)?,
            mysql_primary_service(&naming)?,
            headless_service(&naming, "redis", REDIS_PORT)?,
            api_service(&naming)?,
        ],
        stateful_sets: vec![
            mysql_stateful_set(&naming, cluster)?,
            redis_stateful_set(&naming, cluster)?,
        ],
        deployments: vec![api_deployment(&naming, cluster)?],
        disruption_budgets: vec![api_disruption_budget(&naming, cluster)?],
    })
}

fn headless_service(
    naming: &Naming<'_>,
    component: &str,
    port: i32,
) -> Result<Service, BuildError> {
    let name = naming.name(component);
    typed(
        &format!("Service {name}"),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": naming.metadata(&name, component),
            "spec": {
                "clusterIP": "None",
                // Peers must find each other before they are ready (replication bootstrap).
                "publishNotReadyAddresses": true,
                "selector": naming.selector(component),
                "ports": [{ "name": component, "port": port, "targetPort": port }],
            },
        }),
    )
}

fn mysql_primary_service(naming: &Naming<'_>) -> Result<Service, BuildError> {
    let name = naming.name("mysql-primary");
    let mut selector = naming.selector("mysql");
    // The operator moves this label to the server Orchestrator promotes.
    selector["sns-platform.dev/role"] = json!("primary");
    typed(
        &format!("Service {name}"),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": naming.metadata(&name, "mysql"),
            "spec": {
                "selector": selector,
                "ports": [{ "name": "mysql", "port": MYSQL_PORT, "targetPort": MYSQL_PORT }],
            },
        }),
    )
}

fn mysql_config(naming: &Naming<'_>, cluster: &SnsCluster) -> Result<ConfigMap, BuildError> {
    let name = naming.name("mysql");
    let mut settings: BTreeMap<String, String> = [
        ("log_bin", "mysql-bin"),
        ("log_slave_updates", "ON"),
        ("binlog_format", "ROW"),
        ("gtid_strict_mode", "ON"),
        ("skip_name_resolve", "ON"),
        ("character_set_server", "utf8mb4"),
        ("collation_server", "utf8mb4_unicode_ci"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect();
    settings.extend(cluster.spec.mysql.config.clone());
    let mut cnf = String::from("[mysqld]\n");
    for (key, value) in &settings {
        cnf.push_str(&format!("{key} = {value}\n"));
    }
    typed(
        &format!("ConfigMap {name}"),
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": naming.metadata(&name, "mysql"),
            "data": { "sns.cnf": cnf },
        }),
    )
}

fn mysql_stateful_set(
    naming: &Naming<'_>,
    cluster: &SnsCluster,
) -> Result<StatefulSet, BuildError> {
    let name = naming.name("mysql");
    let mysql = &cluster.spec.mysql;
    typed(
        &format!("StatefulSet {name}"),
        json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": naming.metadata(&name, "mysql"),
            "spec": {
                "serviceName": name,
                // The primary plus its read replicas.
                "replicas": mysql.replicas + 1,
                "podManagementPolicy": "Parallel",
                "selector": { "matchLabels": naming.selector("mysql") },
                "template": {
                    "metadata": { "labels": naming.labels("mysql") },
                    "spec": {
                        "containers": [{
                            "name": "mariadb",
                            "image": mysql.image,
                            "ports": [{ "name": "mysql", "containerPort": MYSQL_PORT }],
                            "env": [
                                { "name": "MARIADB_ROOT_PASSWORD", "valueFrom": { "secretKeyRef": {
                                    "name": naming.name("mysql"), "key": "root-password" } } },
                            ],
                            "readinessProbe": { "exec": { "command": ["healthcheck.sh", "--connect", "--innodb_initialized"] } },
                            "volumeMounts": [
                                { "name": "data", "mountPath": "/var/lib/mysql" },
                                { "name": "config", "mountPath": "/etc/mysql/conf.d" },
                            ],
                        }],
                        "volumes": [{ "name": "config", "configMap": { "name": name } }],
                    },
                },
                "volumeClaimTemplates": [{
                    "metadata": { "name": "data" },
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": { "requests": { "storage": mysql.storage } },
                    },
                }],
            },
        }),
    )
}

fn redis_config(naming: &Naming<'_>, cluster: &SnsCluster) -> Result<ConfigMap, BuildError> {
    let name = naming.name("redis");
    let redis = &cluster.spec.redis;
    let conf = format!(
        "port {REDIS_PORT}\ncluster-enabled yes\ncluster-config-file /data/nodes.conf\n\
         cluster-node-timeout 5000\nappendonly yes\nmaxmemory {}\nmaxmemory-policy {}\n",
        redis.maxmemory,
        redis.policy.as_str()
    );
    typed(
        &format!("ConfigMap {name}"),
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": naming.metadata(&name, "redis"),
            "data": { "redis.conf": conf },
        }),
    )
}

fn redis_stateful_set(
    naming: &Naming<'_>,
    cluster: &SnsCluster,
) -> Result<StatefulSet, BuildError> {
    let name = naming.name("redis");
    let redis = &cluster.spec.redis;
    typed(
        &format!("StatefulSet {name}"),
        json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": naming.metadata(&name, "redis"),
            "spec": {
                "serviceName": name,
                "replicas": redis.masters * (1 + redis.replicas_per_master),
                "podManagementPolicy": "Parallel",
                "selector": { "matchLabels": naming.selector("redis") },
                "template": {
                    "metadata": { "labels": naming.labels("redis") },
                    "spec": {
                        "containers": [{
                            "name": "redis",
                            "image": redis.image,
                            "command": ["redis-server", "/etc/redis/redis.conf"],
                            "ports": [
                                { "name": "redis", "containerPort": REDIS_PORT },
                                { "name": "bus", "containerPort": REDIS_PORT + 10000 },
                            ],
                            "readinessProbe": { "exec": { "command": ["redis-cli", "ping"] } },
                            "volumeMounts": [
                                { "name": "data", "mountPath": "/data" },
                                { "name": "config", "mountPath": "/etc/redis" },
                            ],
                        }],
                        "volumes": [{ "name": "config", "configMap": { "name": name } }],
                    },
                },
                "volumeClaimTemplates": [{
                    "metadata": { "name": "data" },
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": { "requests": { "storage": redis.storage } },
                    },
                }],
            },
        }),
    )
}

/// Every Redis node's address as the API's `--redis-cluster-nodes` wants it.
fn redis_node_urls(naming: &Naming<'_>, cluster: &SnsCluster) -> String {
    let redis = &cluster.spec.redis;
    let nodes = redis.masters * (1 + redis.replicas_per_master);
    let name = naming.name("redis");
    (0..nodes)
        .map(|index| format!("redis://{name}-{index}.{name}:{REDIS_PORT}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn api_deployment(naming: &Naming<'_>, cluster: &SnsCluster) -> Result<Deployment, BuildError> {
    let name = naming.name("api");
    let api = &cluster.spec.api;
    let jwt_secret = api
        .jwt_secret_name
        .clone()
        .unwrap_or_else(|| naming.name("api-jwt"));
    let database_url = format!(
        "mysql://sns:$(DATABASE_PASSWORD)@{}:{PROXYSQL_PORT}/sns",
        naming.name("proxysql")
    );
    let mut container = json!({
        "name": "api",
        "image": api.image,
        "ports": [{ "name": "http", "containerPort": API_PORT }],
        "env": [
            { "name": "API_LISTEN", "value": format!("0.0.0.0:{API_PORT}") },
            { "name": "API_LOG_FORMAT", "value": "json" },
            { "name": "DATABASE_PASSWORD", "valueFrom": { "secretKeyRef": {
                "name": naming.name("mysql"), "key": "sns-password" } } },
            { "name": "API_DATABASE_URL", "value": database_url },
            { "name": "API_REDIS_CLUSTER_NODES", "value": redis_node_urls(naming, cluster) },
            { "name": "API_JWT_SECRET", "valueFrom": { "secretKeyRef": {
                "name": jwt_secret, "key": "jwt-secret" } } },
            { "name": "API_RATE_LIMIT_TRUST_FORWARDED_FOR", "value": "true" },
        ],
        "livenessProbe": { "httpGet": { "path": "/healthz", "port": "http" } },
        "readinessProbe": { "httpGet": { "path": "/readyz", "port": "http" } },
    });
    if let Some(resources) = &api.resources {
        container["resources"] = json!(resources);
    }
    typed(
        &format!("Deployment {name}"),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": naming.metadata(&name, "api"),
            "spec": {
                "replicas": api.replicas,
                "selector": { "matchLabels": naming.selector("api") },
                "template": {
                    "metadata": {
                        "labels": naming.labels("api"),
                        "annotations": {
                            "prometheus.io/scrape": "true",
                            "prometheus.io/port": API_PORT.to_string(),
                        },
                    },
                    "spec": { "containers": [container] },
                },
            },
        }),
    )
}

fn api_service(naming: &Naming<'_>) -> Result<Service, BuildError> {
    let name = naming.name("api");
    typed(
        &format!("Service {name}"),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": naming.metadata(&name, "api"),
            "spec": {
                "selector": naming.selector("api"),
                "ports": [{ "name": "http", "port": 80, "targetPort": "http" }],
            },
        }),
    )
}

fn api_disruption_budget(
    naming: &Naming<'_>,
    cluster: &SnsCluster,
) -> Result<PodDisruptionBudget, BuildError> {
    let name = naming.name("api");
    // One pod may be down at a time, but never the last one.
    let max_unavailable = if cluster.spec.api.replicas > 1 { 1 } else { 0 };
    typed(
        &format!("PodDisruptionBudget {name}"),
        json!({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": naming.metadata(&name, "api"),
            "spec": {
                "maxUnavailable": max_unavailable,
                "selector": { "matchLabels": naming.selector("api") },
            },
        }),
    )
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
        Ok(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::SnsClusterSpec;

    fn cluster(spec_json: Value) -> SnsCluster {
        let spec: SnsClusterSpec = serde_json::from_value(spec_json).unwrap();
        let mut cluster = SnsCluster::new("prod", spec);
        cluster.metadata.namespace = Some("sns".into());
        cluster.metadata.uid = Some("1234".into());
        cluster
    }

    #[test]
    fn a_minimal_cluster_builds_every_component() {
        let objects = build_cluster(&cluster(json!({})), true).unwrap();
        let api = &objects.deployments[0];
        assert_eq!(api.metadata.name.as_deref(), Some("prod-api"));
        assert_eq!(api.spec.as_ref().unwrap().replicas, Some(2));
        let owner = &api.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(owner.kind, "SnsCluster");
        assert_eq!(owner.controller, Some(true));
        let mysql = &objects.stateful_sets[0];
        assert_eq!(
            mysql.spec.as_ref().unwrap().replicas,
            Some(3),
            "primary + 2 replicas"
        );
        let redis = &objects.stateful_sets[1];
        assert_eq!(
            redis.spec.as_ref().unwrap().replicas,
            Some(6),
            "3 masters + 3 replicas"
        );
        assert_eq!(objects.to_values().unwrap().len(), 10);
    }

    #[test]
    fn the_api_is_pointed_at_every_redis_node_and_proxysql() {
        let objects = build_cluster(
            &cluster(json!({"redis": {"masters": 3, "replicasPerMaster": 0}})),
            false,
        )
        .unwrap();
        let text = serde_json::to_string(&objects.deployments[0]).unwrap();
        assert!(text.contains("redis://prod-redis-2.prod-redis:6379"));
        assert!(!text.contains("prod-redis-3"));
        assert!(text.contains("@prod-proxysql:6033/sns"));
        assert!(
            !text.contains("ownerReferences"),
            "render output carries no owner"
        );
    }

    #[test]
    fn gtid_settings_and_user_config_reach_my_cnf() {
        let objects = build_cluster(
            &cluster(json!({"mysql": {"config": {"max_connections": "500"}}})),
            false,
        )
        .unwrap();
        let cnf = objects.config_maps[0].data.as_ref().unwrap()["sns.cnf"].clone();
        assert!(cnf.contains("gtid_strict_mode = ON"));
        assert!(cnf.contains("log_slave_updates = ON"));
        assert!(cnf.contains("max_connections = 500"));
        let redis_conf = objects.config_maps[1].data.as_ref().unwrap()["redis.conf"].clone();
        assert!(redis_conf.contains("maxmemory-policy volatile-lru"));
    }

    #[test]
    fn a_single_api_pod_may_not_be_evicted() {
        let objects = build_cluster(&cluster(json!({"api": {"replicas": 1}})), false).unwrap();
        let pdb = objects.disruption_budgets[0].spec.as_ref().unwrap();
        assert_eq!(
            pdb.max_unavailable,
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(0))
        );
    }
}
