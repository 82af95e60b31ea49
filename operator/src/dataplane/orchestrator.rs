//! Orchestrator's HTTP API: which topologies it knows, and which server is the primary of one.
//!
//! Endpoints and JSON shapes relied on (Orchestrator's web API,
//! <https://github.com/openark/orchestrator/blob/master/docs/using-the-web-api.md>, and the
//! routes in `go/http/api.go`):
//!
//! - `GET /api/clusters` → `["mysql-0.mysql:3306", ...]`: the cluster names (each named after
//!   its primary's `host:port`).
//! - `GET /api/master/:clusterHint` → one *instance object* of the writable primary; the hint
//!   is a cluster name or alias (the operator configures the alias to be the SnsCluster's
//!   name). Only its `Key` is read:
//!   `{"Key": {"Hostname": "db-1.db.ns.svc", "Port": 3306}, "ReadOnly": false,
//!   "ClusterName": "...", ...}`.
//! - `GET /api/graceful-master-takeover-auto/:alias/:host/:port` → a planned switchover to
//!   that replica: the primary goes read-only, the replica catches up and is promoted, the
//!   old primary replicates from it (`-auto` starts its replication).
//! - `GET /api/ack-recovery/cluster/alias/:alias?comment=...` → acknowledges the cluster's
//!   recoveries, so that `RecoveryPeriodBlockSeconds` does not hold back the next failover.
//! - `GET /api/end-downtime/:host/:port` → ends the "lost-in-recovery" downtime a failed
//!   primary gets, so that it is again a candidate for the next promotion.
//! - `GET /api/cluster/alias/:alias` → the cluster's instance objects (only `Key` read).
//! - `GET /api/register-candidate/:host/:port/must_not` → the server is never promoted (a
//!   replica about to be removed); the rule lasts CandidateInstanceExpireMinutes (60).
//! - `GET /api/forget/:host/:port` → the server (removed) is dropped from the topology.
//! - `GET /api/set-writeable/:host/:port` → `read_only = 0` on the server (a graceful
//!   takeover that fails after turning the primary read-only leaves it so).
//! - `GET /api/raft-leader` → `"10.0.0.82:10008"`: the raft leader's advertised address
//!   (the node's own Service, whose HTTP port is 3000), or an error without raft.
//! - Acting calls sent to a raft follower are passed on to the leader by Orchestrator, but
//!   reads are answered from the node's own view, which lags the leader's after a
//!   promotion (each node polls the servers itself): the primary is read from the leader.
//! - An error is HTTP 500 with `{"Code": "ERROR", "Message": "No masters found for ...",
//!   "Details": null}`.

use std::time::Duration;

use futures::FutureExt;
use serde::Deserialize;

use super::{DataPlaneError, PlaneFuture};

/// Orchestrator's HTTP port.
pub const ORCHESTRATOR_PORT: u16 = 3000;

/// Orchestrator's base URL for a cluster: its Service `<cluster>-orchestrator`.
pub fn service_url(namespace: &str, cluster: &str) -> String {
    format!("http://{cluster}-orchestrator.{namespace}.svc:{ORCHESTRATOR_PORT}")
}

/// A MySQL server as Orchestrator names it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct InstanceKey {
    /// Host name (as the server reported it) or IP address.
    #[serde(rename = "Hostname")]
    pub hostname: String,
    /// Port.
    #[serde(rename = "Port")]
    pub port: u16,
}

/// An instance object of Orchestrator's API, of which only the key is read.
#[derive(Deserialize)]
struct Instance {
    #[serde(rename = "Key")]
    key: InstanceKey,
}

/// The Orchestrator calls the reconciler needs.
pub trait Orchestrator: Send + Sync {
    /// Names of the topologies Orchestrator knows (`/api/clusters`).
    fn clusters<'a>(&'a self, base_url: &'a str) -> PlaneFuture<'a, Vec<String>>;

