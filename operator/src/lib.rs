//! sns-operator: reconciles `SnsCluster` resources into the whole sns-platform (API pods,
//! MySQL with GTID replicas, ProxySQL, Orchestrator, a Redis Cluster and monitoring).
//!
//! Module map: `config` (flags/env and subcommands), `startup` (wiring of `run`), `crd` (the
//! SnsCluster resource), `reconcile` (building the objects), `render` (printing them without a
//! cluster), `controller` (the reconcile loop), `context` (what reconciles share), `health`
//! and `dataplane` (Redis, MySQL and Orchestrator as the servers report them), `failover`
//! (recording Orchestrator's failovers, its hook), `leader` (Lease-based leader election),
//! `server` (/metrics, /healthz, the hook), `telemetry` (logs), `metrics`.

pub mod backup;
pub mod config;
pub mod context;
pub mod controller;
pub mod crd;
pub mod dataplane;
pub mod failover;
pub mod health;
pub mod leader;
pub mod metrics;
pub mod reconcile;
pub mod render;
pub mod rollout;
pub mod server;
pub mod startup;
pub mod telemetry;
