//! Prometheus metrics of the API: one registry, rendered at `/metrics`.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry, TextEncoder,
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
    /// `api_fanout_duration_seconds`: one post's whole fan-out.
    pub fanout_seconds: Histogram,
    /// `api_fanout_feed_writes_total`: feeds addressed by fan-outs.
    pub fanout_writes: IntCounter,
    /// `api_fanout_failures_total`: fan-out attempts that will be retried.
    pub fanout_failures: IntCounter,
    /// `api_feed_reads_total{source}`: feed pages by where they came from.
    pub feed_reads: IntCounterVec,
    /// `api_feed_rebuilds_total`: feeds rebuilt from MySQL.
    pub feed_rebuilds: IntCounter,
    /// `api_likes_recounted_total`: like counts recounted by the flusher.
    pub likes_recounted: IntCounter,
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
        let fanout_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "api_fanout_duration_seconds",
                "Time to write one post into every follower's feed",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )?;
        let fanout_writes = IntCounter::new(
            "api_fanout_feed_writes_total",
            "Feeds addressed by fan-outs",
        )?;
        let fanout_failures = IntCounter::new(
            "api_fanout_failures_total",
            "Fan-out attempts that failed and will be retried",
        )?;
        let feed_reads = IntCounterVec::new(
            Opts::new("api_feed_reads_total", "Feed pages served, by source"),
            &["source"],
        )?;
        let feed_rebuilds = IntCounter::new("api_feed_rebuilds_total", "Feeds rebuilt from MySQL")?;
        let likes_recounted = IntCounter::new(
            "api_likes_recounted_total",
            "Like counts recounted from post_likes",
        )?;
        registry.register(Box::new(fanout_seconds.clone()))?;
        registry.register(Box::new(fanout_writes.clone()))?;
        registry.register(Box::new(fanout_failures.clone()))?;
        registry.register(Box::new(feed_reads.clone()))?;
        registry.register(Box::new(feed_rebuilds.clone()))?;
        registry.register(Box::new(likes_recounted.clone()))?;
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
            fanout_seconds,
            fanout_writes,
            fanout_failures,
            feed_reads,
            feed_rebuilds,
            likes_recounted,
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
