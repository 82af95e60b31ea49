//! Prometheus and Alertmanager (only with `spec.monitoring.enabled`).
//!
//! ```text
//! ConfigMap  <c>-prometheus    prometheus.yml + alerts.yaml (assets/monitoring)
//! Deployment <c>-prometheus    one pod, TSDB on an emptyDir; Service :9090
//! ConfigMap  <c>-alertmanager  alertmanager.yml (assets/monitoring), unless the user's Secret
//!                              spec.monitoring.alertmanagerConfigSecret replaces it
//! Deployment <c>-alertmanager  Service :9093
//! ```
//!
//! Targets are found without the Kubernetes API, so Prometheus needs no ServiceAccount,
//! Role or binding (and the operator no right to grant them): exporters by the stable DNS
//! names of their StatefulSet pods, API pods through the DNS of a headless Service.

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{Value, json};

use super::cluster::{BuildError, BuildInputs, ClusterObjects};
use super::naming::{CONFIG_HASH_ANNOTATION, Naming, config_hash, config_map, service, typed};
use super::{api, mysql, redis};
use crate::crd::SnsCluster;

/// Prometheus' port.
pub(super) const PROMETHEUS_PORT: i32 = 9090;
/// Alertmanager's port.
const ALERTMANAGER_PORT: i32 = 9093;

const ALERTS_YAML: &str = include_str!("../../../assets/monitoring/alerts.yaml");
const ALERTMANAGER_YAML: &str = include_str!("../../../assets/monitoring/alertmanager.yaml");
/// File name Alertmanager reads, in the ConfigMap or the user's Secret (the key it must have).
const ALERTMANAGER_FILE: &str = "alertmanager.yml";

/// Adds Prometheus' and Alertmanager's objects to `objects`.
pub(super) fn build(
    naming: &Naming<'_>,
    cluster: &SnsCluster,
    inputs: &BuildInputs,
    objects: &mut ClusterObjects,
) -> Result<(), BuildError> {
    let name = naming.name("prometheus");
    let prometheus_yml = serde_saphyr::to_string(&prometheus_config(naming, cluster, inputs))
        .map_err(|source| BuildError::new(&format!("ConfigMap {name}"), source))?;
    objects.config_maps.push(config_map(
        naming,
        &name,
        "prometheus",
        json!({ "prometheus.yml": prometheus_yml, "alerts.yaml": ALERTS_YAML }),
    )?);
    objects
        .services
        .push(client_service(naming, "prometheus", PROMETHEUS_PORT)?);
    objects.deployments.push(prometheus_deployment(
        naming,
        cluster,
        &config_hash(&[&prometheus_yml, ALERTS_YAML]),
    )?);

    let alertmanager = naming.name("alertmanager");
    let user_secret = cluster
        .spec
        .monitoring
        .alertmanager_config_secret
        .as_deref();
    if user_secret.is_none() {
        objects.config_maps.push(config_map(
            naming,
            &alertmanager,
            "alertmanager",
            json!({ ALERTMANAGER_FILE: ALERTMANAGER_YAML }),
        )?);
    }
    objects
        .services
        .push(client_service(naming, "alertmanager", ALERTMANAGER_PORT)?);
    objects
        .deployments
        .push(alertmanager_deployment(naming, cluster, user_secret)?);
    Ok(())
}

