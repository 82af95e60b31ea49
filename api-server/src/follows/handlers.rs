//! HTTP handlers of the social graph.

use crate::feed::jobs::{FeedJob, run_or_enqueue};
use crate::feed::service;
use axum::extract::{OriginalUri, State};
use axum::response::Response;

use super::model::FollowState;
use super::store;
use crate::db;
use crate::error::{ApiError, ErrorBody, FieldErrors, Result};
use crate::http::auth::AuthUser;
use crate::http::extract::{Path, Query};
use crate::http::pagination::{Page, PageParams};
use crate::state::AppState;
use crate::users::model::UserSummary;
use crate::users::store as users;

/// Follow a user (idempotent).
#[utoipa::path(put, path = "/users/{id}/follow", tag = "follows",
    security(("bearer" = [])),
    params(("id" = u64, Path, description = "User id to follow")),
    responses(
        (status = 200, description = "Now following", body = FollowState),
        (status = 400, description = "The id is not a number", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
        (status = 422, description = "Following oneself", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(follower = user.id, followee = id))]
pub async fn follow_user(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<u64>,
) -> Result<axum::Json<FollowState>> {
    if id == user.id {
        return Err(FieldErrors::single("id", "a user cannot follow themselves"));
    }
    if !users::user_exists(state.db.writer(), id).await? {
        return Err(ApiError::NotFound("user"));
    }
    let mut tx = state.db.writer().begin().await?;
    let added = store::insert_follow(&mut tx, user.id, id, db::now())
        .await
        .map_err(|error| match &error {
            // The followee was deleted between the check and the insert.
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                ApiError::NotFound("user")
            }
            _ => ApiError::from(error),
        })?;
    tx.commit().await?;
    state.feed.forget_follows(user.id);
    if added {
        let rebuild = FeedJob::RebuildFeed { user_id: user.id };
        run_or_enqueue(&state, rebuild, service::backfill_follow(&state, user.id)).await;
    }
    follow_state(&state, id, true).await
}

/// Stop following a user (idempotent).
#[utoipa::path(delete, path = "/users/{id}/follow", tag = "follows",
    security(("bearer" = [])),
    params(("id" = u64, Path, description = "User id to unfollow")),
    responses(
        (status = 200, description = "No longer following", body = FollowState),
        (status = 400, description = "The id is not a number", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(follower = user.id, followee = id))]
pub async fn unfollow_user(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<u64>,
) -> Result<axum::Json<FollowState>> {
    let mut tx = state.db.writer().begin().await?;
    let removed = store::delete_follow(&mut tx, user.id, id).await?;
    tx.commit().await?;
    state.feed.forget_follows(user.id);
    if removed {
        // Reads filter by the current follow set meanwhile, so the posts stay hidden.
        let rebuild = FeedJob::RebuildFeed { user_id: user.id };
        run_or_enqueue(
            &state,
            rebuild,
            service::remove_unfollowed(&state, user.id, id),
        )
        .await;
    }
    follow_state(&state, id, false).await
}

async fn follow_state(
    state: &AppState,
    followee: u64,
    following: bool,
) -> Result<axum::Json<FollowState>> {
    let follower_count = store::find_follower_count(state.db.writer(), followee)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    Ok(axum::Json(FollowState {
        following,
        follower_count,
    }))
}

/// List a user's followers, highest user id first.
#[utoipa::path(get, path = "/users/{id}/followers", tag = "follows",
    params(("id" = u64, Path, description = "User id"), PageParams),
    responses(
        (status = 200, description = "A page of followers", body = Page<UserSummary>,
            headers(("Link" = String, description = "URL of the next page"))),
        (status = 400, description = "Bad parameter or cursor", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    ))]
pub async fn list_followers(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<u64>,
    Query(paging): Query<PageParams>,
) -> Result<Response> {
    let page = paging.validate(1)?;
    let before = page.after.as_ref().map_or(u64::MAX, |key| key[0]);
    let mut conn = state.db.reader().await?;
    if !users::user_exists(&mut conn, id).await? {
        return Err(ApiError::NotFound("user"));
    }
    let found = store::list_followers(&mut conn, id, before, page.limit + 1).await?;
    Ok(Page::from_overfetch(found, page.limit, |user| vec![user.id]).into_response_for(&uri))
}

/// List the users a user follows, highest user id first.
#[utoipa::path(get, path = "/users/{id}/following", tag = "follows",
    params(("id" = u64, Path, description = "User id"), PageParams),
    responses(
        (status = 200, description = "A page of followed users", body = Page<UserSummary>,
            headers(("Link" = String, description = "URL of the next page"))),
        (status = 400, description = "Bad parameter or cursor", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    ))]
pub async fn list_following(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<u64>,
    Query(paging): Query<PageParams>,
) -> Result<Response> {
    let page = paging.validate(1)?;
    let before = page.after.as_ref().map_or(u64::MAX, |key| key[0]);
    let mut conn = state.db.reader().await?;
    if !users::user_exists(&mut conn, id).await? {
        return Err(ApiError::NotFound("user"));
    }
    let found = store::list_following(&mut conn, id, before, page.limit + 1).await?;
    Ok(Page::from_overfetch(found, page.limit, |user| vec![user.id]).into_response_for(&uri))
}
