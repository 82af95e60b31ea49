//! Feed writes that must reach Redis eventually, as outbox jobs.
//!
//! The resilience of a Redis write is declared, not coded per operation; each wrapper is
//! applied in this order, outermost first:
//!
//! ```text
//! enqueue-for-recovery  the job is a row in the MySQL outbox (durable across crashes); once
//!                       its retries are used up it parks there and in the recovery queue,
//!                       and is replayed when Redis answers (recovery.rs)
//! retry                 a failed attempt is postponed by 2 s, 4 s, 8 s, jittered (fanout.rs)
//! circuit breaker       every Redis call of an attempt goes through it (kv/breaker.rs)
//! pipelining            an attempt's writes go out as batches, one pipeline per master
//!                       (kv/batch.rs)
//! ```
//!
//! A new kind of feed write only says what it does ([`FeedJob::run`]); it gets all four.

use super::{cache, fanout, service};
use crate::kv::Kv;
use crate::state::AppState;

/// One feed write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedJob {
    /// Write a new post into its author's and active followers' feeds.
    FanOut {
        /// The post.
        post_id: u64,
        /// Its author.
        author_id: u64,
    },
    /// Recompute a user's feed from MySQL, if Redis holds one (a follow's backlog or an
    /// unfollow's removal that could not be applied at once).
    RebuildFeed {
        /// Whose feed.
        user_id: u64,
    },
}

impl FeedJob {
    /// Runs the job once; returns how many feeds it addressed.
    pub async fn run(&self, state: &AppState, kv: &Kv) -> anyhow::Result<u64> {
        match *self {
            Self::FanOut { post_id, .. } => fanout::fan_out(state, kv, post_id).await,
            Self::RebuildFeed { user_id } => {
                // An absent feed is rebuilt on its next read anyway.
                if cache::feed_exists(kv, user_id).await? {
                    service::rebuild_feed(state, kv, user_id).await?;
                    Ok(1)
                } else {
                    Ok(0)
                }
            }
        }
    }
}

/// Runs `attempt` now (the caller's Redis update); if it fails, `fallback` is recorded in the
/// outbox, so the update happens once Redis allows it and nothing is lost. The caller never
/// waits on retries.
pub async fn run_or_enqueue<F>(state: &AppState, fallback: FeedJob, attempt: F)
where
    F: std::future::Future<Output = anyhow::Result<()>>,
{
    let Err(error) = attempt.await else {
        return;
    };
    let now = crate::db::now();
    let delay = fanout::retry_delay(&state.config.redis.redis_retry_delays, 1)
        .unwrap_or(std::time::Duration::from_secs(2));
    let available_at =
        now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(2));
    match crate::feed::store::insert_outbox_job(state.db.writer(), fallback, now, available_at)
        .await
    {
        Ok(_) => tracing::info!(error = format!("{error:#}"), job = ?fallback,
            "Redis update failed; queued in the outbox"),
        Err(store_error) => tracing::warn!(error = format!("{error:#}"), %store_error,
            job = ?fallback, "Redis update failed and could not be queued; the feed may lag until rebuilt"),
    }
}
