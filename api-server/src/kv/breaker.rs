//! A circuit breaker in front of Redis: while Redis is failing, calls fail at once instead of
//! each waiting for its timeout, so request paths fall back quickly and background writers go
//! to the recovery queue.
//!
//! ```text
//! Closed ──(>= ratio failed over the window, at least min calls;
//!          or min calls failed in a row)──► Open
//! Open ──(open_for elapsed)──► HalfOpen ──(a probe succeeds)──► Closed
//!                               HalfOpen ──(a probe fails)──► Open
//! Open or HalfOpen ──(the recovery loop's health check answered)──► Closed
//! ```

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::{ErrorKind, RedisError, ServerErrorKind};

/// When the breaker opens and how it recovers.
#[derive(Debug, Clone, Copy)]
pub struct BreakerSettings {
    /// Failed share of calls that opens it (0.5 = 50 %).
    pub failure_ratio: f64,
    /// How far back calls are counted.
    pub window: Duration,
    /// Calls the window must hold before the ratio means anything.
    pub min_calls: u32,
    /// How long it stays open before letting probes through.
    pub open_for: Duration,
    /// Calls let through at once while half-open.
    pub half_open_probes: u32,
}

/// The breaker's position, as exported in `api_redis_breaker_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed = 0,
    /// A few probe calls go through.
    HalfOpen = 1,
    /// Calls fail at once.
    Open = 2,
}

/// How a call was let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// An ordinary call.
    Call,
    /// A half-open probe: its outcome decides the state.
    Probe,
}

/// Calls started and failed within one second.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    second: u64,
    calls: u32,
    failures: u32,
}

#[derive(Debug)]
enum Mode {
    Closed,
    Open { since: Instant },
    HalfOpen { in_flight: u32 },
}

#[derive(Debug)]
struct Inner {
    mode: Mode,
    buckets: VecDeque<Bucket>,
    /// Failures since the last success. A window full of earlier successes would keep the
    /// ratio under its threshold for up to half the window after Redis died; this many
    /// failures in a row say it is down now.
    failures_in_a_row: u32,
}

/// The breaker. Its lock is held only for a few arithmetic steps, never across an await.
#[derive(Debug)]
pub struct Breaker {
    settings: BreakerSettings,
    started: Instant,
    inner: Mutex<Inner>,
}

impl Breaker {
    /// A closed breaker.
    pub fn new(settings: BreakerSettings) -> Self {
        Self {
            settings,
            started: Instant::now(),
            inner: Mutex::new(Inner {
                mode: Mode::Closed,
                buckets: VecDeque::new(),
                failures_in_a_row: 0,
            }),
        }
    }

    /// Lets a call through, or refuses it while open.
    pub fn admit(&self) -> Result<Admission, RedisError> {
        let Ok(mut inner) = self.inner.lock() else {
            return Ok(Admission::Call);
        };
        match inner.mode {
            Mode::Closed => Ok(Admission::Call),
            Mode::Open { since } if since.elapsed() >= self.settings.open_for => {
                inner.mode = Mode::HalfOpen { in_flight: 1 };
                Ok(Admission::Probe)
            }
            Mode::Open { .. } => Err(open_error()),
            Mode::HalfOpen { in_flight } if in_flight < self.settings.half_open_probes => {
                inner.mode = Mode::HalfOpen {
                    in_flight: in_flight + 1,
                };
                Ok(Admission::Probe)
            }
            Mode::HalfOpen { .. } => Err(open_error()),
        }
    }

