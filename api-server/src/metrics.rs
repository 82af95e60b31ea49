//! Prometheus metrics of the API: one registry, rendered at `/metrics`.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::db::Db;
use crate::kv::{Kv, KvObserver};

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
    /// `api_likes_pending_flush`: like events not yet folded into counts.
    pub likes_pending_flush: IntGauge,
    /// `api_fanout_lag_seconds`: post committed -> its last follower's feed written.
    pub fanout_lag_seconds: Histogram,
    /// `api_fanout_outbox_pending`: fan-out jobs in the outbox (parked ones included).
    pub outbox_pending: IntGauge,
    /// `api_recovery_queue_depth`: parked fan-outs held in this process's memory.
    pub recovery_queue_depth: IntGauge,
    /// `api_recovery_replays_total`: parked fan-outs replayed once Redis answered.
    pub recovery_replays: IntCounter,
    /// `api_recovery_overflows_total`: parked fan-outs the full in-memory queue left to MySQL.
    pub recovery_overflows: IntCounter,
    /// `api_feed_fallback_reads_total`: feed pages read from MySQL because Redis failed.
    pub feed_fallback_reads: IntCounter,
    /// `api_feed_fallback_refused_total{reason}`: fallback reads answered 503, because too
    /// many were running (`busy`) or the database was too slow (`timeout`).
    pub feed_fallback_refused: IntCounterVec,
    /// `api_redis_breaker_state`: 0 closed, 1 half-open, 2 open.
    pub redis_breaker_state: IntGauge,
    redis_calls: IntCounterVec,
    redis_call_seconds: Histogram,
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
        let likes_pending_flush = IntGauge::new(
            "api_likes_pending_flush",
            "Like events not yet folded into like counts",
        )?;
        let fanout_lag_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "api_fanout_lag_seconds",
                "Time from a post's commit to its fan-out's end",
            )
            .buckets(vec![
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0,
            ]),
        )?;
        let outbox_pending = IntGauge::new(
            "api_fanout_outbox_pending",
            "Fan-out jobs waiting in the outbox, parked ones included",
        )?;
        let recovery_queue_depth = IntGauge::new(
            "api_recovery_queue_depth",
            "Parked fan-out jobs held in this process's recovery queue",
        )?;
        let recovery_replays = IntCounter::new(
            "api_recovery_replays_total",
            "Parked fan-out jobs replayed after Redis answered again",
        )?;
        let recovery_overflows = IntCounter::new(
            "api_recovery_overflows_total",
            "Parked fan-out jobs left to MySQL alone because the recovery queue was full",
        )?;
        let feed_fallback_reads = IntCounter::new(
            "api_feed_fallback_reads_total",
            "Feed pages read from MySQL because Redis was unavailable",
        )?;
        let feed_fallback_refused = IntCounterVec::new(
            Opts::new(
                "api_feed_fallback_refused_total",
                "Feed reads from MySQL refused with 503 while Redis was unavailable, by reason",
            ),
            &["reason"],
        )?;
        let redis_breaker_state = IntGauge::new(
            "api_redis_breaker_state",
            "Redis circuit breaker: 0 closed, 1 half-open, 2 open",
        )?;
        let redis_calls = IntCounterVec::new(
            Opts::new(
                "api_redis_calls_total",
                "Redis calls (a batch counts once) by outcome: ok, error, rejected by the breaker",
            ),
            &["outcome"],
        )?;
        let redis_call_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "api_redis_call_duration_seconds",
                "Time of one Redis call or batch",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            ]),
        )?;
        for collector in [
            Box::new(likes_pending_flush.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(fanout_lag_seconds.clone()),
            Box::new(outbox_pending.clone()),
            Box::new(recovery_queue_depth.clone()),
            Box::new(recovery_replays.clone()),
            Box::new(recovery_overflows.clone()),
            Box::new(feed_fallback_reads.clone()),
            Box::new(feed_fallback_refused.clone()),
            Box::new(redis_breaker_state.clone()),
            Box::new(redis_calls.clone()),
            Box::new(redis_call_seconds.clone()),
        ] {
            registry.register(collector)?;
        }
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
            likes_pending_flush,
            fanout_lag_seconds,
            outbox_pending,
            recovery_queue_depth,
            recovery_replays,
            recovery_overflows,
            feed_fallback_reads,
            feed_fallback_refused,
            redis_breaker_state,
            redis_calls,
            redis_call_seconds,
        })
    }

    /// The handles `Kv` reports its calls to.
    pub fn kv_observer(&self) -> KvObserver {
        KvObserver {
            calls: self.redis_calls.clone(),
            duration: self.redis_call_seconds.clone(),
        }
    }

    /// Renders every metric in the Prometheus text format, refreshing the pool gauges first.
    pub fn render(&self, db: &Db, kv: Option<&Kv>) -> Result<String, prometheus::Error> {
        if let Some(kv) = kv {
            self.redis_breaker_state.set(kv.breaker_state() as i64);
        }
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
