//! Reading home feeds, rebuilding missing ones, and keeping them right when follows change.
//!
//! ```text
//! read(user, cursor) ─► Redis slice below the cursor ─┬─ missing ─► MySQL page now, rebuild later
//!                                                     └─ present ─► ids >= floor from Redis,
//!                                                                   the rest of the page from MySQL
//!                     + posts of followed big authors (never fanned out) in the same id range
//!                     ─► hydrate (post cache) ─► drop authors no longer followed
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;

use super::recovery::RecoveryQueue;
use super::{cache, store};
use crate::config::{FeedConfig, RedisConfig};
use crate::error::{ApiError, Result};
use crate::kv::Kv;
use crate::posts::model::PostView;
use crate::posts::service::{hydrate_followed_posts, hydrate_posts};
use crate::state::AppState;

/// Where a feed page came from (also sent as `X-Feed-Source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedSource {
    /// The Redis feed (possibly continued from MySQL below its floor).
    Redis,
    /// MySQL only: the feed was missing or Redis did not answer.
    Database,
}

impl FeedSource {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::Database => "database",
        }
    }
}

/// One page of a home feed.
#[derive(Debug)]
pub struct FeedPage {
    /// Posts, newest first.
    pub items: Vec<PostView>,
    /// Id of the last post considered; the next page starts below it.
    pub next_before: Option<u64>,
    /// Where the ids came from.
    pub source: FeedSource,
}

/// How long this process trusts that it recorded a user's activity.
const ACTIVITY_RECHECK: Duration = Duration::from_secs(600);
/// How long a user's list of followed big authors is reused.
const BIG_FOLLOWEES_TTL: Duration = Duration::from_secs(30);
/// Entries kept in the per-user maps before stale ones are swept.
const SWEEP_AT: usize = 100_000;

/// A list of author ids and when it was read.
type CachedAuthors = (Instant, Arc<Vec<u64>>);

/// Process-wide feed bookkeeping. Every lock here is held only for a map operation, never
/// across an await.
#[derive(Debug)]
pub struct FeedRuntime {
    /// Fan-out jobs parked until Redis answers again.
    pub recovery: RecoveryQueue,
    /// Feed reads served from MySQL at once while Redis is unavailable.
    fallback_slots: tokio::sync::Semaphore,
    rebuilding: Mutex<HashSet<u64>>,
    /// When this process last recorded each user's activity (saves a query per read).
    recorded_activity: Mutex<HashMap<u64, Instant>>,
    /// Followed big authors per user, with when they were read.
    big_followees: Mutex<HashMap<u64, CachedAuthors>>,
    /// Wakes the fan-out workers when a post was written.
    pub fanout_wake: tokio::sync::Notify,
}

impl FeedRuntime {
    /// Empty bookkeeping sized by the configuration.
    pub fn new(redis: &RedisConfig, feed: &FeedConfig) -> Self {
        Self {
            recovery: RecoveryQueue::new(redis.recovery_queue_capacity),
            fallback_slots: tokio::sync::Semaphore::new(feed.feed_fallback_concurrency.max(1)),
            rebuilding: Mutex::default(),
            recorded_activity: Mutex::default(),
            big_followees: Mutex::default(),
            fanout_wake: tokio::sync::Notify::new(),
        }
    }

    /// Forgets what was cached about a user's follows (after they follow or unfollow).
    pub fn forget_follows(&self, user_id: u64) {
        if let Ok(mut cached) = self.big_followees.lock() {
            cached.remove(&user_id);
        }
    }

    fn activity_recorded_recently(&self, user_id: u64) -> bool {
        self.recorded_activity.lock().is_ok_and(|recorded| {
            recorded
                .get(&user_id)
                .is_some_and(|at| at.elapsed() < ACTIVITY_RECHECK)
        })
    }

    fn record_activity(&self, user_id: u64) {
        if let Ok(mut recorded) = self.recorded_activity.lock() {
            if recorded.len() >= SWEEP_AT {
                recorded.retain(|_, at| at.elapsed() < ACTIVITY_RECHECK);
            }
            recorded.insert(user_id, Instant::now());
        }
    }

    fn cached_big_followees(&self, user_id: u64) -> Option<Arc<Vec<u64>>> {
        let cached = self.big_followees.lock().ok()?;
        let (at, authors) = cached.get(&user_id)?;
        (at.elapsed() < BIG_FOLLOWEES_TTL).then(|| authors.clone())
    }

