//! Orchestrator: detects a failed primary, promotes a replica, and tells the operator.
//!
//! ```text
//! ConfigMap   <c>-orchestrator        orchestrator.conf.json (no password: ${ORC_TOPOLOGY_PASSWORD}
//!                                     is read from the environment by Orchestrator itself)
//! Service     <c>-orchestrator-peers  headless: stable pod DNS names
//! Service     <c>-orchestrator-raft-N one per node (replicas > 1): its raft address
//! Service     <c>-orchestrator        3000: the HTTP API (the operator's periodic check)
//! StatefulSet <c>-orchestrator        spec.mysql.orchestrator.replicas (odd) nodes, raft
//!                                     log and snapshots on a volume of their own
//! PDB         <c>-orchestrator        when replicas > 1: never below a raft majority
//! ```
//!
//! Orchestrator resolves its raft peers' names to IPs once, at start, and keeps those IPs
//! for good. A pod's IP changes when it restarts, so peers named by pod DNS names would
//! lose a restarted node for ever (and two restarts the majority). Each node is therefore
//! reached through a Service of its own, whose cluster IP never changes while the cluster
//! exists.
//!
//! After a master failover Orchestrator runs a hook that POSTs to the operator's
//! `/hooks/orchestrator/failover` (`failover::hook`) with `Authorization: Bearer <token>`
//! (Secret `<c>-orchestrator-hook`, key `token`, in the environment as `SNS_HOOK_TOKEN`) and
//! the JSON body `{cluster, namespace, failedHost, successorHost, failureType}`: `cluster` is
//! the alias DetectClusterAliasQuery gives (the SnsCluster's name), `namespace` the pod's
//! own (downward API), hosts are `<pod>.<c>-mysql` (the servers' report_host).

use k8s_openapi::api::apps::v1::StatefulSet;
use serde_json::{Value, json};

use super::cluster::{BuildError, BuildInputs, ClusterObjects};
use super::mysql::{self, MYSQL_PORT, ORCHESTRATOR_USER};
use super::naming::{
    CONFIG_HASH_ANNOTATION, Naming, config_hash, config_map, disruption_budget, headless_service,
    secret_env, service, typed,
};
use crate::crd::SnsCluster;

/// Orchestrator's HTTP port.
pub(super) const HTTP_PORT: i32 = 3000;
/// Raft's port between Orchestrator nodes.
const RAFT_PORT: i32 = 10008;
/// Size of each node's volume (raft log, snapshots, SQLite: a few MB for one cluster).
const RAFT_STORAGE: &str = "1Gi";
/// Path of the operator's failover hook.
pub const HOOK_PATH: &str = "/hooks/orchestrator/failover";

pub(super) const COMPONENT: &str = "orchestrator";
/// Generated Secret `<cluster>-orchestrator` and its key: the password of the MySQL user
/// Orchestrator inspects and rewires the topology with.
pub(super) const SECRET: &str = "orchestrator";
pub(super) const TOPOLOGY_PASSWORD: &str = "topology-password";
/// Generated Secret `<cluster>-orchestrator-hook` and its key: the bearer token the failover
/// hook presents (the names `failover::hook` reads).
pub(super) const HOOK_SECRET: &str = "orchestrator-hook";
pub(super) const HOOK_TOKEN: &str = "token";

/// Where Orchestrator reads the replication user and password (users.sql fills the table).
const REPLICATION_CREDENTIALS_QUERY: &str =
    "SELECT user_name, pass FROM sns_meta.replication_credentials LIMIT 1";

/// Replaced by the pod's ordinal when the container starts (raft needs each node's own
/// address).
const ORDINAL_PLACEHOLDER: &str = "@@ORDINAL@@";