/// prometheus.yml: the four jobs the alert rules and dashboards query (`sns-api`,
/// `sns-operator`, `mysqld-exporter`, `redis-exporter`), each target labelled with the
/// cluster's namespace (the rules group and describe alerts by it).
pub(super) fn prometheus_config(
    naming: &Naming<'_>,
    cluster: &SnsCluster,
    inputs: &BuildInputs,
) -> Value {
    let labels = match &naming.namespace {
        Some(namespace) => json!({ "namespace": namespace }),
        None => json!({}),
    };
    let static_job = |job: &str, targets: Vec<String>| {
        json!({
            "job_name": job,
            "static_configs": [{ "targets": targets, "labels": labels }],
        })
    };
    let exporters = |component: &str, pods: i32, port: i32| -> Vec<String> {
        naming
            .pod_hosts(component, pods)
            .iter()
            .map(|host| format!("{host}:{port}"))
            .collect()
    };
    // A Deployment's pods have no stable names: DNS of the headless Service lists them all.
    let mut api_job = json!({
        "job_name": "sns-api",
        "dns_sd_configs": [{
            "names": [api::pods_service(naming)],
            "type": "A",
            "port": api::API_PORT,
        }],
    });
    if let Some(namespace) = &naming.namespace {
        api_job["relabel_configs"] =
            json!([{ "target_label": "namespace", "replacement": namespace }]);
    }
    json!({
        "global": { "scrape_interval": "15s", "evaluation_interval": "15s" },
        // Relative to this file: both are keys of the same ConfigMap.
        "rule_files": ["alerts.yaml"],
        "alerting": {
            "alertmanagers": [{
                "static_configs": [{ "targets": [format!("{}:{ALERTMANAGER_PORT}", naming.name("alertmanager"))] }],
            }],
        },
        "scrape_configs": [
            api_job,
            static_job("sns-operator", vec![inputs.operator_address.clone()]),
            static_job(
                "mysqld-exporter",
                exporters(mysql::COMPONENT, mysql::servers(cluster), mysql::EXPORTER_PORT),
            ),
            static_job(
                "redis-exporter",
                exporters(redis::COMPONENT, redis::nodes(cluster), redis::EXPORTER_PORT),
            ),
        ],
    })
}

/// A ClusterIP Service named after `component`, on `port`.
fn client_service(
    naming: &Naming<'_>,
    component: &str,
    port: i32,
) -> Result<k8s_openapi::api::core::v1::Service, BuildError> {
    service(
        naming,
        &naming.name(component),
        component,
        json!({
            "selector": naming.selector(component),
            "ports": [{ "name": "http", "port": port, "targetPort": "http" }],
        }),
    )
}

fn prometheus_deployment(
    naming: &Naming<'_>,
    cluster: &SnsCluster,
    hash: &str,
) -> Result<Deployment, BuildError> {
    let name = naming.name("prometheus");
    typed(
        &format!("Deployment {name}"),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": naming.metadata(&name, "prometheus"),
            "spec": {
                "replicas": 1,
                // One TSDB writer at a time, even during a rollout.
                "strategy": { "type": "Recreate" },
                "selector": { "matchLabels": naming.selector("prometheus") },
                "template": {
                    "metadata": {
                        "labels": naming.labels("prometheus"),
                        "annotations": { CONFIG_HASH_ANNOTATION: hash },
                    },
                    "spec": {
                        "containers": [{
                            "name": "prometheus",
                            "image": cluster.spec.monitoring.prometheus_image,
                            "args": [
                                "--config.file=/etc/prometheus/prometheus.yml",
                                "--storage.tsdb.path=/prometheus",
                                "--storage.tsdb.retention.time=15d",
                            ],
                            "ports": [{ "name": "http", "containerPort": PROMETHEUS_PORT }],
                            "readinessProbe": { "httpGet": { "path": "/-/ready", "port": "http" } },
                            "livenessProbe": { "httpGet": { "path": "/-/healthy", "port": "http" }, "initialDelaySeconds": 30 },
                            "volumeMounts": [
                                { "name": "config", "mountPath": "/etc/prometheus", "readOnly": true },
                                { "name": "data", "mountPath": "/prometheus" },
                            ],
                        }],
                        "volumes": [
                            { "name": "config", "configMap": { "name": name } },
                            // The spec has no storage for Prometheus: history starts again
                            // when the pod moves (alerting needs minutes, not months).
                            { "name": "data", "emptyDir": {} },
                        ],
                    },
                },
            },
        }),
    )
}

