//! HTTP handlers of likes.

use axum::extract::{OriginalUri, State};
use axum::response::Response;

use super::model::LikeState;
use super::store;
use super::writer::LikeOutcome;
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
    match state.likes.change(post_id, user_id, like).await {
        LikeOutcome::Stored { like_count } => Ok(axum::Json(LikeState {
            liked: like,
            like_count,
        })),
        LikeOutcome::PostNotFound => Err(ApiError::NotFound("post")),
        LikeOutcome::NotWritten(why) => Err(ApiError::NotWritable(why)),
        LikeOutcome::Failed => Err(ApiError::Unavailable {
            what: "database",
            retry_after: std::time::Duration::from_secs(1),
        }),
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
    posts::find_post_author(&mut conn, post_id)
        .await?
        .ok_or(ApiError::NotFound("post"))?;
    let likers = store::list_likers(&mut conn, post_id, before, page.limit + 1).await?;
    Ok(Page::from_overfetch(likers, page.limit, |user| vec![user.id]).into_response_for(&uri))
}
