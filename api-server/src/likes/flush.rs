//! The like-count flusher: recounts posts marked in `like_count_pending` and drops their
//! Redis deltas, so `posts.like_count` equals COUNT(post_likes) within one interval of the
//! last change, whatever happened to Redis.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{cache, store};
use crate::state::AppState;

/// Posts recounted per round.
const BATCH: u32 = 200;

/// Runs until `shutdown`, one round every `interval`.
pub async fn run_like_flusher(state: AppState, interval: Duration, shutdown: CancellationToken) {
    loop {
        match flush_pending_likes(&state).await {
            Ok(flushed) if flushed >= BATCH as usize => continue,
            Ok(_) => {}
            Err(error) => tracing::warn!(error = %error, "like flush failed; will retry"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// One round: recounts up to `BATCH` marked posts; returns how many.
pub async fn flush_pending_likes(state: &AppState) -> anyhow::Result<usize> {
    let pending = store::list_pending_posts(state.db.writer(), BATCH).await?;
    let mut conn = state.db.writer().acquire().await?;
    for post_id in &pending {
        // Recount first: clearing the mark waits for every like transaction that holds it,
        // and each of those recorded its delta before committing, so the delta dropped next
        // is already in the count. Later likes leave a new mark for the next round.
        store::recount_likes(&mut conn, *post_id).await?;
        if let Some(kv) = &state.kv
            && let Err(error) = cache::clear_delta(kv, *post_id).await
        {
            tracing::warn!(%error, post_id, "cannot clear a like delta");
        }
        state.metrics.likes_recounted.inc();
    }
    Ok(pending.len())
}
