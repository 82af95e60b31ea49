//! The `SnsCluster` custom resource: spec, status, and the schema attributes the API server
//! enforces (defaults, ranges, CEL rules). Every field's doc comment is its description in
//! the CRD, so `kubectl explain snscluster.spec.redis` reads well.

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Desired state of a whole sns-platform deployment.
// Every `printcolumn(...)` repeats the same keys, which clippy takes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "sns-platform.dev",
    version = "v1alpha1",
    kind = "SnsCluster",
    plural = "snsclusters",
    shortname = "sns",
    namespaced,
    status = "SnsClusterStatus",
    doc = "A complete sns-platform deployment: API pods, MySQL with GTID replicas behind ProxySQL and Orchestrator, a Redis Cluster, and monitoring.",
    scale(
        spec_replicas_path = ".spec.api.replicas",
        status_replicas_path = ".status.api.readyReplicas"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether every component is ready"
    ),
    printcolumn(
        name = "Primary",
        type_ = "string",
        json_path = ".status.mysql.primary",
        description = "The MySQL pod that takes writes"
    ),
    printcolumn(
        name = "API",
        type_ = "integer",
        json_path = ".status.api.readyReplicas",
        description = "Ready API pods"
    ),
    printcolumn(
        name = "Redis",
        type_ = "string",
        json_path = ".status.redis.clusterState",
        description = "Redis Cluster state"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SnsClusterSpec {
    /// The API server pods.
    #[serde(default)]
    pub api: ApiSpec,
    /// MySQL (MariaDB): one primary and GTID replicas, with ProxySQL and Orchestrator.
    #[serde(default)]
    pub mysql: MysqlSpec,
    /// The Redis Cluster that holds feeds, the post cache, like deltas and rate limits.
    #[serde(default)]
    pub redis: RedisSpec,
    /// Prometheus, Alertmanager, Grafana and the exporters.
    #[serde(default)]
    pub monitoring: MonitoringSpec,
    /// Physical backups of MySQL to an S3 bucket, on a schedule, and the binary logs
    /// archived between them (none when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,
    /// Start MySQL from another cluster's backup, to a point in time when given (read once,
    /// when the cluster is created: server 0 is restored, the replicas are cloned from it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreSpec>,
    /// While true the operator changes nothing in the cluster (status included).
    #[serde(default)]
    pub paused: bool,
}

/// The API server pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiSpec {
    /// Container image of sns-api.
    #[serde(default = "default_api_image")]
    pub image: String,
    /// Number of API pods.
    #[serde(default = "default_api_replicas")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: i32,
    /// CPU and memory requests and limits of each API pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Secret (key `jwt-secret`) with the access-token signing key; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_secret_name: Option<String>,
    /// Object storage for media uploads; without it uploads are disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Spec>,
    /// More of the API's settings as environment variables (the `API_*` names of the
    /// README's configuration table, e.g. `API_RATE_LIMIT_POSTS`), after those the operator
    /// sets: a name given here wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<k8s_openapi::api::core::v1::EnvVar>,
}

/// S3-compatible object storage for uploads.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Spec {
    /// Endpoint URL, e.g. `https://s3.eu-west-1.amazonaws.com`.
    pub endpoint: String,
    /// Bucket that holds the media.
    pub bucket: String,
    /// Region the signatures are made for.
    #[serde(default = "default_s3_region")]
    pub region: String,
    /// Secret with keys `access-key` and `secret-key`.
    pub credentials_secret: String,
    /// Public base URL of the bucket; when absent, media URLs are presigned GETs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_base_url: Option<String>,
}

/// MySQL (MariaDB) with GTID replication.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MysqlSpec {
    /// Container image of MariaDB.
    #[serde(default = "default_mysql_image")]
    pub image: String,
    /// Read replicas beside the primary (at least one, so a failover has somewhere to go).
    #[serde(default = "default_mysql_replicas")]
    #[schemars(range(min = 1, max = 15))]
    pub replicas: i32,
    /// Size of each server's data volume, e.g. `20Gi`.
    #[serde(default = "default_mysql_storage")]
    pub storage: String,
    /// Extra server settings written to the `[mysqld]` section (name -> value).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub config: std::collections::BTreeMap<String, String>,
    /// What a write acknowledged to a client survives: `semisync` (the default) commits only
    /// once a replica has the transaction, so a primary lost at any moment loses no
    /// acknowledged write; `async` does not wait, and a failover loses what the replicas had
    /// not received yet.
    #[serde(default)]
    pub durability: Durability,
    /// With `semisync`: how long a commit waits for a replica before the primary carries on
    /// without one (asynchronously, until a replica catches up), in milliseconds. Writes
    /// stall this long when no replica answers.
    #[serde(default = "default_semisync_timeout_ms")]
    #[schemars(range(min = 100, max = 3_600_000))]
    pub semisync_timeout_ms: u64,
    /// Orchestrator, which detects a failed primary and promotes a replica.
    #[serde(default)]
    pub orchestrator: OrchestratorSpec,
    /// ProxySQL, which routes writes to the primary and reads to the replicas.
    #[serde(default)]
    pub proxysql: ProxysqlSpec,
}

