//! ProxySQL: two ports. 6033 sends everything to the primary (hostgroup 10); 6034 sends
//! SELECTs to the replicas (hostgroup 20). A promoted replica is moved to the writers by its
//! `read_only` going to 0.
//!
//! The API decides which reads may see a lagging replica: its writer pool (6033) serves
//! every read that must follow a write (register then log in, a post's 201 body, the
//! Idempotency-Key lookup, the migration lock), its reader pool (6034) the rest. Routing
//! every SELECT to the replicas on one port would break those reads whenever a replica lags.
//!
//! ```text
//! ConfigMap   <c>-proxysql  proxysql.cnf (template: @@SNS_PASSWORD@@, @@MONITOR_PASSWORD@@),
//!                           render.awk
//! Deployment  <c>-proxysql  renders the template into memory at start, then runs proxysql
//! Service     <c>-proxysql  6033 (writer) and 6034 (reader); the admin interface listens
//!                           on 127.0.0.1 in the pod
//! PDB         <c>-proxysql  when replicas > 1
//! ```
//!
//! ProxySQL reads its configuration file only when its database is empty: the pod keeps no
//! database (`--initial` on an emptyDir), so the file is the whole truth, and the
//! config-hash annotation rolls the pods when it changes (a server added, say).

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::json;

use super::cluster::{BuildError, ClusterObjects};
use super::mysql::{self, APP_USER, MONITOR_USER, MYSQL_PORT};
use super::mysql_init::RENDER_AWK;
use super::naming::{
    CONFIG_HASH_ANNOTATION, Naming, config_hash, config_map, disruption_budget, secret_env,
    service, typed,
};
use crate::crd::SnsCluster;

/// ProxySQL's writer port: every statement goes to the primary.
pub const PROXYSQL_PORT: i32 = 6033;
/// ProxySQL's reader port: SELECTs go to the replicas (locking reads to the primary).
pub const PROXYSQL_READER_PORT: i32 = 6034;
/// ProxySQL's admin port (inside the pod only).
const ADMIN_PORT: i32 = 6032;
/// Hostgroup of the server that takes writes.
pub(super) const WRITER_HOSTGROUP: i32 = 10;
/// Hostgroup of the servers that take reads.
pub(super) const READER_HOSTGROUP: i32 = 20;

pub(super) const COMPONENT: &str = "proxysql";
/// Generated Secret `<cluster>-proxysql` and its key: the monitor user's password.
pub(super) const SECRET: &str = "proxysql";
pub(super) const MONITOR_PASSWORD: &str = "monitor-password";

/// Adds ProxySQL's objects to `objects`.
pub(super) fn build(
    naming: &Naming<'_>,
    cluster: &SnsCluster,
    objects: &mut ClusterObjects,
) -> Result<(), BuildError> {
    let name = naming.name(COMPONENT);
    let cnf = proxysql_cnf(naming, cluster);
    objects.config_maps.push(config_map(
        naming,
        &name,
        COMPONENT,
        json!({ "proxysql.cnf": cnf, "render.awk": RENDER_AWK }),
    )?);
    objects.services.push(service(
        naming,
        &name,
        COMPONENT,
        json!({
            "selector": naming.selector(COMPONENT),
            "ports": [
                { "name": "mysql", "port": PROXYSQL_PORT, "targetPort": "mysql" },
                { "name": "mysql-reader", "port": PROXYSQL_READER_PORT, "targetPort": "mysql-reader" },
            ],
        }),
    )?);
    objects.deployments.push(deployment(
        naming,
        cluster,
        &config_hash(&[&cnf, RENDER_AWK]),
    )?);
    let replicas = cluster.spec.mysql.proxysql.replicas;
    if replicas > 1 {
        objects
            .disruption_budgets
            .push(disruption_budget(naming, COMPONENT, replicas)?);
    }
    Ok(())
}

