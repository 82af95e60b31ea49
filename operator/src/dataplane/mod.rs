//! The data plane seen from the operator: the Redis Cluster, MySQL replication and
//! Orchestrator, each behind a small trait.
//!
//! Each trait has two implementations. The real ones (`redis`, `mysql`, `orchestrator`)
//! talk to the servers and are tested against real redis-server and MariaDB processes and an
//! HTTP server that answers like Orchestrator (`operator/tests/dataplane.rs`). The second is
//! [`scripted::Scripted`], which the Kubernetes tests use: under KWOK pod IPs are fake and
//! nothing answers there (TESTENV.md), so those tests script what the data plane says.
//!
//! ```text
//! controller ─► health::check ─► DataPlane { redis, mysql, orchestrator }
//!                                   │        │        └─ GET /api/master/<cluster>
//!                                   │        └─ SHOW ALL SLAVES STATUS, @@read_only
//!                                   └─ CLUSTER INFO / NODES, bootstrap (MEET, ADDSLOTSRANGE, REPLICATE)
//! ```

mod cluster_nodes;
pub mod mysql;
pub mod orchestrator;
mod plane;
pub mod redis;
pub mod scripted;

pub use self::mysql::{
    BinlogListing, BinlogReader, CloneProgress, Durability, MysqlLogin, MysqlReplication,
    MysqlServer, PrimaryStatus, ReplicaHealth, ReplicaStatus, ReplicationHealth,
    ReplicationProblem,
};
pub use self::orchestrator::{InstanceKey, Orchestrator};
pub use self::plane::{DataPlane, DataPlaneError, PlaneFuture};
pub use self::redis::{BootstrapReport, ClusterHealth, RedisCluster, RedisNode};