    /// The current primary of the cluster with this alias (`/api/master/:alias`).
    fn primary<'a>(&'a self, base_url: &'a str, alias: &'a str) -> PlaneFuture<'a, InstanceKey>;

    /// A planned switchover of the cluster with this alias to the replica `to`; returns the
    /// promoted server.
    fn graceful_takeover<'a>(
        &'a self,
        base_url: &'a str,
        alias: &'a str,
        to: &'a InstanceKey,
    ) -> PlaneFuture<'a, InstanceKey>;

    /// Acknowledges the recoveries of the cluster with this alias, and ends the downtime of
    /// the server `failed` they left behind.
    fn acknowledge_recovery<'a>(
        &'a self,
        base_url: &'a str,
        alias: &'a str,
        failed: &'a InstanceKey,
    ) -> PlaneFuture<'a, ()>;

    /// The servers Orchestrator knows in the cluster with this alias.
    fn instances<'a>(
        &'a self,
        base_url: &'a str,
        alias: &'a str,
    ) -> PlaneFuture<'a, Vec<InstanceKey>>;

    /// Keeps `server` from being promoted (it is about to be removed).
    fn never_promote<'a>(
        &'a self,
        base_url: &'a str,
        server: &'a InstanceKey,
    ) -> PlaneFuture<'a, ()>;

    /// Drops a removed `server` from the topology.
    fn forget<'a>(&'a self, base_url: &'a str, server: &'a InstanceKey) -> PlaneFuture<'a, ()>;

    /// Makes `server` writable (`read_only = 0`): the primary a failed takeover left
    /// read-only.
    fn set_writable<'a>(
        &'a self,
        base_url: &'a str,
        server: &'a InstanceKey,
    ) -> PlaneFuture<'a, ()>;
}

/// How long a switchover may take: the old primary's last transactions reach the replica,
/// which is then promoted (Orchestrator waits up to ReasonableMaintenanceReplicationLagSeconds).
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(60);

/// The real client.
pub struct HttpOrchestrator {
    http: reqwest::Client,
}

impl HttpOrchestrator {
    /// A client whose requests time out after `timeout`.
    pub fn new(timeout: Duration) -> Result<Self, DataPlaneError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|source| DataPlaneError::Http {
                url: String::new(),
                source,
            })?;
        Ok(Self { http })
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, url: String) -> Result<T, DataPlaneError> {
        self.get_within(url, None).await
    }

    /// A GET, with a timeout of its own instead of the client's.
    async fn get_within<T: serde::de::DeserializeOwned>(
        &self,
        url: String,
        timeout: Option<Duration>,
    ) -> Result<T, DataPlaneError> {
        let http_error = |url: &str| {
            let url = url.to_owned();
            move |source| DataPlaneError::Http { url, source }
        };
        let mut request = self.http.get(&url);
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let response = request.send().await.map_err(http_error(&url))?;
        let status = response.status();
        if !status.is_success() {
            // Orchestrator's error body; anything else is passed on as text.
            #[derive(Deserialize)]
            struct ApiResponse {
                #[serde(rename = "Message")]
                message: String,
            }
            let body = response.text().await.unwrap_or_default();
            let message = serde_json::from_str::<ApiResponse>(&body)
                .map(|r| r.message)
                .unwrap_or(body);
            return Err(DataPlaneError::OrchestratorApi {
                url,
                status: status.as_u16(),
                message,
            });
        }
        response.json().await.map_err(http_error(&url))
    }
}

impl HttpOrchestrator {
    /// The base URL of the raft leader, reached through the Service at `base_url`; the
    /// Service itself when Orchestrator runs without raft.
    async fn leader_url(&self, base_url: &str) -> Result<String, DataPlaneError> {
        let base = base_url.trim_end_matches('/');
        match self.get::<String>(format!("{base}/api/raft-leader")).await {
            Ok(leader) => {
                leader_base_url(base, &leader).ok_or_else(|| DataPlaneError::OrchestratorApi {
                    url: format!("{base}/api/raft-leader"),
                    status: 200,
                    message: format!("no raft leader (answered {leader:?})"),
                })
            }
            // "raft-leader: not running with raft setup": a single node answers for itself.
            Err(DataPlaneError::OrchestratorApi { message, .. })
                if message.contains("raft setup") =>
            {
                Ok(base.to_owned())
            }
            Err(error) => Err(error),
        }
    }
}