/// proxysql.cnf (libconfig), with `@@NAME@@` placeholders for the passwords.
fn proxysql_cnf(naming: &Naming<'_>, cluster: &SnsCluster) -> String {
    let servers = naming
        .pod_hosts(mysql::COMPONENT, mysql::servers(cluster))
        .iter()
        .enumerate()
        .map(|(index, host)| {
            // Server 0 is the primary when the cluster starts; after a failover ProxySQL
            // finds the writer by read_only, whatever this list says.
            let hostgroup = if index == 0 {
                WRITER_HOSTGROUP
            } else {
                READER_HOSTGROUP
            };
            format!("    {{ address=\"{host}\", port={MYSQL_PORT}, hostgroup={hostgroup} }}")
        })
        .collect::<Vec<_>>()
        .join(",\n");
    format!(
        r#"# ProxySQL of SnsCluster {cluster}. Rendered at container start by render.awk, which
# replaces each password placeholder with the environment variable it names (a Secret).
datadir="/var/lib/proxysql"

admin_variables=
{{
    # Admin stays inside the pod (kubectl exec); the Service exposes 6033 only.
    mysql_ifaces="127.0.0.1:{ADMIN_PORT}"
}}

mysql_variables=
{{
    threads=4
    max_connections=2048
    interfaces="0.0.0.0:{PROXYSQL_PORT};0.0.0.0:{PROXYSQL_READER_PORT}"
    monitor_username="{MONITOR_USER}"
    monitor_password="@@MONITOR_PASSWORD@@"
    monitor_connect_interval=60000
    monitor_ping_interval=10000
    monitor_read_only_interval=1500
    monitor_read_only_timeout=500
    # The writer also serves reads (hostgroup 20), so reads still work while no replica is
    # up (a failover, or the only replica restarting).
    monitor_writer_is_also_reader=true
    # A new connection goes to the least loaded server.
    sessions_sort=true
    connect_retries_on_failure=10
    connect_timeout_server=3000
}}

mysql_servers=
(
{servers}
)

# The writer is whichever server has read_only=0: when Orchestrator promotes a replica
# (read_only=0) ProxySQL moves it to {WRITER_HOSTGROUP} and the old primary out.
mysql_replication_hostgroups=
(
    {{ writer_hostgroup={WRITER_HOSTGROUP}, reader_hostgroup={READER_HOSTGROUP}, check_type="read_only", comment="{cluster}" }}
)

# On the reader port ({PROXYSQL_READER_PORT}) locking reads need the primary and other SELECTs go to
# the replicas. Everything else, and everything on the writer port ({PROXYSQL_PORT}), goes to the
# user's default, the writer: a read that must see the client's own write is sent there.
mysql_query_rules=
(
    {{ rule_id=1, active=1, proxy_port={PROXYSQL_READER_PORT}, match_digest="^SELECT.*(FOR UPDATE|FOR SHARE|LOCK IN SHARE MODE)", destination_hostgroup={WRITER_HOSTGROUP}, apply=1 }},
    {{ rule_id=2, active=1, proxy_port={PROXYSQL_READER_PORT}, match_digest="^SELECT", destination_hostgroup={READER_HOSTGROUP}, apply=1 }}
)

# transaction_persistent: a transaction stays on the hostgroup it began on (BEGIN goes to
# the writer), so reads inside it see its own writes.
mysql_users=
(
    {{ username="{APP_USER}", password="@@SNS_PASSWORD@@", default_hostgroup={WRITER_HOSTGROUP}, default_schema="sns", transaction_persistent=1, active=1 }}
)
"#,
        cluster = naming.cluster,
    )
}

