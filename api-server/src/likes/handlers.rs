//! HTTP handlers of likes.

use axum::extract::{OriginalUri, State};
use axum::response::Response;

use super::model::LikeState;
use super::{cache, store};
use crate::db;
use crate::error::{ApiError, ErrorBody, Result};
use crate::http::auth::{AuthUser, MaybeAuthUser};
use crate::http::extract::{Path, Query};
use crate::http::pagination::{Page, PageParams};
use crate::posts::store as posts;
use crate::state::AppState;
use crate::users::model::UserSummary;

/// Like a post (idempotent).
#[utoipa::path(put, path = "/posts/{id}/like", tag = "likes",
    security(("bearer" = [])),
    params(("id" = u64, Path, description = "Post id")),
    responses(
        (status = 200, description = "Liked", body = LikeState),
        (status = 400, description = "The id is not a number", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such post", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = user.id, post = id))]
pub async fn like_post(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<u64>,
) -> Result<axum::Json<LikeState>> {
    change_like(&state, user.id, id, true).await
}

/// Take a like back (idempotent).
#[utoipa::path(delete, path = "/posts/{id}/like", tag = "likes",
    security(("bearer" = [])),
    params(("id" = u64, Path, description = "Post id")),
    responses(
        (status = 200, description = "Not liked", body = LikeState),
        (status = 400, description = "The id is not a number", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such post", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = user.id, post = id))]
pub async fn unlike_post(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<u64>,
) -> Result<axum::Json<LikeState>> {
    change_like(&state, user.id, id, false).await
}

async fn change_like(
    state: &AppState,
    user_id: u64,
    post_id: u64,
    like: bool,
) -> Result<axum::Json<LikeState>> {
    posts::find_post_author(state.db.writer(), post_id)
        .await?
        .ok_or(ApiError::NotFound("post"))?;
    let step = if like { 1 } else { -1 };
    // A like and an unlike of neighbouring rows can deadlock on InnoDB gap locks; the victim
    // was rolled back whole, so running it again is safe.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match store_like_change(state, user_id, post_id, like, step).await {
            Err(sqlx::Error::Database(error))
                if error.code().as_deref() == Some("40001") && attempt < DEADLOCK_ATTEMPTS =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(rand::random_range(1..10)))
                    .await;
            }
            result => {
                result?;
                break;
            }
        }
    }
    let mut delta = 0;
    if let Some(kv) = &state.kv {
        delta = cache::get_deltas(kv, &[post_id])
            .await
            .ok()
            .and_then(|deltas| deltas.first().copied())
            .unwrap_or(0);
    }
    let stored = store::find_like_count(state.db.writer(), post_id)
        .await?
        .ok_or(ApiError::NotFound("post"))?;
    Ok(axum::Json(LikeState {
        liked: like,
        like_count: stored.saturating_add_signed(delta),
    }))
}

/// Times a like is tried when it keeps losing deadlocks.
const DEADLOCK_ATTEMPTS: u32 = 5;

async fn store_like_change(
    state: &AppState,
    user_id: u64,
    post_id: u64,
    like: bool,
    step: i64,
) -> Result<(), sqlx::Error> {
    let now = db::now();
    let mut tx = state.db.writer().begin().await?;
    let changed = if like {
        store::insert_like(&mut tx, post_id, user_id, now).await?
    } else {
        store::delete_like(&mut tx, post_id, user_id, now).await?
    };
    // The delta is recorded before the commit: the flusher only recounts for events it can
    // see, so once it sees this one the delta it clears afterwards already includes this
    // change. Best effort: the like is stored whatever Redis does.
    let delta_recorded = changed && record_delta(state, post_id, step).await;
    if let Err(error) = tx.commit().await {
        if delta_recorded {
            record_delta(state, post_id, -step).await;
        }
        return Err(error);
    }
    Ok(())
}

async fn record_delta(state: &AppState, post_id: u64, step: i64) -> bool {
    let Some(kv) = &state.kv else {
        return false;
    };
    match cache::add_delta(kv, post_id, step).await {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(%error, post_id, "cannot record a like delta");
            false
        }
    }
}

/// Users who like a post, highest user id first.
#[utoipa::path(get, path = "/posts/{id}/likes", tag = "likes",
    params(("id" = u64, Path, description = "Post id"), PageParams),
    responses(
        (status = 200, description = "A page of likers", body = Page<UserSummary>,
            headers(("Link" = String, description = "URL of the next page"))),
        (status = 400, description = "Bad parameter or cursor", body = ErrorBody),
        (status = 401, description = "A token was sent but is invalid", body = ErrorBody),
        (status = 404, description = "No such post", body = ErrorBody),
    ))]
pub async fn list_likes(
    State(state): State<AppState>,
    _viewer: MaybeAuthUser,
    OriginalUri(uri): OriginalUri,
    Path(post_id): Path<u64>,
    Query(paging): Query<PageParams>,
) -> Result<Response> {
    let page = paging.validate(1)?;
    let before = page.after.as_ref().map_or(u64::MAX, |key| key[0]);
    let mut conn = state.db.reader().await?;
    posts::find_post_author(&mut *conn, post_id)
        .await?
        .ok_or(ApiError::NotFound("post"))?;
    let likers = store::list_likers(&mut *conn, post_id, before, page.limit + 1).await?;
    Ok(Page::from_overfetch(likers, page.limit, |user| vec![user.id]).into_response_for(&uri))
}