    /// Records how an admitted call ended.
    pub fn record(&self, admission: Admission, succeeded: bool) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        let now = Instant::now();
        match (admission, &inner.mode) {
            (Admission::Probe, Mode::HalfOpen { .. }) => {
                if succeeded {
                    inner.mode = Mode::Closed;
                    inner.buckets.clear();
                    inner.failures_in_a_row = 0;
                } else {
                    inner.mode = Mode::Open { since: now };
                }
                return;
            }
            // A probe that outlived its half-open period, or a call admitted before the
            // breaker opened: neither changes a decision already taken.
            (Admission::Probe, _)
            | (Admission::Call, Mode::Open { .. } | Mode::HalfOpen { .. }) => {
                return;
            }
            (Admission::Call, Mode::Closed) => {}
        }
        let second = now.duration_since(self.started).as_secs();
        let window = self.settings.window.as_secs().max(1);
        while inner
            .buckets
            .front()
            .is_some_and(|bucket| bucket.second + window <= second)
        {
            inner.buckets.pop_front();
        }
        match inner.buckets.back_mut() {
            Some(bucket) if bucket.second == second => {
                bucket.calls += 1;
                bucket.failures += u32::from(!succeeded);
            }
            _ => inner.buckets.push_back(Bucket {
                second,
                calls: 1,
                failures: u32::from(!succeeded),
            }),
        }
        if succeeded {
            inner.failures_in_a_row = 0;
            return;
        }
        inner.failures_in_a_row += 1;
        if inner.failures_in_a_row >= self.settings.min_calls {
            tracing::warn!(
                failures_in_a_row = inner.failures_in_a_row,
                "Redis circuit breaker opened"
            );
            inner.mode = Mode::Open { since: now };
            return;
        }
        let (calls, failures) = inner
            .buckets
            .iter()
            .fold((0u32, 0u32), |(c, f), b| (c + b.calls, f + b.failures));
        if calls >= self.settings.min_calls
            && f64::from(failures) >= self.settings.failure_ratio * f64::from(calls)
        {
            tracing::warn!(calls, failures, "Redis circuit breaker opened");
            inner.mode = Mode::Open { since: now };
        }
    }

    /// Redis answered a health check (the recovery loop's PING, through a fresh connection):
    /// that is a successful probe, so calls go through again at once rather than after the
    /// open period. If Redis still fails them, the breaker opens again by the usual rules.
    pub fn note_healthy(&self) {
        if let Ok(mut inner) = self.inner.lock()
            && !matches!(inner.mode, Mode::Closed)
        {
            tracing::info!("Redis answers again: circuit breaker closed");
            inner.mode = Mode::Closed;
            inner.buckets.clear();
            inner.failures_in_a_row = 0;
        }
    }

    /// Where the breaker stands.
    pub fn state(&self) -> BreakerState {
        match self.inner.lock().map(|inner| match inner.mode {
            Mode::Closed => BreakerState::Closed,
            Mode::Open { .. } => BreakerState::Open,
            Mode::HalfOpen { .. } => BreakerState::HalfOpen,
        }) {
            Ok(state) => state,
            Err(_) => BreakerState::Closed,
        }
    }
}

/// The error of a call refused while the breaker is open.
fn open_error() -> RedisError {
    RedisError::from((ErrorKind::Io, "Redis circuit breaker is open"))
}

/// Whether an error says Redis is unreachable or unable to serve (as opposed to a command
/// the server refused, which says nothing about its health).
pub fn is_outage(error: &RedisError) -> bool {
    error.is_io_error()
        || matches!(
            error.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(
                    ServerErrorKind::ClusterDown
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::BusyLoading
                )
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            failure_ratio: 0.5,
            window: Duration::from_secs(60),
            min_calls: 4,
            open_for: Duration::from_millis(50),
            half_open_probes: 1,
        }
    }

    fn call(breaker: &Breaker, ok: bool) {
        let admission = breaker.admit().expect("admitted");
        breaker.record(admission, ok);
    }

    #[test]
    fn it_opens_only_past_the_ratio_with_enough_calls() {
        let breaker = Breaker::new(settings());
        call(&breaker, false);
        call(&breaker, false);
        call(&breaker, false);
        assert_eq!(breaker.state(), BreakerState::Closed, "3 calls are too few");
        call(&breaker, true);
        assert_eq!(
            breaker.state(),
            BreakerState::Closed,
            "the last call succeeded"
        );
        call(&breaker, false);
        assert_eq!(breaker.state(), BreakerState::Open, "4 of 5 failed");
        assert!(breaker.admit().is_err());
    }

    #[test]
    fn min_calls_failures_in_a_row_open_it_whatever_the_window_holds() {
        let breaker = Breaker::new(settings());
        for _ in 0..100 {
            call(&breaker, true);
        }
        for _ in 0..3 {
            call(&breaker, false);
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        call(&breaker, false);
        assert_eq!(breaker.state(), BreakerState::Open, "4 failures in a row");
    }

    #[test]
    fn a_mostly_healthy_window_stays_closed() {
        let breaker = Breaker::new(settings());
        for i in 0..100 {
            call(&breaker, i % 3 != 2);
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[test]
    fn half_open_probes_close_or_reopen_it() {
        let breaker = Breaker::new(settings());
        for _ in 0..4 {
            call(&breaker, false);
        }
        assert_eq!(breaker.state(), BreakerState::Open);
        std::thread::sleep(Duration::from_millis(60));
        let probe = breaker.admit().expect("a probe after open_for");
        assert_eq!(probe, Admission::Probe);
        assert!(breaker.admit().is_err(), "one probe at a time");
        breaker.record(probe, false);
        assert_eq!(breaker.state(), BreakerState::Open);
        std::thread::sleep(Duration::from_millis(60));
        let probe = breaker.admit().expect("another probe");
        breaker.record(probe, true);
        assert_eq!(breaker.state(), BreakerState::Closed);
        call(&breaker, false);
        assert_eq!(
            breaker.state(),
            BreakerState::Closed,
            "the window was cleared"
        );
        for _ in 0..3 {
            call(&breaker, false);
        }
        assert_eq!(breaker.state(), BreakerState::Open);
        breaker.note_healthy();
        assert_eq!(
            breaker.state(),
            BreakerState::Closed,
            "a healthy PING closes it"
        );
    }
}
