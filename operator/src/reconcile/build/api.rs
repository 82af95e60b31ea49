//! The API pods: Deployment, Service, PodDisruptionBudget, and the headless Service
//! Prometheus discovers them through.

use serde_json::{Value, json};

use super::cluster::{BuildError, ClusterObjects};
use super::naming::{Naming, disruption_budget, headless_service, secret_env, service, typed};
use super::{mysql, proxysql, redis};
use crate::crd::{S3Spec, SnsCluster};

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
    let (database_url, reader_urls) = database_urls(naming, cluster);
    let mut container = json!({
        "name": "api",
        "image": api.image,
        "ports": [{ "name": "http", "containerPort": API_PORT }],
        "env": [
            { "name": "API_LISTEN", "value": format!("0.0.0.0:{API_PORT}") },
            { "name": "API_LOG_FORMAT", "value": "json" },
            secret_env("DATABASE_PASSWORD", &naming.name(mysql::SECRET), mysql::SNS_PASSWORD),
            { "name": "API_DATABASE_URL", "value": database_url },
            { "name": "API_DATABASE_READER_URLS", "value": reader_urls },
            { "name": "API_REDIS_CLUSTER_NODES", "value": redis::node_urls(naming, cluster) },
            secret_env("API_JWT_SECRET", &jwt_secret, "jwt-secret"),
            { "name": "API_RATE_LIMIT_TRUST_FORWARDED_FOR", "value": "true" },
        ],
        "livenessProbe": { "httpGet": { "path": "/healthz", "port": "http" } },
        // /readyz answers within about 3 s (Redis reported within 1 s, the database
        // within 2 s): the default 1 s timeout would fail a pod for a slow Redis.
        "readinessProbe": { "httpGet": { "path": "/readyz", "port": "http" }, "timeoutSeconds": 4 },
    });
    if let (Some(s3), Some(env)) = (&api.s3, container["env"].as_array_mut()) {
        env.extend(s3_env(s3));
    }
    if let Some(env) = container["env"].as_array_mut() {
        // Kubernetes keeps the last of two variables of one name: the user's.
        env.extend(api.env.iter().map(|var| json!(var)));
    }
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

/// The writer URL and the reader URL of the API's two pools. The writer pool serves every
/// write and every read that must see one (a lagging replica must not answer a login right
/// after a registration); the reader pool serves the rest.
///
/// Behind ProxySQL: its writer port, and its reader port, which spreads SELECTs over the
/// replicas. Without it: the primary's Service, and the readers' Service in front of every
/// Ready server (each new connection goes to one of them). Neither names a server, so
/// adding or removing a replica changes nothing in the API's pods: none restarts.
fn database_urls(naming: &Naming<'_>, cluster: &SnsCluster) -> (String, String) {
    let url = |host: &str, port: i32| {
        format!(
            "mysql://{}:$(DATABASE_PASSWORD)@{host}:{port}/sns",
            mysql::APP_USER
        )
    };
    if cluster.spec.mysql.proxysql.enabled {
        let proxysql = naming.name(proxysql::COMPONENT);
        (
            url(&proxysql, proxysql::PROXYSQL_PORT),
            url(&proxysql, proxysql::PROXYSQL_READER_PORT),
        )
    } else {
        (
            url(&mysql::primary_service(naming), mysql::MYSQL_PORT),
            url(&mysql::readers_service(naming), mysql::MYSQL_PORT),
        )
    }
}

/// The API's S3 settings from `spec.api.s3`; the keys come from the credentials Secret.
fn s3_env(s3: &S3Spec) -> Vec<Value> {
    let mut env = vec![
        json!({ "name": "API_S3_ENDPOINT", "value": s3.endpoint }),
        json!({ "name": "API_S3_BUCKET", "value": s3.bucket }),
        json!({ "name": "API_S3_REGION", "value": s3.region }),
        secret_env("API_S3_ACCESS_KEY_ID", &s3.credentials_secret, "access-key"),
        secret_env(
            "API_S3_SECRET_ACCESS_KEY",
            &s3.credentials_secret,
            "secret-key",
        ),
    ];
    if let Some(base) = &s3.public_base_url {
        env.push(json!({ "name": "API_MEDIA_PUBLIC_BASE_URL", "value": base }));
    }
    env
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
        assert!(text.contains("mysql://sns:$(DATABASE_PASSWORD)@prod-proxysql:6034/sns"));
        assert!(!text.contains("API_S3"), "no bucket, no S3 settings");
        assert!(
            !text.contains("ownerReferences"),
            "render output carries no owner"
        );
    }

    #[test]
    fn settings_from_spec_api_env_come_last_and_so_win() {
        let objects = build(json!({"api": {"env": [
            {"name": "API_RATE_LIMIT_POSTS", "value": "1000/1h"},
            {"name": "API_LOG_FORMAT", "value": "text"},
        ]}}));
        let env = env(&objects);
        let names: Vec<&str> = env
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v["name"].as_str())
            .collect();
        assert_eq!(
            names[names.len() - 2..],
            ["API_RATE_LIMIT_POSTS", "API_LOG_FORMAT"]
        );
        assert_eq!(value_of(&env, "API_RATE_LIMIT_POSTS")["value"], "1000/1h");
    }

    fn env(objects: &super::super::cluster::ClusterObjects) -> serde_json::Value {
        let deployment = serde_json::to_value(named(&objects.deployments, "prod-api")).unwrap();
        deployment["spec"]["template"]["spec"]["containers"][0]["env"].clone()
    }

    fn value_of<'e>(env: &'e serde_json::Value, name: &str) -> &'e serde_json::Value {
        env.as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("{name} missing from {env}"))
    }

    #[test]
    fn without_proxysql_the_api_writes_to_the_primary_and_reads_from_every_server() {
        let objects = build(json!({"mysql": {"proxysql": {"enabled": false}}}));
        let env = env(&objects);
        assert_eq!(
            value_of(&env, "API_DATABASE_URL")["value"],
            "mysql://sns:$(DATABASE_PASSWORD)@prod-mysql-primary:3306/sns"
        );
        assert_eq!(
            value_of(&env, "API_DATABASE_READER_URLS")["value"],
            "mysql://sns:$(DATABASE_PASSWORD)@prod-mysql-read:3306/sns"
        );
    }

    #[test]
    fn the_bucket_of_the_spec_reaches_the_api_with_its_keys_from_the_secret() {
        let objects = build(json!({"api": {"s3": {
            "endpoint": "http://s3.example:9000", "bucket": "media",
            "credentialsSecret": "s3-keys", "publicBaseUrl": "https://cdn.example"
        }}}));
        let env = env(&objects);
        assert_eq!(
            value_of(&env, "API_S3_ENDPOINT")["value"],
            "http://s3.example:9000"
        );
        assert_eq!(value_of(&env, "API_S3_BUCKET")["value"], "media");
        assert_eq!(value_of(&env, "API_S3_REGION")["value"], "us-east-1");
        assert_eq!(
            value_of(&env, "API_S3_ACCESS_KEY_ID")["valueFrom"]["secretKeyRef"],
            json!({"name": "s3-keys", "key": "access-key"})
        );
        assert_eq!(
            value_of(&env, "API_S3_SECRET_ACCESS_KEY")["valueFrom"]["secretKeyRef"],
            json!({"name": "s3-keys", "key": "secret-key"})
        );
        assert_eq!(
            value_of(&env, "API_MEDIA_PUBLIC_BASE_URL")["value"],
            "https://cdn.example"
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