/// Scheduled physical backups of MySQL (mariadb-backup, taken from a replica when one is
/// healthy) to `<prefix><cluster>/mysql/<backup id>/` in an S3 bucket: `data.xbstream`, then
/// `backup.json` once the copy is complete.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// The bucket.
    pub s3: BackupBucket,
    /// When, in the syntax of a CronJob's schedule (UTC), e.g. `0 3 * * *`.
    #[serde(default = "default_backup_schedule")]
    pub schedule: String,
    /// How many complete backups are kept: older ones are deleted after each new one.
    #[serde(default = "default_backup_keep")]
    #[schemars(range(min = 1, max = 1000))]
    pub keep: u32,
    /// Image of the backup job, which runs `sns-operator backup`; default: the operator's
    /// own image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// How often the primary's binary log is closed and archived to
    /// `<prefix><cluster>/binlog/` when it holds transactions not archived yet: the most a
    /// restore to the latest time can miss.
    #[serde(default = "default_archive_interval")]
    #[schemars(range(min = 5, max = 3600))]
    pub archive_interval_seconds: u32,
}

/// Where a new cluster's MySQL data comes from: a backup of another cluster (`spec.backup`
/// of that one), and the binary logs archived after it up to `pointInTime`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSpec {
    /// The bucket the other cluster backs up to.
    pub s3: BackupBucket,
    /// The cluster the backups are of (their keys start with `<prefix><cluster>/`).
    pub cluster: String,
    /// The backup to start from (its id); default: the newest complete one, or with
    /// `pointInTime` the newest finished by then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
    /// Restore the data as it was at this time (RFC 3339; to the second: transactions of
    /// that second are kept), replaying archived binary logs after the backup. The archive
    /// must reach it. Default: the backup as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_in_time: Option<String>,
    /// Image of the step that fetches the backup (`sns-operator restore-fetch`); default:
    /// the operator's image when the cluster was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// An S3 (or S3-compatible) bucket for backups.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupBucket {
    /// Endpoint URL, e.g. `https://s3.eu-west-1.amazonaws.com` or a MinIO address.
    pub endpoint: String,
    /// Bucket name.
    pub bucket: String,
    /// Region (signing).
    #[serde(default = "default_s3_region")]
    pub region: String,
    /// Key prefix before `<cluster>/mysql/`, e.g. `backups/` (empty: none).
    #[serde(default)]
    pub prefix: String,
    /// Secret with the keys `access-key` and `secret-key`.
    pub credentials_secret: String,
}

/// Orchestrator (automatic MySQL failover).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OrchestratorSpec {
    /// Container image of Orchestrator.
    #[serde(default = "default_orchestrator_image")]
    pub image: String,
    /// Orchestrator nodes (raft): an odd number, so a majority can always be formed.
    #[serde(default = "default_orchestrator_replicas")]
    #[x_kube(validation = Rule::new("self % 2 == 1").message("orchestrator.replicas must be odd (1, 3, 5...) so that raft can form a majority"))]
    #[schemars(range(min = 1, max = 7))]
    pub replicas: i32,
}

/// ProxySQL (read/write routing).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProxysqlSpec {
    /// Deploy ProxySQL. Without it the API writes to the `<cluster>-mysql-primary` Service
    /// and reads from every server by its stable name, skipping one that fails.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Container image of ProxySQL.
    #[serde(default = "default_proxysql_image")]
    pub image: String,
    /// ProxySQL pods (two or more so the proxy is not a single point of failure).
    #[serde(default = "default_proxysql_replicas")]
    #[schemars(range(min = 1, max = 20))]
    pub replicas: i32,
}

/// The Redis Cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisSpec {
    /// Container image of Redis.
    #[serde(default = "default_redis_image")]
    pub image: String,
    /// Master shards (a Redis Cluster needs at least three).
    #[serde(default = "default_redis_masters")]
    #[schemars(range(min = 3, max = 100))]
    pub masters: i32,
    /// Replicas of each master (one or more lets a master fail over).
    #[serde(default = "default_redis_replicas_per_master")]
    #[schemars(range(min = 0, max = 5))]
    pub replicas_per_master: i32,
    /// Size of each node's data volume, e.g. `5Gi`.
    #[serde(default = "default_redis_storage")]
    pub storage: String,
    /// Memory limit of each node (Redis `maxmemory`), e.g. `512mb`.
    #[serde(default = "default_redis_maxmemory")]
    pub maxmemory: String,
    /// Eviction policy. `volatile-lru` evicts only keys with a TTL, which the API gives to
    /// everything it can rebuild.
    #[serde(default)]
    pub policy: EvictionPolicy,
}

