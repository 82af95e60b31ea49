//! The like-count flusher: folds `like_events` into `posts.like_count` by recounting each
//! touched post from `post_likes`, then drops the post's Redis delta, so the count equals
//! COUNT(post_likes) within one interval of the last change, whatever happened to Redis.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{cache, store};
use crate::state::AppState;

/// Events folded in per round.
const BATCH: u32 = 5000;

/// Runs until `shutdown`, one round every `interval`.
pub async fn run_like_flusher(state: AppState, interval: Duration, shutdown: CancellationToken) {
    loop {
        match flush_likes(&state).await {
            Ok(events) if events >= BATCH as usize => continue,
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(error = %error, "like flush failed; will retry");
                let database_error = error.downcast_ref::<sqlx::Error>();
                let why = database_error.and_then(crate::error::unwritten);
                if why == Some(crate::error::Unwritten::ReadOnly)
                    || database_error.is_some_and(crate::error::connection_lost)
                {
                    state.db.writer_moved();
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// One round: recounts every post with committed events, then deletes those events; returns
/// how many events were folded in.
pub async fn flush_likes(state: &AppState) -> anyhow::Result<usize> {
    let events = store::list_like_events(state.db.writer(), BATCH).await?;
    // At least this many wait (a full batch may hide more).
    state.metrics.likes_pending_flush.set(events.len() as i64);
    let mut posts: Vec<u64> = events.iter().map(|(_, post)| *post).collect();
    posts.sort_unstable();
    posts.dedup();
    for post_id in &posts {
        // Every like read above has committed (its delta was recorded before its commit), so
        // the recount includes it and the delta dropped next holds nothing the count lacks.
        // A like committing now leaves a new event and a new delta for the next round.
        store::recount_likes(state.db.writer(), *post_id).await?;
        if let Some(kv) = &state.kv
            && let Err(error) = cache::clear_delta(kv, *post_id).await
        {
            tracing::warn!(%error, post_id, "cannot clear a like delta");
        }
        state.metrics.likes_recounted.inc();
    }
    let ids: Vec<u64> = events.iter().map(|(id, _)| *id).collect();
    store::delete_like_events(state.db.writer(), &ids).await?;
    if events.len() < BATCH as usize {
        state.metrics.likes_pending_flush.set(0);
    }
    Ok(events.len())
}