/// The HTTP base URL of the raft leader `leader` (`host:raftport`, as `/api/raft-leader`
/// gives it) next to the Service at `base`: an IP is used as is, a name is qualified like
/// the Service's own (`<name>.<namespace>.svc`); `None` without a leader.
fn leader_base_url(base: &str, leader: &str) -> Option<String> {
    let host = leader
        .rsplit_once(':')
        .map_or(leader, |(host, _)| host)
        .trim();
    if host.is_empty() {
        return None;
    }
    if host.parse::<std::net::IpAddr>().is_ok() || host.contains('.') {
        return Some(format!("http://{host}:{ORCHESTRATOR_PORT}"));
    }
    // http://<service>.<namespace>.svc:3000 → http://<host>.<namespace>.svc:3000
    let (scheme, rest) = base.split_once("://")?;
    let domain = rest.split_once('.').map(|(_, domain)| domain)?;
    let domain = domain.rsplit_once(':').map_or(domain, |(domain, _)| domain);
    Some(format!("{scheme}://{host}.{domain}:{ORCHESTRATOR_PORT}"))
}

impl Orchestrator for HttpOrchestrator {
    fn clusters<'a>(&'a self, base_url: &'a str) -> PlaneFuture<'a, Vec<String>> {
        self.get(format!("{}/api/clusters", base_url.trim_end_matches('/')))
            .boxed()
    }

    fn primary<'a>(&'a self, base_url: &'a str, alias: &'a str) -> PlaneFuture<'a, InstanceKey> {
        async move {
            let leader = self.leader_url(base_url).await?;
            let instance: Instance = self
                .get(format!(
                    "{leader}/api/master/{}",
                    encode_path_segment(alias)
                ))
                .await?;
            Ok(instance.key)
        }
        .boxed()
    }

    fn graceful_takeover<'a>(
        &'a self,
        base_url: &'a str,
        alias: &'a str,
        to: &'a InstanceKey,
    ) -> PlaneFuture<'a, InstanceKey> {
        async move {
            let url = format!(
                "{}/api/graceful-master-takeover-auto/{}/{}/{}",
                base_url.trim_end_matches('/'),
                encode_path_segment(alias),
                encode_path_segment(&to.hostname),
                to.port
            );
            let answer: ActionResponse =
                self.get_within(url.clone(), Some(TAKEOVER_TIMEOUT)).await?;
            let details = answer.ok_or(&url)?;
            // Details is the topology recovery; its SuccessorKey the promoted server.
            serde_json::from_value(details["SuccessorKey"].clone()).map_err(|error| {
                DataPlaneError::OrchestratorApi {
                    url,
                    status: 200,
                    message: format!("no successor in the answer: {error}"),
                }
            })
        }
        .boxed()
    }

    fn acknowledge_recovery<'a>(
        &'a self,
        base_url: &'a str,
        alias: &'a str,
        failed: &'a InstanceKey,
    ) -> PlaneFuture<'a, ()> {
        async move {
            let base = base_url.trim_end_matches('/');
            let url = format!(
                "{base}/api/ack-recovery/cluster/alias/{}?comment=recorded-by-sns-operator",
                encode_path_segment(alias)
            );
            let answer: ActionResponse = self.get(url.clone()).await?;
            answer.ok_or(&url)?;
            // Ending a downtime the server does not have is an error Orchestrator reports;
            // nothing to do about it.
            let url = format!(
                "{base}/api/end-downtime/{}/{}",
                encode_path_segment(&failed.hostname),
                failed.port
            );
            let _: Result<ActionResponse, _> = self.get(url).await;
            Ok(())
        }
        .boxed()
    }

    fn instances<'a>(
        &'a self,
        base_url: &'a str,
        alias: &'a str,
    ) -> PlaneFuture<'a, Vec<InstanceKey>> {
        async move {
            let leader = self.leader_url(base_url).await?;
            let instances: Vec<Instance> = self
                .get(format!(
                    "{leader}/api/cluster/alias/{}",
                    encode_path_segment(alias)
                ))
                .await?;
            Ok(instances.into_iter().map(|i| i.key).collect())
        }
        .boxed()
    }

    fn never_promote<'a>(
        &'a self,
        base_url: &'a str,
        server: &'a InstanceKey,
    ) -> PlaneFuture<'a, ()> {
        self.act_on(base_url, "register-candidate", server, "/must_not")
            .boxed()
    }

    fn forget<'a>(&'a self, base_url: &'a str, server: &'a InstanceKey) -> PlaneFuture<'a, ()> {
        self.act_on(base_url, "forget", server, "").boxed()
    }

    fn set_writable<'a>(
        &'a self,
        base_url: &'a str,
        server: &'a InstanceKey,
    ) -> PlaneFuture<'a, ()> {
        self.act_on(base_url, "set-writeable", server, "").boxed()
    }
}

