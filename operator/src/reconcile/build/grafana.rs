//! Grafana (only with `spec.monitoring.enabled`): the Prometheus data source and the four
//! dashboards of `assets/monitoring/dashboards`, provisioned from files.
//!
//! ```text
//! ConfigMap  <c>-grafana             datasources.yaml, dashboards.yaml (the file provider)
//! ConfigMap  <c>-grafana-dashboards  api.json, feed-pipeline.json, mysql.json, redis.json
//! Deployment <c>-grafana             admin password from Secret <c>-grafana; Service :3000
//! ```

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::json;

use super::cluster::{BuildError, ClusterObjects};
use super::naming::{
    CONFIG_HASH_ANNOTATION, Naming, config_hash, config_map, secret_env, service, typed,
};
use super::prometheus::PROMETHEUS_PORT;
use crate::crd::SnsCluster;

/// Grafana's port.
const GRAFANA_PORT: i32 = 3000;

const COMPONENT: &str = "grafana";
/// Generated Secret `<cluster>-grafana` and its key.
pub(super) const SECRET: &str = "grafana";
pub(super) const ADMIN_PASSWORD: &str = "admin-password";

/// Dashboards as (file name, JSON); the monitoring asset tests check their queries.
const DASHBOARDS: &[(&str, &str)] = &[
    (
        "api.json",
        include_str!("../../../assets/monitoring/dashboards/api.json"),
    ),
    (
        "feed-pipeline.json",
        include_str!("../../../assets/monitoring/dashboards/feed-pipeline.json"),
    ),
    (
        "mysql.json",
        include_str!("../../../assets/monitoring/dashboards/mysql.json"),
    ),
    (
        "redis.json",
        include_str!("../../../assets/monitoring/dashboards/redis.json"),
    ),
];

/// Where the dashboards ConfigMap is mounted, and where the file provider looks.
const DASHBOARDS_DIR: &str = "/etc/grafana/dashboards/sns-platform";

/// Adds Grafana's objects to `objects`.
pub(super) fn build(
    naming: &Naming<'_>,
    cluster: &SnsCluster,
    objects: &mut ClusterObjects,
) -> Result<(), BuildError> {
    let name = naming.name(COMPONENT);
    // The dashboards pick any Prometheus data source (their `datasource` variable); this one
    // is the default, so they open on it.
    let datasources = format!(
        "apiVersion: 1\n\
         datasources:\n  \
           - name: Prometheus\n    \
             uid: prometheus\n    \
             type: prometheus\n    \
             access: proxy\n    \
             url: http://{}:{PROMETHEUS_PORT}\n    \
             isDefault: true\n    \
             editable: false\n",
        naming.name("prometheus")
    );
    let providers = format!(
        "apiVersion: 1\n\
         providers:\n  \
           - name: sns-platform\n    \
             folder: sns-platform\n    \
             type: file\n    \
             disableDeletion: true\n    \
             allowUiUpdates: false\n    \
             updateIntervalSeconds: 60\n    \
             options:\n      \
               path: {DASHBOARDS_DIR}\n"
    );
    objects.config_maps.push(config_map(
        naming,
        &name,
        COMPONENT,
        json!({ "datasources.yaml": datasources, "dashboards.yaml": providers }),
    )?);
    let dashboards: serde_json::Map<String, serde_json::Value> = DASHBOARDS
        .iter()
        .map(|(file, text)| ((*file).to_owned(), json!(text)))
        .collect();
    objects.config_maps.push(config_map(
        naming,
        &naming.name("grafana-dashboards"),
        COMPONENT,
        json!(dashboards),
    )?);
    objects.services.push(service(
        naming,
        &name,
        COMPONENT,
        json!({
            "selector": naming.selector(COMPONENT),
            "ports": [{ "name": "http", "port": GRAFANA_PORT, "targetPort": "http" }],
        }),
    )?);
    // Dashboards are re-read by the file provider while Grafana runs; the data source only
    // at start, so only it rolls the pod.
    objects.deployments.push(deployment(
        naming,
        cluster,
        &config_hash(&[&datasources, &providers]),
    )?);
    Ok(())
}

