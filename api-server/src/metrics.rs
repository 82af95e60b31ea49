//! Prometheus metrics of the API: one registry, rendered at `/metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::db::Db;

/// The API's metrics, registered in their own registry.
pub struct Metrics {
    registry: Registry,
    /// `api_http_requests_total{method, route, status}`.
    pub http_requests: IntCounterVec,
    /// `api_http_request_duration_seconds{method, route, status}`.
    pub http_duration: HistogramVec,
    /// `api_db_pool_connections{pool, state}`: open and idle connections per pool.
    pub db_pool_connections: IntGaugeVec,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let labels = &["method", "route", "status"];
        let http_requests = IntCounterVec::new(
            Opts::new("api_http_requests_total", "HTTP requests answered"),
            labels,
        )?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "api_http_request_duration_seconds",
                "Time from request to response",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            labels,
        )?;
        let db_pool_connections = IntGaugeVec::new(
            Opts::new(
                "api_db_pool_connections",
                "Database pool connections by pool and state (open, idle)",
            ),
            &["pool", "state"],
        )?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(db_pool_connections.clone()))?;
        #[cfg(target_os = "linux")]
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Self {
            registry,
            http_requests,
            http_duration,
            db_pool_connections,
        })
    }

    /// Renders every metric in the Prometheus text format, refreshing the pool gauges first.
    pub fn render(&self, db: &Db) -> Result<String, prometheus::Error> {
        for (pool, open, idle) in db.pool_usage() {
            self.db_pool_connections
                .with_label_values(&[pool.as_str(), "open"])
                .set(i64::from(open));
            self.db_pool_connections
                .with_label_values(&[pool.as_str(), "idle"])
                .set(idle as i64);
        }
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        Ok(String::from_utf8_lossy(&buffer).into_owned())
    }
}
