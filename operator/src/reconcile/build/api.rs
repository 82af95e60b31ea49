//! The API pods: Deployment, Service, PodDisruptionBudget, and the headless Service
//! Prometheus discovers them through.

use serde_json::json;

use super::cluster::{BuildError, ClusterObjects};
use super::naming::{Naming, disruption_budget, headless_service, secret_env, service, typed};
use super::{mysql, proxysql, redis};
use crate::crd::SnsCluster;

/// Port the API listens on inside its pod (HTTP and `/metrics`).
pub const API_PORT: i32 = 8080;

const COMPONENT: &str = "api";

/// Adds the API's objects to `objects`.
pub(super) fn build(
    naming: &Naming<'_>,
    cluster: &SnsCluster,
    objects: &mut ClusterObjects,
) -> Result<(), BuildError> {
    let name = naming.name(COMPONENT);
    objects.services.push(service(
        naming,
        &name,
        COMPONENT,
        json!({
            "selector": naming.selector(COMPONENT),
            "ports": [{ "name": "http", "port": 80, "targetPort": "http" }],
        }),
    )?);
    if cluster.spec.monitoring.enabled {
        objects.services.push(headless_service(
            naming,
            &pods_service(naming),
            COMPONENT,
            json!([{ "name": "http", "port": API_PORT, "targetPort": "http" }]),
        )?);
    }
    objects.deployments.push(deployment(naming, cluster)?);
    objects.disruption_budgets.push(disruption_budget(
        naming,
        COMPONENT,
        cluster.spec.api.replicas,
    )?);
    Ok(())
}

/// Headless Service whose DNS name resolves to every API pod: Prometheus scrapes each pod
/// through it (`dns_sd_configs`), with no Kubernetes API access and so no RBAC.
pub(super) fn pods_service(naming: &Naming<'_>) -> String {
    naming.name("api-pods")
}

fn deployment(
    naming: &Naming<'_>,
    cluster: &SnsCluster,
) -> Result<k8s_openapi::api::apps::v1::Deployment, BuildError> {
    let name = naming.name(COMPONENT);
    let api = &cluster.spec.api;
    let jwt_secret = api
        .jwt_secret_name
        .clone()
        .unwrap_or_else(|| naming.name("api-jwt"));
    let database_url = format!(
        "mysql://{}:$(DATABASE_PASSWORD)@{}:{}/sns",
        mysql::APP_USER,
        naming.name(proxysql::COMPONENT),
        proxysql::PROXYSQL_PORT
    );
    let mut container = json!({
        "name": "api",
        "image": api.image,
        "ports": [{ "name": "http", "containerPort": API_PORT }],
        "env": [
            { "name": "API_LISTEN", "value": format!("0.0.0.0:{API_PORT}") },
            { "name": "API_LOG_FORMAT", "value": "json" },
            secret_env("DATABASE_PASSWORD", &naming.name(mysql::SECRET), mysql::SNS_PASSWORD),
            { "name": "API_DATABASE_URL", "value": database_url },
            { "name": "API_REDIS_CLUSTER_NODES", "value": redis::node_urls(naming, cluster) },
            secret_env("API_JWT_SECRET", &jwt_secret, "jwt-secret"),
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
            "metadata": naming.metadata(&name, COMPONENT),
            "spec": {
                "replicas": api.replicas,
                "selector": { "matchLabels": naming.selector(COMPONENT) },
                "template": {
                    "metadata": {
                        "labels": naming.labels(COMPONENT),
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::cluster::fixtures::{build, named};

    #[test]
    fn the_api_is_pointed_at_every_redis_node_and_proxysql() {
        let objects = build(json!({"redis": {"masters": 3, "replicasPerMaster": 0}}));
        let text = serde_json::to_string(named(&objects.deployments, "prod-api")).unwrap();
        assert!(text.contains("redis://prod-redis-2.prod-redis:6379"));
        assert!(!text.contains("prod-redis-3"));
        assert!(text.contains("mysql://sns:$(DATABASE_PASSWORD)@prod-proxysql:6033/sns"));
        assert!(
            !text.contains("ownerReferences"),
            "render output carries no owner"
        );
    }

    #[test]
    fn prometheus_finds_api_pods_through_a_headless_service_that_lists_unready_ones() {
        let objects = build(json!({}));
        let pods = named(&objects.services, "prod-api-pods")
            .spec
            .as_ref()
            .unwrap();
        assert_eq!(pods.cluster_ip.as_deref(), Some("None"));
        assert_eq!(pods.publish_not_ready_addresses, Some(true));
    }
}