fn deployment(
    naming: &Naming<'_>,
    cluster: &SnsCluster,
    hash: &str,
) -> Result<Deployment, BuildError> {
    let name = naming.name(COMPONENT);
    let proxysql = &cluster.spec.mysql.proxysql;
    // Passwords go into a file in memory only, never into the ConfigMap; `--initial` makes
    // ProxySQL take that file even after a container restart left a database behind.
    let start = "set -euo pipefail\n\
                 awk -v q='\"' -f /etc/proxysql/render.awk /etc/proxysql/proxysql.cnf \
                 >/run/proxysql/proxysql.cnf\n\
                 exec proxysql -f --idle-threads --initial -c /run/proxysql/proxysql.cnf -D /var/lib/proxysql\n";
    typed(
        &format!("Deployment {name}"),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": naming.metadata(&name, COMPONENT),
            "spec": {
                "replicas": proxysql.replicas,
                "selector": { "matchLabels": naming.selector(COMPONENT) },
                "template": {
                    "metadata": {
                        "labels": naming.labels(COMPONENT),
                        "annotations": { CONFIG_HASH_ANNOTATION: hash },
                    },
                    "spec": {
                        "containers": [{
                            "name": "proxysql",
                            "image": proxysql.image,
                            "command": ["bash", "-c", start],
                            "env": [
                                secret_env("SNS_PASSWORD", &naming.name(mysql::SECRET), mysql::SNS_PASSWORD),
                                secret_env("MONITOR_PASSWORD", &naming.name(SECRET), MONITOR_PASSWORD),
                            ],
                            "ports": [
                                { "name": "mysql", "containerPort": PROXYSQL_PORT },
                                { "name": "mysql-reader", "containerPort": PROXYSQL_READER_PORT },
                            ],
                            "readinessProbe": { "tcpSocket": { "port": "mysql" } },
                            "livenessProbe": { "tcpSocket": { "port": "mysql" }, "initialDelaySeconds": 10 },
                            "volumeMounts": [
                                { "name": "config", "mountPath": "/etc/proxysql", "readOnly": true },
                                { "name": "rendered", "mountPath": "/run/proxysql" },
                                { "name": "data", "mountPath": "/var/lib/proxysql" },
                            ],
                        }],
                        "volumes": [
                            { "name": "config", "configMap": { "name": name } },
                            { "name": "rendered", "emptyDir": { "medium": "Memory" } },
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
    use serde_json::json;

    use super::super::cluster::fixtures::{build, file, ids, named};

    #[test]
    fn the_primary_is_a_writer_and_the_replicas_readers_by_stable_dns_names() {
        let objects = build(json!({"mysql": {"replicas": 3}}));
        let cnf = file(&objects, "prod-proxysql", "proxysql.cnf");
        assert!(cnf.contains(r#"{ address="prod-mysql-0.prod-mysql", port=3306, hostgroup=10 }"#));
        for index in 1..=3 {
            assert!(
                cnf.contains(&format!(
                    r#"{{ address="prod-mysql-{index}.prod-mysql", port=3306, hostgroup=20 }}"#
                )),
                "{cnf}"
            );
        }
        assert!(!cnf.contains("prod-mysql-4"));
        assert!(cnf.contains(
            r#"{ writer_hostgroup=10, reader_hostgroup=20, check_type="read_only", comment="prod" }"#
        ));
    }

    #[test]
    fn only_the_reader_port_sends_selects_to_the_replicas_and_locking_reads_never() {
        let cnf = file(&build(json!({})), "prod-proxysql", "proxysql.cnf");
        assert!(cnf.contains(r#"interfaces="0.0.0.0:6033;0.0.0.0:6034""#));
        let writer = cnf
            .find(r#"proxy_port=6034, match_digest="^SELECT.*(FOR UPDATE"#)
            .unwrap();
        let reader = cnf
            .find(r#"proxy_port=6034, match_digest="^SELECT", destination_hostgroup=20"#)
            .unwrap();
        assert!(
            writer < reader,
            "the FOR UPDATE rule must be evaluated first"
        );
        // No rule applies on the writer port: reads after writes see them.
        let rules = cnf.split("mysql_query_rules=").nth(1).unwrap();
        let rules = &rules[..rules.find("\n)\n").unwrap()];
        assert_eq!(rules.matches("rule_id=").count(), 2, "{rules}");
        assert_eq!(rules.matches("proxy_port=6034").count(), 2, "{rules}");
        assert!(cnf.contains(r#"monitor_username="monitor""#));
        assert!(cnf.contains(r#"monitor_password="@@MONITOR_PASSWORD@@""#));
        assert!(
            cnf.contains(r#"username="sns", password="@@SNS_PASSWORD@@", default_hostgroup=10"#)
        );
    }

    #[test]
    fn the_service_exposes_the_client_ports_only_and_two_pods_get_a_budget() {
        let objects = build(json!({}));
        let service = named(&objects.services, "prod-proxysql")
            .spec
            .as_ref()
            .unwrap();
        let ports: Vec<i32> = service
            .ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| p.port)
            .collect();
        assert_eq!(ports, [6033, 6034]);
        assert!(ids(&objects).contains(&"PodDisruptionBudget/prod-proxysql".to_owned()));
        let single = build(json!({"mysql": {"proxysql": {"replicas": 1}}}));
        assert!(!ids(&single).contains(&"PodDisruptionBudget/prod-proxysql".to_owned()));
    }

    #[test]
    fn a_new_server_changes_the_config_hash_and_so_rolls_proxysql() {
        let hash = |replicas: i32| {
            let objects = build(json!({"mysql": {"replicas": replicas}}));
            let deployment = named(&objects.deployments, "prod-proxysql").clone();
            deployment
                .spec
                .unwrap()
                .template
                .metadata
                .unwrap()
                .annotations
                .unwrap()["sns-platform.dev/config-hash"]
                .clone()
        };
        assert_eq!(hash(2), hash(2));
        assert_ne!(hash(2), hash(3));
    }
}