/// How MySQL replication acknowledges a commit.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// A commit returns once a replica has written it to its relay log (MariaDB's
    /// semi-synchronous replication, `AFTER_SYNC`): no acknowledged write is lost when the
    /// primary is.
    #[default]
    Semisync,
    /// A commit returns at once; replicas follow as fast as they can.
    Async,
}

/// Redis `maxmemory-policy` values the API supports.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum EvictionPolicy {
    /// Evict the least recently used keys among those with a TTL.
    #[default]
    #[serde(rename = "volatile-lru")]
    VolatileLru,
    /// Evict the least frequently used keys among those with a TTL.
    #[serde(rename = "volatile-lfu")]
    VolatileLfu,
    /// Refuse writes when memory is full.
    #[serde(rename = "noeviction")]
    NoEviction,
}

impl EvictionPolicy {
    /// The value Redis takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VolatileLru => "volatile-lru",
            Self::VolatileLfu => "volatile-lfu",
            Self::NoEviction => "noeviction",
        }
    }
}

/// The monitoring stack.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// Deploy the monitoring stack at all.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Container image of Prometheus.
    #[serde(default = "default_prometheus_image")]
    pub prometheus_image: String,
    /// Container image of Alertmanager.
    #[serde(default = "default_alertmanager_image")]
    pub alertmanager_image: String,
    /// Container image of Grafana.
    #[serde(default = "default_grafana_image")]
    pub grafana_image: String,
    /// Grafana and its dashboards.
    #[serde(default)]
    pub grafana: GrafanaSpec,
    /// Container image of mysqld-exporter.
    #[serde(default = "default_mysqld_exporter_image")]
    pub mysqld_exporter_image: String,
    /// Container image of redis-exporter.
    #[serde(default = "default_redis_exporter_image")]
    pub redis_exporter_image: String,
    /// Secret holding `alertmanager.yml` receivers (e-mail or webhook); no secret lives in git.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alertmanager_config_secret: Option<String>,
}

/// Grafana.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GrafanaSpec {
    /// Deploy Grafana with the platform's dashboards (Prometheus and Alertmanager run
    /// either way while monitoring is enabled).
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl Default for GrafanaSpec {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// Observed state, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnsClusterStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Progressing, Degraded, and one condition per component, each saying why.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// API pods.
    #[serde(default)]
    pub api: ApiStatus,
    /// MySQL topology and failovers.
    #[serde(default)]
    pub mysql: MysqlStatus,
    /// Redis Cluster health.
    #[serde(default)]
    pub redis: RedisStatus,
    /// MySQL backups as the bucket holds them (with `spec.backup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupStatus>,
    /// The image that fetches the backup of a restored cluster, fixed when it was created
    /// (an operator upgrade must not change the MySQL pod template).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_image: Option<String>,
}

/// MySQL backups as the bucket holds them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// The newest complete backup's id (its key segment under `<prefix><cluster>/mysql/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<String>,
    /// When it was complete (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup_time: Option<String>,
    /// Its size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup_bytes: Option<u64>,
    /// The server it was taken from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup_donor: Option<String>,
    /// Complete backups in the bucket.
    #[serde(default)]
    pub backups: u32,
    /// The newest transaction in the binary log archive (GTID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_gtid: Option<String>,
    /// When it was written (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_transaction_time: Option<String>,
    /// When the archive last held every transaction of the primary (RFC 3339): a restore
    /// can reach any time up to this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_complete_time: Option<String>,
    /// The server whose binary logs are archived (the primary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_server: Option<String>,
}

/// A condition in the Kubernetes style.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `Ready` or `MysqlReady`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// One-word machine-readable reason.
    pub reason: String,
    /// Human-readable explanation (why it waits, what failed).
    pub message: String,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
    /// The generation this condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// API pods.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiStatus {
    /// Pods that are ready.
    #[serde(default)]
    pub ready_replicas: i32,
}

/// MySQL topology and failovers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MysqlStatus {
    /// The pod that is the primary now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    /// The most recent failover Orchestrator performed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failover: Option<Failover>,
    /// Failovers seen since the cluster was created.
    #[serde(default)]
    pub failover_count: i64,
}

/// One failover.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Failover {
    /// When it happened (RFC 3339).
    pub time: String,
    /// The failed primary.
    pub from: String,
    /// The promoted replica.
    pub to: String,
}

/// Redis Cluster health.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisStatus {
    /// `cluster_state` as the nodes report it (`ok` or `fail`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_state: Option<String>,
}

impl Default for ApiSpec {
    fn default() -> Self {
        Self {
            image: default_api_image(),
            replicas: default_api_replicas(),
            resources: None,
            jwt_secret_name: None,
            s3: None,
            env: Vec::new(),
        }
    }
}

