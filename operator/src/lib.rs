//! sns-operator: reconciles `SnsCluster` resources into the whole sns-platform (API pods,
//! MySQL with GTID replicas, ProxySQL, Orchestrator, a Redis Cluster and monitoring).
//!
//! Module map: `config` (flags/env and subcommands), `crd` (the SnsCluster resource),
//! `reconcile` (building the objects), `render` (printing them without a cluster), `controller` (the reconcile loop),
//! `telemetry` (logs), `metrics` (operator_reconcile_*).

pub mod config;
pub mod controller;
pub mod crd;
pub mod metrics;
pub mod reconcile;
pub mod render;
pub mod telemetry;
