//! MySQL (MariaDB): the StatefulSet of one primary and its GTID replicas, its configuration,
//! and the mysqld-exporter sidecar. What a server runs at start (start.sh, users.sql) is in
//! `mysql_init`.
//!
//! ```text
//! ConfigMap <c>-mysql     sns.cnf (GTID settings + spec.mysql.config), start.sh,
//!                         users.sql (template: @@..._PASSWORD@@), render.awk, donor.sh
//! Service   <c>-mysql     headless: <c>-mysql-N.<c>-mysql for replication, ProxySQL,
//!                         Orchestrator and Prometheus
//! ConfigMap <c>-mysql-topology   primary: the pod recorded as primary (start.sh lets only
//!                         it take writes); servers: how many there are (read at start,
//!                         never in the pod template: a new replica restarts no other)
//! Service   <c>-mysql-read  every Ready server: the API's reads (without ProxySQL)
//! Service   <c>-mysql-primary  that pod (by name: a recreated pod is selected at once; the
//!                         operator also moves the sns-platform.dev/role=primary label)
//! StatefulSet <c>-mysql   mariadb, clone-donor :3307 (a copy of the server's data for a
//!                         new one, mariadb-backup), mysqld-exporter :9104 (monitoring);
//!                         OnDelete: the operator restarts servers itself, replicas first
//!                         and the primary last after a switchover (`rollout`); the hash
//!                         of the configuration files in the template, so a change to
//!                         them is such a roll; a removed replica's volume is deleted
//! ```

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use serde_json::{Value, json};

use super::cluster::{BuildError, BuildInputs, ClusterObjects};
use super::mysql_init::{DONOR_SH, RENDER_AWK, START_SH, users_sql};
use super::naming::{
    CONFIG_HASH_ANNOTATION, Naming, config_hash, config_map, headless_service, secret_env, service,
    typed,
};
use super::{orchestrator, proxysql};
use crate::crd::{Durability, MysqlSpec, SnsCluster};

/// MySQL's port.
pub const MYSQL_PORT: i32 = 3306;
/// The clone donor's port (donor.sh), where a new server gets a copy of an existing one.
pub const CLONE_PORT: i32 = 3307;
/// mysqld-exporter's port.
pub(super) const EXPORTER_PORT: i32 = 9104;

pub(super) const COMPONENT: &str = "mysql";
/// Generated Secret `<cluster>-mysql` and its keys.
pub(super) const SECRET: &str = "mysql";
pub(super) const ROOT_PASSWORD: &str = "root-password";
pub(super) const SNS_PASSWORD: &str = "sns-password";
pub(super) const REPLICATION_PASSWORD: &str = "replication-password";
/// Generated Secret `<cluster>-mysqld-exporter` (only with monitoring) and its key.
pub(super) const EXPORTER_SECRET: &str = "mysqld-exporter";
pub(super) const EXPORTER_PASSWORD: &str = "exporter-password";

/// The database and user the API works with.
pub(super) const APP_USER: &str = "sns";
/// The user ProxySQL checks health and `read_only` with (start.sh asks peers with it too).
pub(super) const MONITOR_USER: &str = "monitor";
/// The user Orchestrator inspects and rewires the topology with.
pub(super) const ORCHESTRATOR_USER: &str = "orchestrator";
/// The user mysqld-exporter reads status with, from inside the pod only.
pub(super) const EXPORTER_USER: &str = "exporter";