impl Default for MysqlSpec {
    fn default() -> Self {
        Self {
            image: default_mysql_image(),
            replicas: default_mysql_replicas(),
            storage: default_mysql_storage(),
            config: Default::default(),
            durability: Durability::default(),
            semisync_timeout_ms: default_semisync_timeout_ms(),
            orchestrator: OrchestratorSpec::default(),
            proxysql: ProxysqlSpec::default(),
        }
    }
}

impl Default for OrchestratorSpec {
    fn default() -> Self {
        Self {
            image: default_orchestrator_image(),
            replicas: default_orchestrator_replicas(),
        }
    }
}

impl Default for ProxysqlSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            image: default_proxysql_image(),
            replicas: default_proxysql_replicas(),
        }
    }
}

impl Default for RedisSpec {
    fn default() -> Self {
        Self {
            image: default_redis_image(),
            masters: default_redis_masters(),
            replicas_per_master: default_redis_replicas_per_master(),
            storage: default_redis_storage(),
            maxmemory: default_redis_maxmemory(),
            policy: EvictionPolicy::default(),
        }
    }
}

impl Default for MonitoringSpec {
    fn default() -> Self {
        Self {
            enabled: true,
            prometheus_image: default_prometheus_image(),
            alertmanager_image: default_alertmanager_image(),
            grafana_image: default_grafana_image(),
            grafana: GrafanaSpec::default(),
            mysqld_exporter_image: default_mysqld_exporter_image(),
            redis_exporter_image: default_redis_exporter_image(),
            alertmanager_config_secret: None,
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_api_image() -> String {
    "ghcr.io/sns-platform/sns-api:0.1.0".into()
}
fn default_api_replicas() -> i32 {
    2
}
fn default_s3_region() -> String {
    "us-east-1".into()
}
fn default_backup_schedule() -> String {
    "0 3 * * *".into()
}
fn default_archive_interval() -> u32 {
    60
}

fn default_backup_keep() -> u32 {
    7
}
fn default_mysql_image() -> String {
    "mariadb:10.11".into()
}
fn default_mysql_replicas() -> i32 {
    2
}
/// MariaDB's own default: long enough for a replica busy with a large transaction, short
/// enough that writes go on when every replica is gone.
fn default_semisync_timeout_ms() -> u64 {
    10_000
}

fn default_mysql_storage() -> String {
    "10Gi".into()
}
fn default_orchestrator_image() -> String {
    "openarkcode/orchestrator:v3.2.6".into()
}
fn default_orchestrator_replicas() -> i32 {
    3
}
fn default_proxysql_image() -> String {
    "proxysql/proxysql:2.6.3".into()
}
fn default_proxysql_replicas() -> i32 {
    2
}
fn default_redis_image() -> String {
    "redis:7.0".into()
}
fn default_redis_masters() -> i32 {
    3
}
fn default_redis_replicas_per_master() -> i32 {
    1
}
fn default_redis_storage() -> String {
    "5Gi".into()
}
fn default_redis_maxmemory() -> String {
    "512mb".into()
}
fn default_prometheus_image() -> String {
    "prom/prometheus:v2.53.0".into()
}
fn default_alertmanager_image() -> String {
    "prom/alertmanager:v0.27.0".into()
}
fn default_grafana_image() -> String {
    "grafana/grafana:11.1.0".into()
}
fn default_mysqld_exporter_image() -> String {
    "prom/mysqld-exporter:v0.15.1".into()
}
fn default_redis_exporter_image() -> String {
    "oliver006/redis_exporter:v1.62.0".into()
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;

    use super::*;

    #[test]
    fn an_empty_spec_takes_every_default() {
        let spec: SnsClusterSpec = serde_json::from_str("{}").unwrap();
        assert_eq!(spec.api.replicas, 2);
        assert_eq!(spec.mysql.replicas, 2);
        assert_eq!(spec.mysql.orchestrator.replicas, 3);
        assert_eq!(spec.redis.masters, 3);
        assert_eq!(spec.redis.policy, EvictionPolicy::VolatileLru);
        assert!(spec.monitoring.enabled);
        assert!(spec.monitoring.grafana.enabled);
        assert!(spec.mysql.proxysql.enabled);
        assert!(!spec.paused);
    }

    #[test]
    fn the_crd_carries_subresources_rules_and_descriptions() {
        let crd = serde_json::to_string(&SnsCluster::crd()).unwrap();
        assert!(crd.contains("\"scale\""));
        assert!(crd.contains("\"status\""));
        assert!(crd.contains("self % 2 == 1"));
        assert!(crd.contains("Master shards (a Redis Cluster needs at least three)."));
        assert!(crd.contains("\"shortNames\":[\"sns\"]"));
    }
}