fn alertmanager_deployment(
    naming: &Naming<'_>,
    cluster: &SnsCluster,
    user_secret: Option<&str>,
) -> Result<Deployment, BuildError> {
    let name = naming.name("alertmanager");
    let (config_volume, hash) = match user_secret {
        // Receivers with credentials stay in the user's Secret; the operator never reads it,
        // so a change to it takes effect when the pod restarts.
        Some(secret) => (
            json!({ "name": "config", "secret": {
                "secretName": secret,
                "items": [{ "key": ALERTMANAGER_FILE, "path": ALERTMANAGER_FILE }],
            } }),
            config_hash(&["secret", secret]),
        ),
        None => (
            json!({ "name": "config", "configMap": { "name": name } }),
            config_hash(&[ALERTMANAGER_YAML]),
        ),
    };
    typed(
        &format!("Deployment {name}"),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": naming.metadata(&name, "alertmanager"),
            "spec": {
                "replicas": 1,
                "selector": { "matchLabels": naming.selector("alertmanager") },
                "template": {
                    "metadata": {
                        "labels": naming.labels("alertmanager"),
                        "annotations": { CONFIG_HASH_ANNOTATION: hash },
                    },
                    "spec": {
                        "containers": [{
                            "name": "alertmanager",
                            "image": cluster.spec.monitoring.alertmanager_image,
                            "args": [
                                format!("--config.file=/etc/alertmanager/{ALERTMANAGER_FILE}"),
                                "--storage.path=/alertmanager",
                            ],
                            "ports": [{ "name": "http", "containerPort": ALERTMANAGER_PORT }],
                            "readinessProbe": { "httpGet": { "path": "/-/ready", "port": "http" } },
                            "livenessProbe": { "httpGet": { "path": "/-/healthy", "port": "http" } },
                            "volumeMounts": [
                                { "name": "config", "mountPath": "/etc/alertmanager", "readOnly": true },
                                { "name": "data", "mountPath": "/alertmanager" },
                            ],
                        }],
                        "volumes": [config_volume, { "name": "data", "emptyDir": {} }],
                    },
                },
            },
        }),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::cluster::fixtures::{build, file, named};

    fn prometheus_yml(spec: Value) -> Value {
        let text = file(&build(spec), "prod-prometheus", "prometheus.yml");
        serde_saphyr::from_str(&text).unwrap()
    }

    #[test]
    fn prometheus_yml_parses_and_has_the_four_jobs_the_rules_query() {
        let config = prometheus_yml(json!({}));
        let jobs: Vec<&str> = config["scrape_configs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|job| job["job_name"].as_str().unwrap())
            .collect();
        assert_eq!(
            jobs,
            [
                "sns-api",
                "sns-operator",
                "mysqld-exporter",
                "redis-exporter"
            ]
        );
        assert_eq!(config["rule_files"], json!(["alerts.yaml"]));
        assert_eq!(
            config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"],
            json!(["prod-alertmanager:9093"])
        );
    }

    #[test]
    fn every_exporter_is_a_target_by_its_pod_name_with_the_namespace_label() {
        let config = prometheus_yml(
            json!({"mysql": {"replicas": 1}, "redis": {"masters": 3, "replicasPerMaster": 0}}),
        );
        let jobs = config["scrape_configs"].as_array().unwrap();
        let mysql = &jobs[2]["static_configs"][0];
        assert_eq!(
            mysql["targets"],
            json!([
                "prod-mysql-0.prod-mysql:9104",
                "prod-mysql-1.prod-mysql:9104"
            ])
        );
        assert_eq!(mysql["labels"]["namespace"], "sns");
        assert_eq!(
            jobs[3]["static_configs"][0]["targets"],
            json!([
                "prod-redis-0.prod-redis:9121",
                "prod-redis-1.prod-redis:9121",
                "prod-redis-2.prod-redis:9121"
            ])
        );
        assert_eq!(
            jobs[0]["dns_sd_configs"][0]["names"],
            json!(["prod-api-pods"])
        );
        assert_eq!(jobs[0]["relabel_configs"][0]["replacement"], "sns");
        assert_eq!(
            jobs[1]["static_configs"][0]["targets"],
            json!(["sns-operator-metrics.sns-system.svc:8080"])
        );
    }

    #[test]
    fn the_rules_and_the_default_alertmanager_config_are_the_tested_assets() {
        let objects = build(json!({}));
        assert_eq!(
            file(&objects, "prod-prometheus", "alerts.yaml"),
            super::ALERTS_YAML
        );
        assert_eq!(
            file(&objects, "prod-alertmanager", "alertmanager.yml"),
            super::ALERTMANAGER_YAML
        );
        let service = named(&objects.services, "prod-alertmanager")
            .spec
            .clone()
            .unwrap();
        assert_eq!(service.ports.unwrap()[0].port, 9093);
        let service = named(&objects.services, "prod-prometheus")
            .spec
            .clone()
            .unwrap();
        assert_eq!(service.ports.unwrap()[0].port, 9090);
    }
}
