//! MySQL failovers. Orchestrator decides and promotes; the operator never promotes. It
//! records what happened and moves the `role=primary` label, so the primary Service follows.
//!
//! ```text
//! POST /hooks/orchestrator/failover  (hook.rs: Bearer token of <cluster>-orchestrator-hook) ─┐
//! reconcile: Orchestrator's /api/master/<cluster>, else the one writable server (health.rs) ─┴─►
//! record::observe_primary(pod)
//!   status.mysql.primary is already that pod ─► nothing (why a failover counts once)
//!   no primary recorded yet ─► record it (the first primary is no failover)
//!   another pod ─► status write conditional on the resourceVersion read (a concurrent writer
//!                  makes it fail with 409: read again, decide again)
//!                  ─► primary, failoverCount+1, lastFailover {time, from, to}
//!                  ─► Event `Failover` and operator_failovers_total
//! record::ensure_primary_label: the label off every other pod first, then onto the primary
//! ```
//!
//! Once replication is healthy again, `switchover` acknowledges the recovery in
//! Orchestrator (so the next failover is not held back) and carries out a switchover asked
//! for with the annotation `sns-platform.dev/switchover`.
//!
//! The reconciler's status apply never carries `status.mysql`, so only this module writes it:
//! a reconcile working from a stale cache cannot undo a recorded failover.

pub mod hook;
pub mod record;
pub mod switchover;

pub use hook::{FailoverHook, failover_hook};
pub use record::{Observed, ROLE_LABEL, ensure_primary_label, observe_primary};
pub use switchover::{
    SWITCHOVER_ANNOTATION, acknowledge_last_failover, announce_switchover, hand_over, instance_key,
    publish, switch_over_if_asked,
};
