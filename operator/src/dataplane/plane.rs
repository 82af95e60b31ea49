//! The bundle of data-plane clients, and what the clients share: one error type, bounded
//! calls, boxed futures (so the traits stay object-safe).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use super::{MysqlReplication, Orchestrator, RedisCluster, mysql, orchestrator, redis, scripted};

/// Why a data-plane call failed.
#[derive(Debug, thiserror::Error)]
pub enum DataPlaneError {
    /// A Redis node refused a command or could not be reached.
    #[error("redis {node}: {source}")]
    Redis {
        /// `host:port` of the node.
        node: String,
        /// What the client said.
        #[source]
        source: ::redis::RedisError,
    },
    /// A MySQL server refused a query or could not be reached.
    #[error("mysql {server}: {source}")]
    Mysql {
        /// `host:port` of the server.
        server: String,
        /// What the driver said.
        #[source]
        source: sqlx::Error,
    },
    /// Orchestrator could not be reached or sent something unreadable.
    #[error("orchestrator {url}: {source}")]
    Http {
        /// The URL asked.
        url: String,
        /// What the HTTP client said.
        #[source]
        source: reqwest::Error,
    },
    /// Orchestrator answered with an error (`{"Code":"ERROR","Message":...}`).
    #[error("orchestrator {url} answered {status}: {message}")]
    OrchestratorApi {
        /// The URL asked.
        url: String,
        /// HTTP status.
        status: u16,
        /// Orchestrator's message.
        message: String,
    },
    /// A MySQL server's clone donor could not be reached or read.
    #[error("clone donor {donor}: {source}")]
    Donor {
        /// `host:port` of the donor.
        donor: String,
        /// What the connection said.
        #[source]
        source: std::io::Error,
    },
    /// A call or a wait took longer than allowed.
    #[error("{what} timed out after {after:?}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// The limit.
        after: Duration,
    },
    /// The servers are in a state the operator will not change (e.g. two writable MySQL
    /// servers, or slots that a replica would have to take).
    #[error("{0}")]
    Topology(String),
}

/// The three data-plane clients the reconciler uses; every field is a cheap-clone handle.
#[derive(Clone)]
pub struct DataPlane {
    /// The Redis Cluster.
    pub redis: Arc<dyn RedisCluster>,
    /// MySQL replication.
    pub mysql: Arc<dyn MysqlReplication>,
    /// Orchestrator's HTTP API.
    pub orchestrator: Arc<dyn Orchestrator>,
}

impl DataPlane {
    /// The real clients; every network call is bounded by `timeout`.
    pub fn real(timeout: Duration) -> Result<Self, DataPlaneError> {
        Ok(Self {
            redis: Arc::new(redis::RedisClient::new(timeout)),
            mysql: Arc::new(mysql::MysqlClient::new(timeout)),
            orchestrator: Arc::new(orchestrator::HttpOrchestrator::new(timeout)?),
        })
    }

    /// The test substitute, healthy until scripted otherwise, and its script handle.
    pub fn scripted() -> (Self, Arc<scripted::Scripted>) {
        let script = Arc::new(scripted::Scripted::default());
        let plane = Self {
            redis: script.clone(),
            mysql: script.clone(),
            orchestrator: script.clone(),
        };
        (plane, script)
    }
}

/// Runs `future` for at most `after`, naming `what` if it takes longer.
pub(super) async fn bounded<T>(
    what: impl FnOnce() -> String,
    after: Duration,
    future: impl std::future::Future<Output = Result<T, DataPlaneError>>,
) -> Result<T, DataPlaneError> {
    tokio::time::timeout(after, future)
        .await
        .map_err(|_| DataPlaneError::Timeout {
            what: what(),
            after,
        })?
}

/// A boxed future borrowing its arguments, so the traits stay object-safe (`Arc<dyn ..>`).
pub type PlaneFuture<'a, T> = BoxFuture<'a, Result<T, DataPlaneError>>;