/// Adds MySQL's objects to `objects`.
pub(super) fn build(
    naming: &Naming<'_>,
    cluster: &SnsCluster,
    inputs: &BuildInputs,
    objects: &mut ClusterObjects,
) -> Result<(), BuildError> {
    let running = running_servers(cluster, inputs);
    let name = naming.name(COMPONENT);
    let cnf = my_cnf(cluster);
    let users = users_sql(cluster.spec.monitoring.enabled);
    let hash = config_hash(&[&cnf, START_SH, &users, RENDER_AWK, DONOR_SH]);
    objects.config_maps.push(config_map(
        naming,
        &name,
        COMPONENT,
        json!({
            "sns.cnf": cnf,
            "start.sh": START_SH,
            "users.sql": users,
            "render.awk": RENDER_AWK,
            "donor.sh": DONOR_SH,
        }),
    )?);
    objects.services.push(headless_service(
        naming,
        &name,
        COMPONENT,
        json!([{ "name": "mysql", "port": MYSQL_PORT, "targetPort": MYSQL_PORT }]),
    )?);
    objects.services.push(service(
        naming,
        &readers_service(naming),
        COMPONENT,
        json!({
            "selector": naming.selector(COMPONENT),
            "ports": [{ "name": "mysql", "port": MYSQL_PORT, "targetPort": MYSQL_PORT }],
        }),
    )?);
    let primary = recorded_primary(cluster, &name);
    objects.config_maps.push(config_map(
        naming,
        &naming.name(TOPOLOGY),
        COMPONENT,
        json!({ "primary": primary, "servers": running.to_string() }),
    )?);
    let mut selector = naming.selector(COMPONENT);
    selector["statefulset.kubernetes.io/pod-name"] = json!(primary);
    objects.services.push(service(
        naming,
        &primary_service(naming),
        COMPONENT,
        json!({
            "selector": selector,
            "ports": [{ "name": "mysql", "port": MYSQL_PORT, "targetPort": MYSQL_PORT }],
        }),
    )?);
    objects
        .stateful_sets
        .push(stateful_set(naming, cluster, running, &hash, inputs)?);
    Ok(())
}

/// Service `<cluster>-mysql-primary`: the server that takes writes.
pub(super) fn primary_service(naming: &Naming<'_>) -> String {
    naming.name("mysql-primary")
}

/// Service `<cluster>-mysql-read`: every Ready server, for reads that may lag.
pub(super) fn readers_service(naming: &Naming<'_>) -> String {
    naming.name("mysql-read")
}

/// ConfigMap `<cluster>-mysql-topology`: which server is the primary.
pub(super) const TOPOLOGY: &str = "mysql-topology";

/// The pod recorded as primary (`status.mysql.primary`, which follows Orchestrator's
/// promotions), or server 0 before any is recorded.
fn recorded_primary(cluster: &SnsCluster, stateful_set: &str) -> String {
    cluster
        .status
        .as_ref()
        .and_then(|status| status.mysql.primary.clone())
        .unwrap_or_else(|| format!("{stateful_set}-0"))
}

/// Servers the spec asks for: the primary plus its read replicas.
pub(super) fn servers(cluster: &SnsCluster) -> i32 {
    cluster.spec.mysql.replicas + 1
}

/// Servers the StatefulSet runs: the spec's, or more while a scale-down waits
/// (`BuildInputs::mysql_servers_kept`).
fn running_servers(cluster: &SnsCluster, inputs: &BuildInputs) -> i32 {
    servers(cluster).max(inputs.mysql_servers_kept.unwrap_or(0))
}

