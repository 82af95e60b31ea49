//! The recovery queue: fan-out jobs that failed every retry (Redis down, a failover that took
//! too long) wait here until Redis answers again, then are replayed a few at a time.
//!
//! ```text
//! fan-out fails, retries exhausted ─► park the outbox row (MySQL) ─► push its id (memory,
//!                                     bounded; when full, MySQL alone keeps it)
//! recovery loop, every second ─► breaker open? PING: answered ─► close it
//!                              jobs waiting? ─► PING ─► answered: unpark them, staggered by
//!                                the replay delay, oldest first ─► fan-out workers run them
//!                                (re-reading follower lists, as every fan-out does)
//! ```
//! Memory holds ids only, at most `capacity`; MySQL holds every parked job, so a process that
//! dies or overflows its bound loses nothing: the loop of any API process finds parked rows.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::store;
use crate::kv::Kv;
use crate::state::AppState;

/// How often the loop looks for work.
const TICK: Duration = Duration::from_secs(1);
/// Parked jobs unparked per round when memory is empty.
const REPLAY_BATCH: u32 = 1000;

/// Ids of parked outbox jobs this process knows of, oldest first, at most `capacity`.
#[derive(Debug)]
pub struct RecoveryQueue {
    capacity: usize,
    /// Held only to push or drain, never across an await.
    jobs: Mutex<VecDeque<u64>>,
}

impl RecoveryQueue {
    /// An empty queue holding at most `capacity` ids.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            jobs: Mutex::new(VecDeque::new()),
        }
    }

    /// Remembers a parked job; returns false when the queue is full (MySQL alone keeps it).
    pub fn push(&self, job_id: u64) -> bool {
        let Ok(mut jobs) = self.jobs.lock() else {
            return false;
        };
        if jobs.len() >= self.capacity {
            return false;
        }
        jobs.push_back(job_id);
        true
    }

    /// Takes up to `limit` ids, oldest first.
    pub fn take(&self, limit: usize) -> Vec<u64> {
        let Ok(mut jobs) = self.jobs.lock() else {
            return Vec::new();
        };
        let count = limit.min(jobs.len());
        jobs.drain(..count).collect()
    }

    /// Ids held now.
    pub fn len(&self) -> usize {
        self.jobs.lock().map_or(0, |jobs| jobs.len())
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Runs until `shutdown`: replays parked jobs whenever Redis answers, and keeps the queue
/// and outbox gauges current.
pub async fn run_recovery_loop(state: AppState, kv: Kv, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(TICK) => {}
        }
        if let Err(error) = recover_once(&state, &kv).await {
            tracing::warn!(error = format!("{error:#}"), "recovery round failed");
        }
    }
}

/// One round; returns how many jobs were unparked.
pub async fn recover_once(state: &AppState, kv: &Kv) -> anyhow::Result<usize> {
    let queue = &state.feed.recovery;
    // While the breaker is open, every request skips Redis: find out as soon as it answers
    // again, whether or not jobs are parked yet.
    if kv.breaker_state() != crate::kv::breaker::BreakerState::Closed && kv.ping().await.is_ok() {
        kv.note_healthy();
    }
    let (pending, parked) = store::count_outbox_jobs(state.db.writer()).await?;
    state
        .metrics
        .outbox_pending
        .set(i64::try_from(pending).unwrap_or(i64::MAX));
    state.metrics.recovery_queue_depth.set(queue.len() as i64);
    if parked == 0 && queue.is_empty() {
        return Ok(0);
    }
    if let Err(error) = kv.ping().await {
        tracing::debug!(%error, parked, "Redis still down; jobs stay parked");
        return Ok(0);
    }
    kv.note_healthy();
    let mut ids = queue.take(REPLAY_BATCH as usize);
    if ids.is_empty() {
        ids = store::list_parked_outbox_jobs(state.db.writer(), REPLAY_BATCH).await?;
    }
    let delay = chrono::Duration::from_std(state.config.redis.recovery_replay_delay)
        .unwrap_or(chrono::Duration::milliseconds(50));
    let start = crate::db::now();
    let mut unparked = 0;
    for (position, id) in ids.iter().enumerate() {
        let at = start + delay * i32::try_from(position).unwrap_or(i32::MAX);
        if store::unpark_outbox_job(state.db.writer(), *id, at).await? {
            unparked += 1;
        }
    }
    state.metrics.recovery_replays.inc_by(unparked as u64);
    state.metrics.recovery_queue_depth.set(queue.len() as i64);
    if unparked > 0 {
        tracing::info!(unparked, "Redis answers again: replaying parked fan-outs");
        state.feed.fanout_wake.notify_one();
    }
    Ok(unparked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_queue_keeps_at_most_its_capacity_oldest_first() {
        let queue = RecoveryQueue::new(3);
        assert!((1..=3).all(|id| queue.push(id)));
        assert!(!queue.push(4), "full: the job stays in MySQL only");
        assert_eq!(queue.len(), 3);
        assert_eq!(queue.take(2), vec![1, 2]);
        assert!(queue.push(5));
        assert_eq!(queue.take(10), vec![3, 5]);
        assert!(queue.is_empty());
    }
}
