//! Turning post ids into post views: the cached bodies (one Redis round trip), the misses
//! from MySQL (one query, then cached), and the per-request parts (one query): counts,
//! pending like deltas, whether the viewer likes each post and follows its author.

use std::collections::{HashMap, HashSet};

use super::model::PostView;
use super::{cache, store};
use crate::error::Result;
use crate::likes;
use crate::state::AppState;

/// Views of the live posts among `ids`, in the order of `ids` (deleted ones are left out).
pub async fn hydrate_posts(
    state: &AppState,
    ids: &[u64],
    viewer: Option<u64>,
) -> Result<Vec<PostView>> {
    hydrate(state, ids, viewer, false).await
}

/// Like [`hydrate_posts`], keeping only posts by `viewer` or by authors `viewer` follows (a
/// Redis feed may still hold posts of someone just unfollowed).
pub async fn hydrate_followed_posts(
    state: &AppState,
    ids: &[u64],
    viewer: u64,
) -> Result<Vec<PostView>> {
    hydrate(state, ids, Some(viewer), true).await
}

/// Bodies come from the cache (one Redis round trip, like deltas included) or, for misses,
/// from one MySQL query; then one more query brings what is per request: fresh counts,
/// whether the viewer likes each post and follows its author (and drops deleted posts).
async fn hydrate(
    state: &AppState,
    ids: &[u64],
    viewer: Option<u64>,
    followed_only: bool,
) -> Result<Vec<PostView>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut views: HashMap<u64, PostView> = HashMap::with_capacity(ids.len());
    let mut deltas: HashMap<u64, i64> = HashMap::new();
    if let Some(kv) = &state.kv {
        match cache::get_posts_and_deltas(kv, ids).await {
            Ok((cached, pending)) => {
                for post in cached.into_iter().flatten() {
                    views.insert(post.id, post);
                }
                deltas = ids.iter().copied().zip(pending).collect();
            }
            // A read never waits for Redis to recover: fall through to MySQL.
            Err(error) => crate::kv::log_fallback(&error, "post cache unavailable"),
        }
    }
    let mut conn = state.db.reader().await?;
    let misses: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|id| !views.contains_key(id))
        .collect();
    let loaded = store::find_post_views(&mut conn, &misses).await?;
    if let Some(kv) = &state.kv
        && !loaded.is_empty()
        && let Err(error) =
            cache::put_posts(kv, &loaded, state.config.feed.post_cache_ttl.as_secs()).await
    {
        crate::kv::log_fallback(&error, "cannot fill the post cache");
    }
    for post in loaded {
        views.insert(post.id, post);
    }

    let present: Vec<u64> = ids
        .iter()
        .copied()
        .filter(|id| views.contains_key(id))
        .collect();
    let states: HashMap<u64, store::PostState> =
        store::find_post_states(&mut conn, &present, viewer.unwrap_or(0))
            .await?
            .into_iter()
            .map(|post_state| (post_state.id, post_state))
            .collect();
    let mut posts = Vec::with_capacity(present.len());
    for id in present {
        // No state: deleted since its body was cached.
        let (Some(mut post), Some(post_state)) = (views.remove(&id), states.get(&id)) else {
            continue;
        };
        if followed_only && post_state.followed == 0 {
            continue;
        }
        let delta = deltas.get(&id).copied().unwrap_or(0);
        post.like_count = post_state.like_count.saturating_add_signed(delta);
        post.comment_count = post_state.comment_count;
        post.liked_by_me = viewer.is_some() && post_state.liked != 0;
        posts.push(post);
    }
    sign_media_urls(state, &mut posts).await;
    Ok(posts)
}

/// Fills the per-request parts of post views: pending like deltas (Redis), whether the
/// viewer likes each post, and media URLs.
pub async fn apply_viewer_state(
    state: &AppState,
    conn: &mut impl crate::db::AsConn,
    posts: &mut [PostView],
    viewer: Option<u64>,
) -> Result<()> {
    let ids: Vec<u64> = posts.iter().map(|post| post.id).collect();
    if ids.is_empty() {
        return Ok(());
    }
    if let Some(kv) = &state.kv {
        match likes::cache::get_deltas(kv, &ids).await {
            Ok(deltas) => {
                for (post, delta) in posts.iter_mut().zip(deltas) {
                    post.like_count = post.like_count.saturating_add_signed(delta);
                }
            }
            Err(error) => crate::kv::log_fallback(&error, "like deltas unavailable"),
        }
    }
    mark_liked(conn, posts, viewer).await?;
    sign_media_urls(state, posts).await;
    Ok(())
}

/// Fills the URL of every media object (cached bodies hold keys, not URLs, since signed
/// URLs expire).
pub async fn sign_media_urls(state: &AppState, posts: &mut [PostView]) {
    crate::uploads::service::sign_media_urls(state, posts).await;
}

async fn mark_liked(
    conn: &mut impl crate::db::AsConn,
    posts: &mut [PostView],
    viewer: Option<u64>,
) -> Result<()> {
    let Some(viewer) = viewer else {
        return Ok(());
    };
    let ids: Vec<u64> = posts.iter().map(|post| post.id).collect();
    let liked: HashSet<u64> = likes::store::list_liked_among(&mut *conn, viewer, &ids)
        .await?
        .into_iter()
        .collect();
    for post in posts.iter_mut() {
        post.liked_by_me = liked.contains(&post.id);
    }
    Ok(())
}

/// Drops a post's cached body (edit, delete); a Redis failure only leaves it to its TTL.
pub async fn forget_cached_post(state: &AppState, post_id: u64) {
    if let Some(kv) = &state.kv
        && let Err(error) = cache::remove_post(kv, post_id).await
    {
        tracing::warn!(%error, post_id, "cannot drop a cached post");
    }
}

/// Writes an edited post's body through to the cache (or drops it if that fails).
pub async fn write_through_post(state: &AppState, post: &PostView) {
    if let Some(kv) = &state.kv
        && let Err(error) = cache::put_posts(
            kv,
            std::slice::from_ref(post),
            state.config.feed.post_cache_ttl.as_secs(),
        )
        .await
    {
        tracing::warn!(%error, post_id = post.id, "cannot write an edited post through");
        forget_cached_post(state, post.id).await;
    }
}
