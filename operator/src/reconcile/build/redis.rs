//! The Redis Cluster: configuration, headless Service, StatefulSet and the redis-exporter
//! sidecar (one per node, on 9121).

use k8s_openapi::api::apps::v1::StatefulSet;
use serde_json::json;

use super::cluster::{BuildError, ClusterObjects};
use super::naming::{
    CONFIG_HASH_ANNOTATION, Naming, config_hash, config_map, headless_service, typed,
};
use crate::crd::SnsCluster;

/// Redis' port.
pub const REDIS_PORT: i32 = 6379;
/// redis-exporter's port.
pub(super) const EXPORTER_PORT: i32 = 9121;

pub(super) const COMPONENT: &str = "redis";

/// Adds Redis' objects to `objects`.
pub(super) fn build(
    naming: &Naming<'_>,
    cluster: &SnsCluster,
    objects: &mut ClusterObjects,
) -> Result<(), BuildError> {
    let name = naming.name(COMPONENT);
    let redis = &cluster.spec.redis;
    // `protected-mode no`: clients (the API, the other nodes, the operator) come from other
    // pods. The official image is built with protected mode off; a distribution's Redis has
    // it on, and would refuse every one of them.
    let conf = format!(
        "port {REDIS_PORT}\ncluster-enabled yes\ncluster-config-file /data/nodes.conf\n\
         cluster-node-timeout 5000\nappendonly yes\nmaxmemory {}\nmaxmemory-policy {}\n\
         protected-mode no\n",
        redis.maxmemory,
        redis.policy.as_str()
    );
    let hash = config_hash(&[&conf]);
    objects.config_maps.push(config_map(
        naming,
        &name,
        COMPONENT,
        json!({ "redis.conf": conf }),
    )?);
    objects.services.push(headless_service(
        naming,
        &name,
        COMPONENT,
        json!([{ "name": "redis", "port": REDIS_PORT, "targetPort": REDIS_PORT }]),
    )?);
    objects
        .stateful_sets
        .push(stateful_set(naming, cluster, &hash)?);
    Ok(())
}

/// Nodes of the Redis Cluster: masters and their replicas.
pub(super) fn nodes(cluster: &SnsCluster) -> i32 {
    let redis = &cluster.spec.redis;
    redis.masters * (1 + redis.replicas_per_master)
}

/// Every Redis node's address as the API's `--redis-cluster-nodes` wants it.
pub(super) fn node_urls(naming: &Naming<'_>, cluster: &SnsCluster) -> String {
    naming
        .pod_hosts(COMPONENT, nodes(cluster))
        .iter()
        .map(|host| format!("redis://{host}:{REDIS_PORT}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `hash`: of redis.conf, which Redis reads at start only; a change rolls the nodes one by
/// one (a master's replica takes over while it restarts).
fn stateful_set(
    naming: &Naming<'_>,
    cluster: &SnsCluster,
    hash: &str,
) -> Result<StatefulSet, BuildError> {
    let name = naming.name(COMPONENT);
    let redis = &cluster.spec.redis;
    let mut containers = vec![json!({
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
    })];
    if cluster.spec.monitoring.enabled {
        // One exporter per node, reading only its own node: every node is a target of its
        // own (redis_up per node) and the exporter never follows cluster redirections
        // (`--is-cluster` would scrape all nodes through one exporter, so one failure would
        // blind it to all). It reports cluster_state from each node's CLUSTER INFO.
        containers.push(json!({
            "name": "redis-exporter",
            "image": cluster.spec.monitoring.redis_exporter_image,
            "env": [
                { "name": "REDIS_ADDR", "value": format!("redis://127.0.0.1:{REDIS_PORT}") },
                { "name": "REDIS_EXPORTER_WEB_LISTEN_ADDRESS", "value": format!("0.0.0.0:{EXPORTER_PORT}") },
            ],
            "ports": [{ "name": "metrics", "containerPort": EXPORTER_PORT }],
        }));
    }
    typed(
        &format!("StatefulSet {name}"),
        json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": naming.metadata(&name, COMPONENT),
            "spec": {
                "serviceName": name,
                "replicas": nodes(cluster),
                "podManagementPolicy": "Parallel",
                "selector": { "matchLabels": naming.selector(COMPONENT) },
                "template": {
                    "metadata": {
                        "labels": naming.labels(COMPONENT),
                        "annotations": { CONFIG_HASH_ANNOTATION: hash },
                    },
                    "spec": {
                        "containers": containers,
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::cluster::fixtures::{build, file, named};

    #[test]
    fn maxmemory_and_policy_reach_redis_conf() {
        let objects = build(json!({"redis": {"maxmemory": "2gb"}}));
        let conf = file(&objects, "prod-redis", "redis.conf");
        assert!(conf.contains("maxmemory 2gb"));
        assert!(conf.contains("maxmemory-policy volatile-lru"));
        assert!(conf.contains("protected-mode no"));
    }

    #[test]
    fn every_node_has_an_exporter_sidecar_on_9121() {
        let objects = build(json!({}));
        let sts = serde_json::to_value(named(&objects.stateful_sets, "prod-redis")).unwrap();
        let exporter = &sts["spec"]["template"]["spec"]["containers"][1];
        assert_eq!(exporter["name"], "redis-exporter");
        assert_eq!(exporter["ports"][0]["containerPort"], 9121);
        assert_eq!(exporter["env"][0]["value"], "redis://127.0.0.1:6379");
    }
}
