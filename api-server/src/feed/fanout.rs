//! Fan-out on write: a post's id goes into the Redis feed of each active follower, off the
//! request path, driven by the MySQL outbox so nothing is lost if the process dies.
//!
//! ```text
//! POST /posts ─► commit post + outbox row ─► wake a worker
//! worker ─► claim jobs (lease) ─► per 1,000 active followers: one batch (one pipeline per
//!           master) of feed-insert scripts ─► delete the job (or postpone it on failure)
//! ```
//! Authors above the big-author threshold are not fanned out to followers (their posts are
//! merged when feeds are read); every author's own feed gets the post.

use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;

use super::jobs::FeedJob;
use super::{cache, store};
use crate::kv::{Batch, Kv};
use crate::state::AppState;

/// Runs fan-out workers until `shutdown` (jobs in flight finish first).
pub async fn run_fanout_worker(state: AppState, kv: Kv, shutdown: CancellationToken) {
    let workers = state.config.feed.fanout_workers.max(1) as u32;
    let lease = chrono::Duration::from_std(state.config.feed.fanout_lease)
        .unwrap_or(chrono::Duration::seconds(60));
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let jobs =
            match store::claim_outbox_jobs(state.db.writer(), workers, crate::db::now(), lease)
                .await
            {
                Ok(jobs) => jobs,
                Err(error) => {
                    tracing::warn!(%error, "cannot claim fan-out jobs");
                    if crate::error::unwritten(&error) == Some(crate::error::Unwritten::ReadOnly)
                        || crate::error::connection_lost(&error)
                    {
                        state.db.writer_moved();
                    }
                    Vec::new()
                }
            };
        if jobs.is_empty() {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = state.feed.fanout_wake.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        let runs = jobs.into_iter().map(|job| {
            let (state, kv) = (&state, &kv);
            async move {
                let started = Instant::now();
                match job.job.run(state, kv).await {
                    Ok(recipients) => {
                        if let Err(error) =
                            store::delete_outbox_job(state.db.writer(), job.id).await
                        {
                            tracing::warn!(%error, job = job.id, "cannot delete a finished job");
                        }
                        state
                            .metrics
                            .fanout_seconds
                            .observe(started.elapsed().as_secs_f64());
                        if matches!(job.job, FeedJob::FanOut { .. }) {
                            let lag = (Utc::now() - job.created_at).to_std().unwrap_or_default();
                            state.metrics.fanout_lag_seconds.observe(lag.as_secs_f64());
                        }
                        state.metrics.fanout_writes.inc_by(recipients);
                    }
                    Err(error) => {
                        state.metrics.fanout_failures.inc();
                        retry_or_park(state, &job, &error).await;
                    }
                }
            }
        });
        futures::future::join_all(runs).await;
    }
}

/// After a failed attempt: the job is postponed by the next retry delay (jittered), or, once
/// the delays are used up, parked for the recovery loop.
async fn retry_or_park(state: &AppState, job: &store::OutboxJob, error: &anyhow::Error) {
    let writer = state.db.writer();
    match retry_delay(&state.config.redis.redis_retry_delays, job.attempts) {
        Some(delay) => {
            tracing::warn!(error = format!("{error:#}"), job = ?job.job,
                attempts = job.attempts, ?delay, "feed job failed; will retry");
            let at = crate::db::now()
                + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(2));
            if let Err(error) = store::postpone_outbox_job(writer, job.id, at).await {
                tracing::warn!(%error, job = job.id, "cannot postpone a job; its lease will expire");
            }
        }
        None => {
            tracing::warn!(error = format!("{error:#}"), job = ?job.job,
                attempts = job.attempts, "feed job failed every retry; parked until Redis answers");
            match store::park_outbox_job(writer, job.id, crate::db::now()).await {
                Ok(()) => {
                    if !state.feed.recovery.push(job.id) {
                        state.metrics.recovery_overflows.inc();
                    }
                    state
                        .metrics
                        .recovery_queue_depth
                        .set(state.feed.recovery.len() as i64);
                }
                Err(error) => {
                    tracing::warn!(%error, job = job.id, "cannot park a job; its lease will expire");
                }
            }
        }
    }
}

/// The wait before attempt `attempts + 1`: the configured delay for this attempt, +-20 %
/// so jobs that failed together do not retry together; `None` once the delays are used up.
pub fn retry_delay(delays: &[Duration], attempts: u32) -> Option<Duration> {
    let base = delays.get(attempts.saturating_sub(1) as usize)?;
    let jitter = rand::random_range(0.8..1.2);
    Some(base.mul_f64(jitter))
}

async fn write_page(kv: &Kv, users: &[u64], post_id: u64, cap: u32) -> anyhow::Result<()> {
    let mut batch = Batch::new();
    batch.replicated();
    cache::add_fanout_commands(&mut batch, kv, users, post_id, cap);
    Ok(cache::first_error(kv.run(batch).await?)?)
}

/// Pipelines written at once by one fan-out: while one page's replies travel back, the
/// next pages are already on the wire.
const PAGES_IN_FLIGHT: usize = 4;

/// Writes `post_id` into the feeds of its author and the author's active followers; returns
/// how many feeds were addressed.
pub async fn fan_out(state: &AppState, kv: &Kv, post_id: u64) -> anyhow::Result<u64> {
    let config = &state.config.feed;
    let Some((author_id, follower_count)) =
        store::find_fanout_subject(state.db.writer(), post_id).await?
    else {
        // Deleted before its fan-out: nothing to do.
        return Ok(0);
    };
    let mut recipients = vec![author_id];
    if follower_count <= config.feed_big_author_followers {
        let active_since = Utc::now() - chrono::Duration::from_std(config.feed_max_age)?;
        let mut after = 0;
        loop {
            let page = store::list_active_follower_ids(
                state.db.writer(),
                author_id,
                after,
                active_since,
                config.fanout_page_size,
            )
            .await?;
            let Some(last) = page.last().copied() else {
                break;
            };
            let full = page.len() == config.fanout_page_size as usize;
            recipients.extend(page);
            if !full {
                break;
            }
            after = last;
        }
    }
    write_to_feeds(
        kv,
        &recipients,
        post_id,
        config.feed_cap,
        config.fanout_page_size,
    )
    .await?;
    Ok(recipients.len() as u64)
}

/// Adds `post_id` to the existing feeds of `users`: one batch (one pipeline per master) per
/// `page_size` users, a few batches in flight at once (a new one leaves as each completes).
pub async fn write_to_feeds(
    kv: &Kv,
    users: &[u64],
    post_id: u64,
    cap: u32,
    page_size: u32,
) -> anyhow::Result<()> {
    let mut pages = users.chunks(page_size.max(1) as usize);
    let mut in_flight = FuturesUnordered::new();
    for page in pages.by_ref().take(PAGES_IN_FLIGHT) {
        in_flight.push(write_page(kv, page, post_id, cap));
    }
    while let Some(result) = in_flight.next().await {
        result?;
        if let Some(page) = pages.next() {
            in_flight.push(write_page(kv, page, post_id, cap));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_follow_the_configured_delays_with_jitter_then_stop() {
        let delays = [2, 4, 8].map(Duration::from_secs);
        for (attempts, base) in [(1, 2.0), (2, 4.0), (3, 8.0)] {
            let delay = retry_delay(&delays, attempts)
                .expect("a retry")
                .as_secs_f64();
            assert!(
                delay >= base * 0.8 && delay <= base * 1.2,
                "{attempts}: {delay}"
            );
        }
        assert_eq!(retry_delay(&delays, 4), None, "then the recovery queue");
    }
}
