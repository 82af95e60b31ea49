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

/// The Orchestrator calls the reconciler needs.
pub trait Orchestrator: Send + Sync {
    /// Names of the topologies Orchestrator knows (`/api/clusters`).
    fn clusters<'a>(&'a self, base_url: &'a str) -> PlaneFuture<'a, Vec<String>>;

    /// The current primary of the cluster with this alias (`/api/master/:alias`).
    fn primary<'a>(&'a self, base_url: &'a str, alias: &'a str) -> PlaneFuture<'a, InstanceKey>;
}

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
        let http_error = |url: &str| {
            let url = url.to_owned();
            move |source| DataPlaneError::Http { url, source }
        };
        let response = self.http.get(&url).send().await.map_err(http_error(&url))?;
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

impl Orchestrator for HttpOrchestrator {
    fn clusters<'a>(&'a self, base_url: &'a str) -> PlaneFuture<'a, Vec<String>> {
        self.get(format!("{}/api/clusters", base_url.trim_end_matches('/')))
            .boxed()
    }

    fn primary<'a>(&'a self, base_url: &'a str, alias: &'a str) -> PlaneFuture<'a, InstanceKey> {
        async move {
            #[derive(Deserialize)]
            struct Instance {
                #[serde(rename = "Key")]
                key: InstanceKey,
            }
            let instance: Instance = self
                .get(format!(
                    "{}/api/master/{}",
                    base_url.trim_end_matches('/'),
                    encode_path_segment(alias)
                ))
                .await?;
            Ok(instance.key)
        }
        .boxed()
    }
}

/// Percent-encodes everything but unreserved characters, so an alias stays one path segment.
fn encode_path_segment(segment: &str) -> String {
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
    fn an_instance_key_reads_from_orchestrator_json() {
        let key: InstanceKey =
            serde_json::from_str(r#"{"Hostname": "db-1.db", "Port": 3306}"#).unwrap();
        assert_eq!(key.hostname, "db-1.db");
        assert_eq!(key.port, 3306);
    }
}
