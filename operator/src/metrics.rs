//! Operator metrics (`operator_reconcile_*`, `operator_failovers_total`,
//! `operator_failover_hooks_total`, `operator_leader`, `operator_backup_failing`,
//! `operator_binlog_archive_failing`),
//! served as Prometheus text on `--metrics-addr` by `server`.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// The operator's metrics in their own registry.
pub struct Metrics {
    registry: Registry,
    /// `operator_reconcile_total`.
    pub reconciles: IntCounter,
    /// `operator_reconcile_errors_total{step}`.
    pub reconcile_errors: IntCounterVec,
    /// `operator_reconcile_duration_seconds`.
    pub reconcile_seconds: Histogram,
    /// `operator_reconcile_patches_total{cluster, kind}`: writes sent to the API server.
    pub patches: IntCounterVec,
    /// `operator_failovers_total{cluster}`: MySQL failovers recorded (each counted once).
    pub failovers: IntCounterVec,
    /// `operator_failover_hooks_total{cluster}`: authenticated reports from Orchestrator's
    /// hook (with the periodic check's catches, failovers seen; a lost hook shows as a
    /// failover without a hook).
    pub failover_hooks: IntCounterVec,
    /// `operator_leader`: 1 while this process holds the leader Lease and reconciles.
    pub is_leader: IntGauge,
    /// `operator_backup_failing{cluster}`: 1 while a cluster with `spec.backup` has no
    /// backup from its last scheduled run, or its bucket cannot be read.
    pub backup_failing: IntGaugeVec,
    /// `operator_binlog_archive_failing{cluster}`: 1 while archiving a cluster's binary
    /// logs has failed for three archive intervals (at least two minutes).
    pub binlog_archive_failing: IntGaugeVec,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let reconciles = IntCounter::new("operator_reconcile_total", "Reconciles run")?;
        let reconcile_errors = IntCounterVec::new(
            Opts::new(
                "operator_reconcile_errors_total",
                "Reconciles that failed, by step",
            ),
            &["step"],
        )?;
        let reconcile_seconds = Histogram::with_opts(HistogramOpts::new(
            "operator_reconcile_duration_seconds",
            "Time one reconcile took",
        ))?;
        let patches = IntCounterVec::new(
            Opts::new(
                "operator_reconcile_patches_total",
                "Patches sent to the API server, by cluster (namespace/name) and kind",
            ),
            &["cluster", "kind"],
        )?;
        let failovers = IntCounterVec::new(
            Opts::new(
                "operator_failovers_total",
                "MySQL failovers recorded (Orchestrator promoted a replica), by cluster",
            ),
            &["cluster"],
        )?;
        let failover_hooks = IntCounterVec::new(
            Opts::new(
                "operator_failover_hooks_total",
                "Authenticated failover reports from Orchestrator's hook, by cluster",
            ),
            &["cluster"],
        )?;
        let is_leader = IntGauge::new(
            "operator_leader",
            "1 while this operator holds the leader Lease and reconciles",
        )?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(reconcile_errors.clone()))?;
        registry.register(Box::new(reconcile_seconds.clone()))?;
        registry.register(Box::new(patches.clone()))?;
        registry.register(Box::new(failovers.clone()))?;
        registry.register(Box::new(failover_hooks.clone()))?;
        let backup_failing = IntGaugeVec::new(
            Opts::new(
                "operator_backup_failing",
                "1 while a cluster's last scheduled MySQL backup is missing or its bucket unreadable, by cluster",
            ),
            &["cluster"],
        )?;
        registry.register(Box::new(is_leader.clone()))?;
        registry.register(Box::new(backup_failing.clone()))?;
        let binlog_archive_failing = IntGaugeVec::new(
            Opts::new(
                "operator_binlog_archive_failing",
                "1 while archiving a cluster's MySQL binary logs keeps failing, by cluster",
            ),
            &["cluster"],
        )?;
        registry.register(Box::new(binlog_archive_failing.clone()))?;
        Ok(Self {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_seconds,
            patches,
            failovers,
            failover_hooks,
            is_leader,
            backup_failing,
            binlog_archive_failing,
        })
    }

    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8_lossy(&buffer).into_owned()
    }

    /// Patches of every kind sent for one cluster (`namespace/name`).
    pub fn patches_for(&self, cluster: &str) -> u64 {
        self.registry
            .gather()
            .iter()
            .filter(|family| family.name() == "operator_reconcile_patches_total")
            .flat_map(|family| family.get_metric().iter())
            .filter(|metric| {
                metric
                    .get_label()
                    .iter()
                    .any(|label| label.name() == "cluster" && label.value() == cluster)
            })
            .map(|metric| metric.get_counter().get_value() as u64)
            .sum()
    }

    /// Failovers recorded for one cluster (`namespace/name`).
    pub fn failovers_for(&self, cluster: &str) -> u64 {
        self.failovers
            .get_metric_with_label_values(&[cluster])
            .map_or(0, |counter| counter.get())
    }
}