    fn cache_big_followees(&self, user_id: u64, authors: Arc<Vec<u64>>) {
        if let Ok(mut cached) = self.big_followees.lock() {
            if cached.len() >= SWEEP_AT {
                cached.retain(|_, (at, _)| at.elapsed() < BIG_FOLLOWEES_TTL);
            }
            cached.insert(user_id, (Instant::now(), authors));
        }
    }
}

/// Ids of posts by the big authors `user_id` follows, below `upper`, newest first.
async fn big_author_post_ids(
    state: &AppState,
    conn: &mut impl crate::db::AsConn,
    user_id: u64,
    upper: u64,
    limit: u32,
) -> Result<Vec<u64>> {
    let authors = match state.feed.cached_big_followees(user_id) {
        Some(authors) => authors,
        None => {
            let threshold = state.config.feed.feed_big_author_followers;
            let authors =
                Arc::new(store::list_big_followees(&mut *conn, user_id, threshold).await?);
            state.feed.cache_big_followees(user_id, authors.clone());
            authors
        }
    };
    Ok(store::list_authors_post_ids(&mut *conn, &authors, upper, limit).await?)
}

/// Reads a page of `user_id`'s home feed below `before`.
pub async fn read_feed(
    state: &AppState,
    user_id: u64,
    before: Option<u64>,
    limit: u32,
) -> Result<FeedPage> {
    note_activity(state, user_id).await?;
    let want = limit + 1;
    let upper = before.unwrap_or(u64::MAX);
    let mut source = FeedSource::Database;
    let mut redis_failed = state.kv.is_none();
    let mut ids = Vec::new();
    if let Some(kv) = &state.kv {
        let ttl = state.config.feed.feed_ttl.as_secs();
        match cache::read_slice(kv, user_id, before, want, ttl).await {
            Ok(cache::FeedSlice::Present { floor, ids: cached }) => {
                source = FeedSource::Redis;
                ids = cached;
                let mut conn = state.db.reader().await?;
                if ids.len() < want as usize {
                    // Below the floor the cache knows nothing: continue in MySQL.
                    let rest = store::list_feed_ids(
                        &mut conn,
                        user_id,
                        0,
                        upper.min(floor),
                        want - ids.len() as u32,
                    )
                    .await?;
                    ids.extend(rest);
                }
                let big = big_author_post_ids(state, &mut conn, user_id, upper, want).await?;
                ids.extend(big);
            }
            Ok(cache::FeedSlice::Missing) => spawn_rebuild(state, kv, user_id),
            Err(error) => {
                tracing::debug!(%error, user_id, "feed unavailable in Redis");
                redis_failed = true;
            }
        }
    }
    if source == FeedSource::Database {
        ids = if redis_failed && state.kv.is_some() {
            fallback_feed_ids(state, user_id, upper, want).await?
        } else {
            let mut conn = state.db.reader().await?;
            store::list_feed_ids(&mut conn, user_id, 0, upper, want).await?
        };
    }
    ids.sort_unstable_by(|a, b| b.cmp(a));
    ids.dedup();
    ids.truncate(want as usize);
    let next_before = (ids.len() > limit as usize).then(|| ids[limit as usize - 1]);
    ids.truncate(limit as usize);

    let items = if source == FeedSource::Redis {
        let items = hydrate_followed_posts(state, &ids, user_id).await?;
        forget_stale_entries(state, user_id, &ids, &items);
        items
    } else {
        hydrate_posts(state, &ids, Some(user_id)).await?
    };
    Ok(FeedPage {
        items,
        next_before,
        source,
    })
}

/// A feed page's ids from MySQL while Redis is unavailable: at most the configured number of
/// these run at once (the rest get 503 at once rather than piling up on the database), each
/// within a time bound.
async fn fallback_feed_ids(
    state: &AppState,
    user_id: u64,
    upper: u64,
    want: u32,
) -> Result<Vec<u64>> {
    let refuse = |reason: &str| {
        state
            .metrics
            .feed_fallback_refused
            .with_label_values(&[reason])
            .inc();
        ApiError::Unavailable {
            what: "feed",
            retry_after: Duration::from_secs(1),
        }
    };
    let _slot = state
        .feed
        .fallback_slots
        .try_acquire()
        .map_err(|_| refuse("busy"))?;
    state.metrics.feed_fallback_reads.inc();
    let query = async {
        let mut conn = state.db.reader().await?;
        Ok::<_, ApiError>(store::list_feed_ids(&mut conn, user_id, 0, upper, want).await?)
    };
    tokio::time::timeout(state.config.feed.feed_fallback_timeout, query)
        .await
        .map_err(|_| refuse("timeout"))?
}