fn deployment(
    naming: &Naming<'_>,
    cluster: &SnsCluster,
    hash: &str,
) -> Result<Deployment, BuildError> {
    let name = naming.name(COMPONENT);
    typed(
        &format!("Deployment {name}"),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": naming.metadata(&name, COMPONENT),
            "spec": {
                "replicas": 1,
                "selector": { "matchLabels": naming.selector(COMPONENT) },
                "template": {
                    "metadata": {
                        "labels": naming.labels(COMPONENT),
                        "annotations": { CONFIG_HASH_ANNOTATION: hash },
                    },
                    "spec": {
                        "containers": [{
                            "name": "grafana",
                            "image": cluster.spec.monitoring.grafana_image,
                            "env": [
                                { "name": "GF_SECURITY_ADMIN_USER", "value": "admin" },
                                secret_env("GF_SECURITY_ADMIN_PASSWORD", &naming.name(SECRET), ADMIN_PASSWORD),
                                { "name": "GF_USERS_ALLOW_SIGN_UP", "value": "false" },
                            ],
                            "ports": [{ "name": "http", "containerPort": GRAFANA_PORT }],
                            "readinessProbe": { "httpGet": { "path": "/api/health", "port": "http" } },
                            "volumeMounts": [
                                { "name": "datasources", "mountPath": "/etc/grafana/provisioning/datasources", "readOnly": true },
                                { "name": "providers", "mountPath": "/etc/grafana/provisioning/dashboards", "readOnly": true },
                                { "name": "dashboards", "mountPath": DASHBOARDS_DIR, "readOnly": true },
                                { "name": "data", "mountPath": "/var/lib/grafana" },
                            ],
                        }],
                        // One ConfigMap, two directories: Grafana reads each provisioning
                        // kind from its own directory.
                        "volumes": [
                            { "name": "datasources", "configMap": { "name": name,
                                "items": [{ "key": "datasources.yaml", "path": "sns-platform.yaml" }] } },
                            { "name": "providers", "configMap": { "name": name,
                                "items": [{ "key": "dashboards.yaml", "path": "sns-platform.yaml" }] } },
                            { "name": "dashboards", "configMap": { "name": naming.name("grafana-dashboards") } },
                            // Everything Grafana stores is provisioned again at start.
                            { "name": "data", "emptyDir": {} },
                        ],
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

    #[test]
    fn the_datasource_points_at_the_prometheus_service_and_the_provider_at_the_dashboards() {
        let objects = build(json!({}));
        let datasources: Value =
            serde_saphyr::from_str(&file(&objects, "prod-grafana", "datasources.yaml")).unwrap();
        assert_eq!(
            datasources["datasources"][0]["url"],
            "http://prod-prometheus:9090"
        );
        assert_eq!(datasources["datasources"][0]["type"], "prometheus");
        let providers: Value =
            serde_saphyr::from_str(&file(&objects, "prod-grafana", "dashboards.yaml")).unwrap();
        assert_eq!(
            providers["providers"][0]["options"]["path"],
            super::DASHBOARDS_DIR
        );
    }

    #[test]
    fn the_four_dashboards_are_provisioned_as_valid_json() {
        let objects = build(json!({}));
        let data = named(&objects.config_maps, "prod-grafana-dashboards")
            .data
            .clone()
            .unwrap();
        let files: Vec<&str> = data.keys().map(String::as_str).collect();
        assert_eq!(
            files,
            ["api.json", "feed-pipeline.json", "mysql.json", "redis.json"]
        );
        for (file, text) in &data {
            let dashboard: Value = serde_json::from_str(text).unwrap();
            assert!(dashboard["uid"].is_string(), "{file}");
        }
        let grafana = serde_json::to_string(named(&objects.deployments, "prod-grafana")).unwrap();
        assert!(
            grafana.contains(r#""secretKeyRef":{"key":"admin-password","name":"prod-grafana"}"#)
        );
    }
}