/// Adds Orchestrator's objects to `objects`.
pub(super) fn build(
    naming: &Naming<'_>,
    cluster: &SnsCluster,
    inputs: &BuildInputs,
    objects: &mut ClusterObjects,
) -> Result<(), BuildError> {
    let name = naming.name(COMPONENT);
    let config = serde_json::to_string_pretty(&config(naming, cluster, inputs))
        .map_err(|source| BuildError::new(&format!("ConfigMap {name}"), source))?;
    objects.config_maps.push(config_map(
        naming,
        &name,
        COMPONENT,
        json!({ "orchestrator.conf.json": config }),
    )?);
    objects.services.push(headless_service(
        naming,
        &peers_service(naming),
        COMPONENT,
        json!([
            { "name": "raft", "port": RAFT_PORT, "targetPort": "raft" },
            { "name": "http", "port": HTTP_PORT, "targetPort": "http" },
        ]),
    )?);
    objects.services.push(service(
        naming,
        &name,
        COMPONENT,
        json!({
            "selector": naming.selector(COMPONENT),
            "ports": [{ "name": "http", "port": HTTP_PORT, "targetPort": "http" }],
        }),
    )?);
    if cluster.spec.mysql.orchestrator.replicas > 1 {
        for (index, node) in raft_nodes(naming, cluster).iter().enumerate() {
            let mut selector = naming.selector(COMPONENT);
            selector["statefulset.kubernetes.io/pod-name"] = json!(format!("{name}-{index}"));
            objects.services.push(service(
                naming,
                node,
                COMPONENT,
                json!({
                    "selector": selector,
                    // Raft runs before a node is ready (readiness needs a leader).
                    "publishNotReadyAddresses": true,
                    "ports": [
                        { "name": "raft", "port": RAFT_PORT, "targetPort": "raft" },
                        { "name": "http", "port": HTTP_PORT, "targetPort": "http" },
                    ],
                }),
            )?);
        }
    }
    objects
        .stateful_sets
        .push(stateful_set(naming, cluster, &config_hash(&[&config]))?);
    let replicas = cluster.spec.mysql.orchestrator.replicas;
    if replicas > 1 {
        objects
            .disruption_budgets
            .push(disruption_budget(naming, COMPONENT, replicas)?);
    }
    Ok(())
}

fn peers_service(naming: &Naming<'_>) -> String {
    naming.name("orchestrator-peers")
}

/// What a node's readiness probe asks: with raft, whether the node is a leader or a
/// follower of a raft group (a node that lost its peers is not ready, and the Service sends
/// the operator's calls elsewhere); alone, whether it serves HTTP.
fn readiness_path(replicas: i32) -> &'static str {
    if replicas > 1 {
        "/api/raft-health"
    } else {
        "/api/lb-check"
    }
}

/// Each node's raft address: a Service of its own, `<c>-orchestrator-raft-N` for pod
/// `<c>-orchestrator-N`. Not the pod's own name: in the pod that resolves to the pod's IP
/// (/etc/hosts), which would become the node's raft identity.
fn raft_nodes(naming: &Naming<'_>, cluster: &SnsCluster) -> Vec<String> {
    (0..cluster.spec.mysql.orchestrator.replicas)
        .map(|index| raft_service(naming, &index.to_string()))
        .collect()
}

fn raft_service(naming: &Naming<'_>, ordinal: &str) -> String {
    naming.name(&format!("orchestrator-raft-{ordinal}"))
}

/// The command Orchestrator runs (with bash) after a master failover: a POST to the
/// operator. Orchestrator fills in the `{placeholders}`; bash expands `${SNS_HOOK_TOKEN}` and
/// `${POD_NAMESPACE}` from the environment, so the token is in no file and the ConfigMap is
/// the same in every namespace. Retries cover an operator restarting; a hook lost anyway is
/// caught by the operator's periodic look at Orchestrator's API.
fn hook(operator_address: &str) -> String {
    let body = r#"{\"cluster\":\"{failureClusterAlias}\",\"namespace\":\"${POD_NAMESPACE}\",\"failedHost\":\"{failedHost}\",\"successorHost\":\"{successorHost}\",\"failureType\":\"{failureType}\"}"#;
    format!(
        "curl -fsS --max-time 10 --retry 5 --retry-connrefused --retry-delay 2 -X POST \
         -H \"Authorization: Bearer ${{SNS_HOOK_TOKEN}}\" -H 'Content-Type: application/json' \
         --data \"{body}\" 'http://{operator_address}{HOOK_PATH}'"
    )
}

