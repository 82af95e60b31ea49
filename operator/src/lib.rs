//! sns-operator: reconciles `SnsCluster` resources into the whole sns-platform (API pods,
//! MySQL with GTID replicas, ProxySQL, Orchestrator, a Redis Cluster and monitoring).
//!
//! Module map: `config` (flags/env and subcommands), `crd` (the SnsCluster resource).

pub mod config;
pub mod crd;
