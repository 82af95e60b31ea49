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
//! The reconciler's status apply never carries `status.mysql`, so only this module writes it:
//! a reconcile working from a stale cache cannot undo a recorded failover.

pub mod hook;
pub mod record;

pub use hook::{FailoverHook, failover_hook};
pub use record::{Observed, ROLE_LABEL, ensure_primary_label, observe_primary};