impl HttpOrchestrator {
    /// An acting call on one server: `/api/<action>/<host>/<port><suffix>`.
    async fn act_on(
        &self,
        base_url: &str,
        action: &str,
        server: &InstanceKey,
        suffix: &str,
    ) -> Result<(), DataPlaneError> {
        let url = format!(
            "{}/api/{action}/{}/{}{suffix}",
            base_url.trim_end_matches('/'),
            encode_path_segment(&server.hostname),
            server.port
        );
        let answer: ActionResponse = self.get(url.clone()).await?;
        answer.ok_or(&url).map(|_| ())
    }
}

/// Orchestrator's answer to an acting call: `Code` is `OK` or `ERROR`, `Details` what it did.
#[derive(Deserialize)]
struct ActionResponse {
    #[serde(rename = "Code")]
    code: String,
    #[serde(rename = "Message", default)]
    message: String,
    #[serde(rename = "Details", default)]
    details: serde_json::Value,
}

impl ActionResponse {
    fn ok_or(self, url: &str) -> Result<serde_json::Value, DataPlaneError> {
        if self.code == "OK" {
            Ok(self.details)
        } else {
            Err(DataPlaneError::OrchestratorApi {
                url: url.to_owned(),
                status: 200,
                message: self.message,
            })
        }
    }
}

/// Percent-encodes everything but unreserved characters, so an alias stays one path segment
/// (or a value one query parameter).
pub fn encode_path_segment(segment: &str) -> String {
    segment
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_stay_one_path_segment() {
        assert_eq!(encode_path_segment("sns-prod"), "sns-prod");
        assert_eq!(encode_path_segment("db-0.db:3306"), "db-0.db%3A3306");
        assert_eq!(encode_path_segment("a/b"), "a%2Fb");
    }

    #[test]
    fn the_leader_is_reached_at_its_own_service() {
        let base = "http://prod-orchestrator.shop.svc:3000";
        assert_eq!(
            leader_base_url(base, "10.0.0.82:10008").as_deref(),
            Some("http://10.0.0.82:3000")
        );
        assert_eq!(
            leader_base_url(base, "prod-orchestrator-raft-1:10008").as_deref(),
            Some("http://prod-orchestrator-raft-1.shop.svc:3000")
        );
        assert_eq!(leader_base_url(base, ""), None);
    }

    #[test]
    fn an_instance_key_reads_from_orchestrator_json() {
        let key: InstanceKey =
            serde_json::from_str(r#"{"Hostname": "db-1.db", "Port": 3306}"#).unwrap();
        assert_eq!(key.hostname, "db-1.db");
        assert_eq!(key.port, 3306);
    }
}