/// orchestrator.conf.json.
fn config(naming: &Naming<'_>, cluster: &SnsCluster, inputs: &BuildInputs) -> Value {
    // Server 0 only: Orchestrator finds the others through it (its primary, SHOW SLAVE
    // HOSTS), and a seed list naming every server would change, and so restart
    // Orchestrator, with each replica added or removed. Scale-down never removes server 0.
    let seeds: Vec<String> = naming
        .pod_hosts(mysql::COMPONENT, 1)
        .iter()
        .map(|host| format!("{host}:{MYSQL_PORT}"))
        .collect();
    let mut config = json!({
        "Debug": false,
        "ListenAddress": format!(":{HTTP_PORT}"),
        // Each node keeps its own SQLite; raft (with more than one node) replicates it.
        "BackendDB": "sqlite",
        "SQLite3DataFile": "/var/lib/orchestrator/orchestrator.db",
        "MySQLTopologyUser": ORCHESTRATOR_USER,
        // Orchestrator reads `${NAME}` here from its environment (a Secret).
        "MySQLTopologyPassword": "${ORC_TOPOLOGY_PASSWORD}",
        "DefaultInstancePort": MYSQL_PORT,
        // Servers are known from the start, not only once someone asks Orchestrator to
        // discover one.
        "DiscoverySeeds": seeds,
        "DiscoverByShowSlaveHosts": true,
        // Servers are named by their stable DNS names (report_host = <pod>.<service>, the
        // names ProxySQL and the seeds use); pod IPs change on every restart.
        "HostnameResolveMethod": "none",
        "MySQLHostnameResolveMethod": "@@report_host",
        // A dead primary is noticed at the first poll that fails (and its replicas are
        // read again at once): the poll period is most of the time to a failover.
        "InstancePollSeconds": 3,
        // The credentials a demoted primary replicates with after a switchover: MariaDB
        // keeps them in master.info, where Orchestrator cannot read them, so every server
        // holds them in a table of its own (users.sql, never replicated).
        "ReplicationCredentialsQuery": REPLICATION_CREDENTIALS_QUERY,
        "SkipMaxScaleCheck": true,
        // The operator finds the SnsCluster by this alias (hook body, /api/master/<alias>).
        "DetectClusterAliasQuery": format!("SELECT '{}'", naming.cluster),
        // Automatic recovery for every cluster this Orchestrator sees (only this one).
        "RecoverMasterClusterFilters": ["*"],
        "RecoverIntermediateMasterClusterFilters": ["*"],
        // Orchestrator makes the promoted server a primary itself: replication reset and
        // read_only=0, which is what moves it to ProxySQL's writer hostgroup.
        "ApplyMySQLPromotionAfterMasterFailover": true,
        "DetachLostReplicasAfterMasterFailover": true,
        "FailMasterPromotionIfSQLThreadNotUpToDate": true,
        "MasterFailoverLostInstancesDowntimeMinutes": 10,
        // Another failover of the same cluster within 5 minutes waits (no flapping), yet a
        // second real failure the same day is recovered (the default blocks for an hour).
        "RecoveryPeriodBlockSeconds": 300,
        "ProcessesShellCommand": "bash",
        // Only a master failover changes the primary the operator records.
        "PostMasterFailoverProcesses": [hook(&inputs.operator_address)],
    });
    if cluster.spec.mysql.orchestrator.replicas > 1 {
        config["RaftEnabled"] = json!(true);
        config["RaftDataDir"] = json!("/var/lib/orchestrator");
        // Listen on every address; peers know this node by its own Service
        // (RaftAdvertise), whose IP outlives the pod's.
        config["RaftBind"] = json!("0.0.0.0");
        config["RaftAdvertise"] = json!(raft_service(naming, ORDINAL_PLACEHOLDER));
        config["DefaultRaftPort"] = json!(RAFT_PORT);
        config["RaftNodes"] = json!(raft_nodes(naming, cluster));
    }
    config
}

