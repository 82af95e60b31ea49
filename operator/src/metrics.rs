//! Operator metrics (`operator_reconcile_*`), served as Prometheus text on `--metrics-addr`.

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
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
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(reconcile_errors.clone()))?;
        registry.register(Box::new(reconcile_seconds.clone()))?;
        registry.register(Box::new(patches.clone()))?;
        Ok(Self {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_seconds,
            patches,
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
}

/// Serves `/metrics` on `addr` until the process ends.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> anyhow::Result<()> {
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move { metrics.render() }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, router).await?;
    Ok(())
}