/// Removes from the Redis feed, in the background, ids that hydrated to nothing (deleted
/// posts) or to an author no longer followed.
fn forget_stale_entries(state: &AppState, user_id: u64, ids: &[u64], items: &[PostView]) {
    let Some(kv) = state.kv.clone() else {
        return;
    };
    let shown: HashSet<u64> = items.iter().map(|post| post.id).collect();
    let stale: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|id| !shown.contains(id))
        .collect();
    if stale.is_empty() {
        return;
    }
    tokio::spawn(async move {
        if let Err(error) = cache::remove_ids(&kv, user_id, &stale).await {
            tracing::debug!(%error, user_id, "cannot drop stale feed entries");
        }
    });
}

/// Records that the user is active; a user back after more than the feed's max age has a
/// feed that fan-out skipped meanwhile, so it is dropped and rebuilt.
async fn note_activity(state: &AppState, user_id: u64) -> Result<()> {
    if state.feed.activity_recorded_recently(user_id) {
        return Ok(());
    }
    let now = crate::db::now();
    let stale = now - chrono::Duration::hours(1);
    let previous = store::touch_activity(state.db.writer(), user_id, now, stale).await?;
    let max_age = chrono::Duration::from_std(state.config.feed.feed_max_age)
        .unwrap_or(chrono::Duration::days(7));
    if let (Some(previous), Some(kv)) = (previous, &state.kv)
        && previous < now - max_age
        && let Err(error) = cache::delete_feed(kv, user_id).await
    {
        tracing::warn!(%error, user_id, "cannot drop the feed of a returning user");
    }
    state.feed.record_activity(user_id);
    Ok(())
}

fn spawn_rebuild(state: &AppState, kv: &Kv, user_id: u64) {
    {
        let Ok(mut rebuilding) = state.feed.rebuilding.lock() else {
            return;
        };
        if !rebuilding.insert(user_id) {
            return;
        }
    }
    let (state, kv) = (state.clone(), kv.clone());
    tokio::spawn(async move {
        if let Err(error) = rebuild_feed(&state, &kv, user_id).await {
            tracing::warn!(error = %error, user_id, "feed rebuild failed");
        }
        if let Ok(mut rebuilding) = state.feed.rebuilding.lock() {
            rebuilding.remove(&user_id);
        }
    });
}

/// Rebuilds a user's Redis feed from MySQL: the newest posts within the max age, up to the
/// cap, complete down to the lowest of them; then the posts written meanwhile.
pub async fn rebuild_feed(state: &AppState, kv: &Kv, user_id: u64) -> anyhow::Result<()> {
    let config = &state.config.feed;
    let since = Utc::now() - chrono::Duration::from_std(config.feed_max_age)?;
    let writer = state.db.writer();
    let ids = store::list_recent_feed_ids(writer, user_id, since, config.feed_cap).await?;
    let floor = match ids.last() {
        Some(lowest) => *lowest,
        // Nothing recent: complete for every post yet to come.
        None => store::find_max_post_id(writer).await? + 1,
    };
    cache::write_feed(kv, user_id, &ids, floor, config.feed_ttl.as_secs()).await?;
    // A post committed while we read may have been fanned out before the feed existed: add
    // whatever is newer than what we read (the insert ignores what is already there).
    let newest = ids.first().copied().unwrap_or(floor.saturating_sub(1));
    let missed = store::list_feed_ids(writer, user_id, newest, u64::MAX, config.feed_cap).await?;
    cache::insert_ids(kv, user_id, &missed, config.feed_cap).await?;
    state.metrics.feed_rebuilds.inc();
    Ok(())
}

/// After a follow: rebuilds the follower's feed with the followee's recent posts. (They are
/// older than what the feed already holds, below its floor, so adding them one by one would
/// leave a feed that cannot say it is complete; a rebuild sets a new floor.)
pub async fn backfill_follow(state: &AppState, follower: u64) -> anyhow::Result<()> {
    match &state.kv {
        Some(kv) => rebuild_feed(state, kv, follower).await,
        None => Ok(()),
    }
}

/// After an unfollow: removes the former followee's posts from the follower's feed.
pub async fn remove_unfollowed(
    state: &AppState,
    follower: u64,
    followee: u64,
) -> anyhow::Result<()> {
    let Some(kv) = &state.kv else {
        return Ok(());
    };
    let config = &state.config.feed;
    let since = Utc::now() - chrono::Duration::from_std(config.feed_max_age)?;
    let ids =
        store::list_recent_author_post_ids(state.db.writer(), followee, since, config.feed_cap)
            .await?;
    cache::remove_ids(kv, follower, &ids).await?;
    Ok(())
}