fn stateful_set(
    naming: &Naming<'_>,
    cluster: &SnsCluster,
    hash: &str,
) -> Result<StatefulSet, BuildError> {
    let name = naming.name(COMPONENT);
    let spec = &cluster.spec.mysql.orchestrator;
    // The only per-pod value (RaftAdvertise) holds the pod's ordinal, digits: plain sed is
    // safe.
    let start = format!(
        "sed \"s/{ORDINAL_PLACEHOLDER}/${{POD_NAME##*-}}/g\" /etc/orchestrator/orchestrator.conf.json \
         >/run/orchestrator/orchestrator.conf.json && \
         exec /usr/local/orchestrator/orchestrator --config=/run/orchestrator/orchestrator.conf.json http"
    );
    typed(
        &format!("StatefulSet {name}"),
        json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": naming.metadata(&name, COMPONENT),
            "spec": {
                "serviceName": peers_service(naming),
                "replicas": spec.replicas,
                // Raft needs a majority up together; ordered start would wait for node 0 to
                // be ready, which it is not without peers.
                "podManagementPolicy": "Parallel",
                "selector": { "matchLabels": naming.selector(COMPONENT) },
                "template": {
                    "metadata": {
                        "labels": naming.labels(COMPONENT),
                        "annotations": { CONFIG_HASH_ANNOTATION: hash },
                    },
                    "spec": {
                        "containers": [{
                            "name": "orchestrator",
                            "image": spec.image,
                            "command": ["sh", "-c", start],
                            "env": [
                                { "name": "POD_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } },
                                { "name": "POD_NAMESPACE", "valueFrom": { "fieldRef": { "fieldPath": "metadata.namespace" } } },
                                secret_env("ORC_TOPOLOGY_PASSWORD", &naming.name(SECRET), TOPOLOGY_PASSWORD),
                                secret_env("SNS_HOOK_TOKEN", &naming.name(HOOK_SECRET), HOOK_TOKEN),
                            ],
                            "ports": [
                                { "name": "http", "containerPort": HTTP_PORT },
                                { "name": "raft", "containerPort": RAFT_PORT },
                            ],
                            "readinessProbe": { "httpGet": { "path": readiness_path(spec.replicas), "port": "http" } },
                            "livenessProbe": { "tcpSocket": { "port": "http" }, "initialDelaySeconds": 10 },
                            "volumeMounts": [
                                { "name": "config", "mountPath": "/etc/orchestrator", "readOnly": true },
                                { "name": "run", "mountPath": "/run/orchestrator" },
                                { "name": "data", "mountPath": "/var/lib/orchestrator" },
                            ],
                        }],
                        "volumes": [
                            { "name": "config", "configMap": { "name": name } },
                            { "name": "run", "emptyDir": {} },
                        ],
                    },
                },
                // The raft log, snapshots and SQLite backend: a restarted node resumes from
                // its own log instead of a full snapshot from the leader, and a node that
                // restarts while another is down still counts towards the majority.
                "volumeClaimTemplates": [{
                    "metadata": { "name": "data" },
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": { "requests": { "storage": RAFT_STORAGE } },
                    },
                }],
            },
        }),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::cluster::fixtures::{build, cluster, file, named};
    use super::super::cluster::{BuildInputs, build_cluster_with};

    fn conf(objects: &super::super::cluster::ClusterObjects) -> Value {
        serde_json::from_str(&file(
            objects,
            "prod-orchestrator",
            "orchestrator.conf.json",
        ))
        .unwrap()
    }

    #[test]
    fn the_config_is_json_with_automatic_recovery_for_this_cluster() {
        let config = conf(&build(json!({})));
        assert_eq!(config["RecoverMasterClusterFilters"], json!(["*"]));
        assert_eq!(
            config["RecoverIntermediateMasterClusterFilters"],
            json!(["*"])
        );
        assert_eq!(config["ApplyMySQLPromotionAfterMasterFailover"], true);
        assert_eq!(config["DetectClusterAliasQuery"], "SELECT 'prod'");
        assert_eq!(config["MySQLTopologyUser"], "orchestrator");
        assert_eq!(config["MySQLTopologyPassword"], "${ORC_TOPOLOGY_PASSWORD}");
        assert_eq!(
            config["DiscoverySeeds"],
            json!(["prod-mysql-0.prod-mysql:3306"])
        );
    }

    #[test]
    fn the_failover_hook_posts_to_the_operator_with_the_token_from_the_environment() {
        let objects = build_cluster_with(
            &cluster(json!({})),
            &BuildInputs {
                owned: false,
                operator_address: "op.ops.svc:9000".into(),
                mysql_servers_kept: None,
                operator_image: "op:1".into(),
            },
        )
        .unwrap();
        let config = conf(&objects);
        let hook = config["PostMasterFailoverProcesses"][0].as_str().unwrap();
        assert!(hook.starts_with("curl "), "{hook}");
        assert!(hook.contains("'http://op.ops.svc:9000/hooks/orchestrator/failover'"));
        assert!(hook.contains(r#"-H "Authorization: Bearer ${SNS_HOOK_TOKEN}""#));
        for placeholder in ["{failureClusterAlias}", "{failedHost}", "{successorHost}"] {
            assert!(hook.contains(placeholder), "{placeholder} missing: {hook}");
        }
        let default = conf(&build(json!({})));
        assert!(
            default["PostMasterFailoverProcesses"][0]
                .as_str()
                .unwrap()
                .contains(
                    "http://sns-operator-metrics.sns-system.svc:8080/hooks/orchestrator/failover"
                )
        );
        let sts =
            serde_json::to_string(named(&objects.stateful_sets, "prod-orchestrator")).unwrap();
        assert!(sts.contains(r#""secretKeyRef":{"key":"token","name":"prod-orchestrator-hook"}"#));
    }

    /// Runs the hook as Orchestrator would (placeholders filled in, then bash) with `curl`
    /// replaced by a function that prints its arguments: the operator gets a JSON body and
    /// the token from the environment.
    #[test]
    fn the_hook_sends_json_and_the_token_when_bash_runs_it() {
        let config = conf(&build(json!({})));
        let command = config["PostMasterFailoverProcesses"][0]
            .as_str()
            .unwrap()
            .replace("{failureClusterAlias}", "prod")
            .replace("{failedHost}", "prod-mysql-0.prod-mysql")
            .replace("{successorHost}", "prod-mysql-1.prod-mysql")
            .replace("{failureType}", "DeadMaster");
        let output = std::process::Command::new("bash")
            .args([
                "-c",
                &format!("curl() {{ printf '%s\\n' \"$@\"; }}\n{command}"),
            ])
            .env("SNS_HOOK_TOKEN", "t0ken")
            .env("POD_NAMESPACE", "sns")
            .output()
            .unwrap();
        assert!(output.status.success());
        let args: Vec<String> = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        assert!(
            args.contains(&"Authorization: Bearer t0ken".to_owned()),
            "{args:?}"
        );
        let data = args.iter().position(|arg| arg == "--data").unwrap();
        let body: Value = serde_json::from_str(&args[data + 1]).unwrap();
        assert_eq!(
            body,
            json!({
                "cluster": "prod",
                "namespace": "sns",
                "failedHost": "prod-mysql-0.prod-mysql",
                "successorHost": "prod-mysql-1.prod-mysql",
                "failureType": "DeadMaster",
            })
        );
    }

    #[test]
    fn raft_is_configured_only_with_more_than_one_node() {
        let three = conf(&build(json!({})));
        assert_eq!(three["RaftEnabled"], true);
        assert_eq!(three["RaftBind"], "0.0.0.0");
        assert_eq!(three["RaftAdvertise"], "prod-orchestrator-raft-@@ORDINAL@@");
        assert_eq!(
            three["RaftNodes"],
            json!([
                "prod-orchestrator-raft-0",
                "prod-orchestrator-raft-1",
                "prod-orchestrator-raft-2"
            ])
        );
        let one = build(json!({"mysql": {"orchestrator": {"replicas": 1}}}));
        assert!(conf(&one).get("RaftEnabled").is_none());
        assert!(
            one.services
                .iter()
                .all(|s| s.metadata.name.as_deref() != Some("prod-orchestrator-raft-0"))
        );
        assert!(
            one.disruption_budgets
                .iter()
                .all(|pdb| pdb.metadata.name.as_deref() != Some("prod-orchestrator"))
        );
    }

    #[test]
    fn every_raft_node_has_a_service_of_its_own_that_selects_only_its_pod() {
        let objects = build(json!({}));
        for index in 0..3 {
            let spec = named(
                &objects.services,
                &format!("prod-orchestrator-raft-{index}"),
            )
            .spec
            .clone()
            .unwrap();
            assert_eq!(
                spec.cluster_ip, None,
                "a cluster IP: stable across restarts"
            );
            assert_eq!(spec.publish_not_ready_addresses, Some(true));
            assert_eq!(
                spec.selector.unwrap()["statefulset.kubernetes.io/pod-name"],
                format!("prod-orchestrator-{index}")
            );
            let ports: Vec<i32> = spec.ports.unwrap().iter().map(|p| p.port).collect();
            assert_eq!(ports, [10008, 3000]);
        }
        let sts = named(&objects.stateful_sets, "prod-orchestrator")
            .spec
            .clone()
            .unwrap();
        let claims = sts.volume_claim_templates.unwrap();
        assert_eq!(claims[0].metadata.name.as_deref(), Some("data"));
        let probe = serde_json::to_value(&sts.template.spec.unwrap().containers[0].readiness_probe)
            .unwrap();
        assert_eq!(probe["httpGet"]["path"], "/api/raft-health");
    }

    #[test]
    fn the_statefulset_runs_the_spec_replicas_behind_a_headless_service() {
        let objects = build(json!({"mysql": {"orchestrator": {"replicas": 5}}}));
        let sts = named(&objects.stateful_sets, "prod-orchestrator")
            .spec
            .clone()
            .unwrap();
        assert_eq!(sts.replicas, Some(5));
        assert_eq!(sts.service_name.as_deref(), Some("prod-orchestrator-peers"));
        let api = named(&objects.services, "prod-orchestrator")
            .spec
            .clone()
            .unwrap();
        assert_eq!(api.ports.unwrap()[0].port, 3000);
    }
}