fn my_cnf(cluster: &SnsCluster) -> String {
    let mut settings: BTreeMap<String, String> = [
        // The API sends many short queries over pooled connections: a few pool threads
        // serve them without a thread wake-up and context switch per query (one thread per
        // connection measured 23 % fewer feed reads per second, BENCHMARKS.md).
        ("thread_handling", "pool-of-threads"),
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
    settings.extend(durability_settings(&cluster.spec.mysql));
    settings.extend(cluster.spec.mysql.config.clone());
    let mut cnf = String::from("[mysqld]\n");
    for (key, value) in &settings {
        cnf.push_str(&format!("{key} = {value}\n"));
    }
    cnf
}

/// Semi-synchronous replication on every server, primary or replica, since any of them may
/// be promoted:
/// - `AFTER_SYNC`: the commit becomes visible (and is acknowledged) only once a replica
///   has it, so nothing a client saw can vanish in a failover (MariaDB's default,
///   `AFTER_COMMIT`, lets others read a commit a replica may never get);
/// - replica side on the primary too: a primary that crashed with transactions in its
///   binary log that no replica acknowledged rolls them back when it starts again (MariaDB
///   does this recovery only on a server started with `rpl_semi_sync_slave_enabled`), so
///   it can follow the promoted server without transactions of its own;
/// - `wait_no_slave` off: a server with no semi-sync replica attached does not wait. A
///   replica is one (it writes what it applies to its own binary log, and would wait out
///   the timeout on every transaction it applies); a primary whose replicas are all gone
///   would only wait out the timeout once and then carry on without them anyway.
fn durability_settings(mysql: &MysqlSpec) -> Vec<(String, String)> {
    let on = |enabled: bool| if enabled { "ON" } else { "OFF" }.to_owned();
    let semisync = mysql.durability == Durability::Semisync;
    let mut settings = vec![
        ("rpl_semi_sync_master_enabled".to_owned(), on(semisync)),
        ("rpl_semi_sync_slave_enabled".to_owned(), on(semisync)),
    ];
    if semisync {
        settings.push((
            "rpl_semi_sync_master_wait_point".to_owned(),
            "AFTER_SYNC".to_owned(),
        ));
        settings.push((
            "rpl_semi_sync_master_timeout".to_owned(),
            mysql.semisync_timeout_ms.to_string(),
        ));
        settings.push((
            "rpl_semi_sync_master_wait_no_slave".to_owned(),
            "OFF".to_owned(),
        ));
    }
    settings
}

fn stateful_set(
    naming: &Naming<'_>,
    cluster: &SnsCluster,
    running: i32,
    hash: &str,
    inputs: &BuildInputs,
) -> Result<StatefulSet, BuildError> {
    let name = naming.name(COMPONENT);
    let mysql = &cluster.spec.mysql;
    let monitoring = cluster.spec.monitoring.enabled;
    let secret = naming.name(SECRET);
    let mut env = vec![
        secret_env("MARIADB_ROOT_PASSWORD", &secret, ROOT_PASSWORD),
        secret_env("SNS_PASSWORD", &secret, SNS_PASSWORD),
        secret_env("REPLICATION_PASSWORD", &secret, REPLICATION_PASSWORD),
        secret_env(
            "ORCHESTRATOR_PASSWORD",
            &naming.name(orchestrator::SECRET),
            orchestrator::TOPOLOGY_PASSWORD,
        ),
        secret_env(
            "MONITOR_PASSWORD",
            &naming.name(proxysql::SECRET),
            proxysql::MONITOR_PASSWORD,
        ),
        json!({ "name": "SNS_MYSQL_STATEFULSET", "value": name }),
        json!({ "name": "SNS_MYSQL_SERVICE", "value": name }),
    ];
    // A restored cluster's servers start from server 0's restore, never empty.
    if cluster.spec.restore.is_some() {
        env.push(json!({ "name": "SNS_MYSQL_RESTORED", "value": "1" }));
    }
    let exporter_secret = naming.name(EXPORTER_SECRET);
    if monitoring {
        env.push(secret_env(
            "EXPORTER_PASSWORD",
            &exporter_secret,
            EXPORTER_PASSWORD,
        ));
    }
    let mut containers = vec![json!({
        "name": "mariadb",
        "image": mysql.image,
        "command": ["bash", "/etc/sns/mysql/start.sh"],
        "ports": [{ "name": "mysql", "containerPort": MYSQL_PORT }],
        "env": env,
        "readinessProbe": { "exec": { "command": ["healthcheck.sh", "--connect", "--innodb_initialized"] } },
        "volumeMounts": [
            { "name": "data", "mountPath": "/var/lib/mysql" },
            { "name": "config", "mountPath": "/etc/sns/mysql", "readOnly": true },
            { "name": "topology", "mountPath": "/etc/sns/topology", "readOnly": true },
            { "name": "conf-d", "mountPath": "/etc/mysql/conf.d" },
            { "name": "users", "mountPath": "/run/sns-mysql" },
            { "name": "initdb", "mountPath": "/docker-entrypoint-initdb.d" },
        ],
    })];
    containers.push(donor_container(naming, cluster));
    if monitoring {
        containers.push(exporter_container(cluster, &exporter_secret));
    }
    let mut stateful_set = json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": naming.metadata(&name, COMPONENT),
        "spec": {
            "serviceName": name,
            "replicas": running,
            "podManagementPolicy": "Parallel",
            // The StatefulSet controller would restart servers in reverse ordinal order,
            // the primary whenever its turn comes: the operator does it instead.
            "updateStrategy": { "type": "OnDelete" },
            // A replica scaled away takes its data with it: one added again later is
            // cloned afresh rather than resuming from a copy that may be days behind.
            // Deleting the SnsCluster keeps every volume.
            "persistentVolumeClaimRetentionPolicy": {
                "whenScaled": "Delete",
                "whenDeleted": "Retain",
            },
            "selector": { "matchLabels": naming.selector(COMPONENT) },
            "template": {
                "metadata": {
                    "labels": naming.labels(COMPONENT),
                    "annotations": { CONFIG_HASH_ANNOTATION: hash },
                },
                "spec": {
                    "containers": containers,
                    "volumes": [
                        { "name": "config", "configMap": { "name": name } },
                        // Read by start.sh at every start; a failover recorded by the
                        // operator reaches it (no restart is triggered by it).
                        { "name": "topology", "configMap": { "name": naming.name(TOPOLOGY) } },
                        // Written by start.sh at every start: server identity and role.
                        { "name": "conf-d", "emptyDir": {} },
                        // Rendered users.sql (passwords): memory only.
                        { "name": "users", "emptyDir": { "medium": "Memory" } },
                        // First-start replication setup (a password too): memory only.
                        { "name": "initdb", "emptyDir": { "medium": "Memory" } },
                        // The clone donor's login and copies in progress: memory only.
                        { "name": "donor", "emptyDir": { "medium": "Memory" } },
                    ],
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
    });
    if let Some(restore) = restore_container(cluster, inputs) {
        stateful_set["spec"]["template"]["spec"]["initContainers"] = json!([restore]);
    }
    typed(&format!("StatefulSet {name}"), stateful_set)
}

/// With `spec.restore`: fetches the backup and binary logs into server 0's empty volume
/// before its first start (`sns-operator restore-fetch`; a no-op on any other server or
/// later start). Its image is the one recorded when the cluster was created
/// (`status.restoreImage`), so an operator upgrade changes no MySQL pod.
fn restore_container(cluster: &SnsCluster, inputs: &BuildInputs) -> Option<Value> {
    let restore = cluster.spec.restore.as_ref()?;
    let image = cluster
        .status
        .as_ref()
        .and_then(|s| s.restore_image.clone())
        .or_else(|| restore.image.clone())
        .unwrap_or_else(|| inputs.operator_image.clone());
    let s3 = &restore.s3;
    let mut env = vec![
        json!({ "name": "RESTORE_CLUSTER", "value": restore.cluster }),
        json!({ "name": "RESTORE_S3_ENDPOINT", "value": s3.endpoint }),
        json!({ "name": "RESTORE_S3_BUCKET", "value": s3.bucket }),
        json!({ "name": "RESTORE_S3_REGION", "value": s3.region }),
        json!({ "name": "RESTORE_S3_PREFIX", "value": s3.prefix }),
        secret_env(
            "RESTORE_S3_ACCESS_KEY",
            &s3.credentials_secret,
            "access-key",
        ),
        secret_env(
            "RESTORE_S3_SECRET_KEY",
            &s3.credentials_secret,
            "secret-key",
        ),
        json!({ "name": "OPERATOR_LOG_FORMAT", "value": "json" }),
    ];
    if let Some(backup) = &restore.backup {
        env.push(json!({ "name": "RESTORE_BACKUP", "value": backup }));
    }
    if let Some(point) = &restore.point_in_time {
        env.push(json!({ "name": "RESTORE_POINT_IN_TIME", "value": point }));
    }
    Some(json!({
        "name": "restore",
        "image": image,
        "command": [super::backup::OPERATOR_BINARY, "restore-fetch"],
        "env": env,
        // The operator's image runs as a user of its own; the empty volume is root's (the
        // server's entrypoint gives it to mysql, and start.sh the fetched files).
        "securityContext": { "runAsUser": 0, "runAsNonRoot": false, "allowPrivilegeEscalation": false },
        "volumeMounts": [{ "name": "data", "mountPath": "/var/lib/mysql" }],
    }))
}

/// The clone donor beside each server (donor.sh): the same image (mariadb-backup reads the
/// server's files, so it must be the server's version), the data volume, and the passwords
/// it checks and logs in with.
fn donor_container(naming: &Naming<'_>, cluster: &SnsCluster) -> Value {
    let secret = naming.name(SECRET);
    json!({
        "name": "clone-donor",
        "image": cluster.spec.mysql.image,
        "command": ["bash", "/etc/sns/mysql/donor.sh"],
        "env": [
            secret_env("MARIADB_ROOT_PASSWORD", &secret, ROOT_PASSWORD),
            secret_env("REPLICATION_PASSWORD", &secret, REPLICATION_PASSWORD),
        ],
        "ports": [{ "name": "clone", "containerPort": CLONE_PORT }],
        "volumeMounts": [
            { "name": "data", "mountPath": "/var/lib/mysql" },
            { "name": "config", "mountPath": "/etc/sns/mysql", "readOnly": true },
            { "name": "donor", "mountPath": "/run/sns-donor" },
        ],
    })
}

/// mysqld-exporter beside each server: it sees its own server even when that server is
/// unreachable from elsewhere, needs no network grant (127.0.0.1 only), and Prometheus
/// scrapes every server under its stable pod name.
fn exporter_container(cluster: &SnsCluster, secret: &str) -> Value {
    json!({
        "name": "mysqld-exporter",
        "image": cluster.spec.monitoring.mysqld_exporter_image,
        // 127.0.0.1, not localhost, which may resolve to ::1 (the account is for 127.0.0.1).
        "args": [
            format!("--mysqld.address=127.0.0.1:{MYSQL_PORT}"),
            format!("--mysqld.username={EXPORTER_USER}"),
        ],
        "env": [secret_env("MYSQLD_EXPORTER_PASSWORD", secret, EXPORTER_PASSWORD)],
        "ports": [{ "name": "metrics", "containerPort": EXPORTER_PORT }],
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::cluster::fixtures::{build, file, named};
    use super::*;

    #[test]
    fn gtid_settings_and_user_config_reach_my_cnf() {
        let objects = build(json!({"mysql": {"config": {"max_connections": "500"}}}));
        let cnf = file(&objects, "prod-mysql", "sns.cnf");
        assert!(cnf.contains("gtid_strict_mode = ON"));
        assert!(cnf.contains("log_slave_updates = ON"));
        assert!(cnf.contains("max_connections = 500"));
        assert!(cnf.contains("thread_handling = pool-of-threads"));
    }

    #[test]
    fn semisync_is_the_default_on_every_server_and_async_turns_it_off() {
        let objects = build(json!({}));
        let cnf = file(&objects, "prod-mysql", "sns.cnf");
        for line in [
            "rpl_semi_sync_master_enabled = ON\n",
            "rpl_semi_sync_slave_enabled = ON\n",
            "rpl_semi_sync_master_wait_point = AFTER_SYNC\n",
            "rpl_semi_sync_master_timeout = 10000\n",
            "rpl_semi_sync_master_wait_no_slave = OFF\n",
        ] {
            assert!(cnf.contains(line), "{line} in {cnf}");
        }
        let objects = build(json!({"mysql": {"semisyncTimeoutMs": 2500}}));
        let cnf = file(&objects, "prod-mysql", "sns.cnf");
        assert!(
            cnf.contains("rpl_semi_sync_master_timeout = 2500\n"),
            "{cnf}"
        );

        let objects = build(json!({"mysql": {"durability": "async"}}));
        let cnf = file(&objects, "prod-mysql", "sns.cnf");
        assert!(
            cnf.contains("rpl_semi_sync_master_enabled = OFF\n"),
            "{cnf}"
        );
        assert!(cnf.contains("rpl_semi_sync_slave_enabled = OFF\n"), "{cnf}");
        assert!(!cnf.contains("wait_point"), "{cnf}");
    }

    #[test]
    fn the_primary_service_and_topology_follow_the_recorded_primary() {
        let objects = build(json!({}));
        assert_eq!(
            file(&objects, "prod-mysql-topology", "primary"),
            "prod-mysql-0"
        );
        let mut cluster: SnsCluster = serde_json::from_value(json!({
            "apiVersion": "sns-platform.dev/v1alpha1", "kind": "SnsCluster",
            "metadata": {"name": "prod", "namespace": "sns"}, "spec": {},
            "status": {"mysql": {"primary": "prod-mysql-2"}},
        }))
        .unwrap();
        cluster.metadata.uid = None;
        let objects = super::super::cluster::build_cluster(&cluster, false).unwrap();
        assert_eq!(
            file(&objects, "prod-mysql-topology", "primary"),
            "prod-mysql-2"
        );
        let service = serde_json::to_value(named(&objects.services, "prod-mysql-primary")).unwrap();
        assert_eq!(
            service["spec"]["selector"]["statefulset.kubernetes.io/pod-name"],
            "prod-mysql-2"
        );
    }

    fn template(objects: &ClusterObjects, name: &str) -> serde_json::Value {
        serde_json::to_value(named(&objects.stateful_sets, name)).unwrap()["spec"]["template"]
            .clone()
    }

    #[test]
    fn a_configuration_change_changes_the_template_and_a_new_replica_changes_no_server_template() {
        let before = build(json!({}));
        let hash =
            &template(&before, "prod-mysql")["metadata"]["annotations"][CONFIG_HASH_ANNOTATION];
        assert!(hash.is_string(), "{hash}");
        let changed = build(json!({"mysql": {"config": {"max_connections": "500"}}}));
        assert_ne!(
            template(&changed, "prod-mysql"),
            template(&before, "prod-mysql"),
            "a configuration change is a new revision to roll"
        );
        let changed = build(json!({"redis": {"maxmemory": "1gb"}}));
        assert_ne!(
            template(&changed, "prod-redis"),
            template(&before, "prod-redis")
        );

        let more = build(json!({"mysql": {"replicas": 4}}));
        for stateful_set in ["prod-mysql", "prod-redis", "prod-orchestrator"] {
            assert_eq!(
                template(&more, stateful_set),
                template(&before, stateful_set),
                "{stateful_set}: adding replicas restarts none of its pods"
            );
        }
        let sts = serde_json::to_value(named(&more.stateful_sets, "prod-mysql")).unwrap();
        assert_eq!(sts["spec"]["replicas"], 5);
        assert_eq!(sts["spec"]["updateStrategy"]["type"], "OnDelete");
        assert_eq!(
            sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"],
            "Delete"
        );
        assert_eq!(file(&more, "prod-mysql-topology", "servers"), "5");
    }

    #[test]
    fn a_scale_down_not_yet_safe_keeps_the_running_servers() {
        let cluster = super::super::cluster::fixtures::cluster(json!({"mysql": {"replicas": 1}}));
        let inputs = BuildInputs {
            mysql_servers_kept: Some(3),
            ..BuildInputs::default()
        };
        let objects = super::super::cluster::build_cluster_with(&cluster, &inputs).unwrap();
        let sts = serde_json::to_value(named(&objects.stateful_sets, "prod-mysql")).unwrap();
        assert_eq!(sts["spec"]["replicas"], 3);
        assert_eq!(file(&objects, "prod-mysql-topology", "servers"), "3");
        let api = serde_json::to_string(named(&objects.deployments, "prod-api")).unwrap();
        assert!(
            !api.contains("prod-mysql-2.prod-mysql"),
            "the API no longer reads from a server that goes"
        );
    }

    #[test]
    fn the_exporter_is_a_sidecar_of_every_server_on_9104() {
        let objects = build(json!({}));
        let sts = serde_json::to_value(named(&objects.stateful_sets, "prod-mysql")).unwrap();
        let containers = &sts["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers[1]["name"], "clone-donor");
        assert_eq!(containers[1]["ports"][0]["containerPort"], CLONE_PORT);
        assert_eq!(containers[2]["name"], "mysqld-exporter");
        assert_eq!(containers[2]["ports"][0]["containerPort"], EXPORTER_PORT);
        assert_eq!(
            containers[2]["args"],
            json!([
                "--mysqld.address=127.0.0.1:3306",
                "--mysqld.username=exporter"
            ])
        );
        let env = containers[0]["env"].to_string();
        for variable in [
            "EXPORTER_PASSWORD",
            "MONITOR_PASSWORD",
            "ORCHESTRATOR_PASSWORD",
        ] {
            assert!(env.contains(variable), "{variable} missing from {env}");
        }
    }

    #[test]
    fn a_restored_cluster_fetches_its_backup_with_the_image_it_was_created_with() {
        let template = |objects: &ClusterObjects| {
            serde_json::to_value(named(&objects.stateful_sets, "prod-mysql")).unwrap()["spec"]
                ["template"]["spec"]
                .clone()
        };
        let plain = template(&build(json!({})));
        assert!(plain.get("initContainers").is_none(), "{plain}");
        assert!(
            !plain["containers"][0]["env"]
                .to_string()
                .contains("SNS_MYSQL_RESTORED")
        );

        let spec = json!({"restore": {
            "s3": {"endpoint": "http://s3.local:9000", "bucket": "db", "prefix": "b/",
                   "credentialsSecret": "keys"},
            "cluster": "old", "pointInTime": "2026-12-03T12:00:00Z",
        }});
        let restored = template(&build(spec.clone()));
        let fetch = &restored["initContainers"][0];
        assert_eq!(fetch["name"], "restore");
        assert_eq!(
            fetch["command"],
            json!(["/usr/local/bin/sns-operator", "restore-fetch"])
        );
        assert_eq!(
            fetch["image"],
            crate::reconcile::build::DEFAULT_OPERATOR_IMAGE
        );
        let env = fetch["env"].to_string();
        for expected in [
            "\"RESTORE_CLUSTER\",\"value\":\"old\"",
            "\"RESTORE_POINT_IN_TIME\",\"value\":\"2026-12-03T12:00:00Z\"",
            "\"RESTORE_S3_PREFIX\",\"value\":\"b/\"",
            "keys",
        ] {
            assert!(env.contains(expected), "{expected} in {env}");
        }
        assert!(
            restored["containers"][0]["env"]
                .to_string()
                .contains("SNS_MYSQL_RESTORED")
        );

        // Created by an older operator: its image stays after an upgrade.
        let mut cluster = super::super::cluster::fixtures::cluster(spec);
        cluster.status = Some(crate::crd::SnsClusterStatus {
            restore_image: Some("sns-operator:0.9".into()),
            ..Default::default()
        });
        let inputs = BuildInputs {
            operator_image: "sns-operator:1.0".into(),
            ..BuildInputs::default()
        };
        let upgraded = super::super::build_cluster_with(&cluster, &inputs).unwrap();
        assert_eq!(
            template(&upgraded)["initContainers"][0]["image"],
            "sns-operator:0.9"
        );
    }
}
