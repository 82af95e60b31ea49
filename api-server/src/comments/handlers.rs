//! HTTP handlers of comments.

use axum::extract::{OriginalUri, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::model::{CommentRequest, CommentView};
use super::store;
use crate::db;
use crate::error::{ApiError, ErrorBody, Result};
use crate::http::auth::{AuthUser, MaybeAuthUser};
use crate::http::extract::{Json, Path, Query};
use crate::http::pagination::{Page, PageParams};
use crate::posts::store as posts;
use crate::state::AppState;

/// Comment on a post.
#[utoipa::path(post, path = "/posts/{id}/comments", tag = "comments",
    security(("bearer" = [])),
    params(("id" = u64, Path, description = "Post id")),
    request_body = CommentRequest,
    responses(
        (status = 201, description = "Created", body = CommentView,
            headers(("Location" = String, description = "URL of the new comment"))),
        (status = 400, description = "Malformed JSON or id", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 404, description = "No such post", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "A field breaks its rule", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = user.id, post = post_id))]
pub async fn create_comment(
    State(state): State<AppState>,
    user: AuthUser,
    Path(post_id): Path<u64>,
    Json(request): Json<CommentRequest>,
) -> Result<Response> {
    request.validate()?;
    let mut tx = state.db.writer().begin().await?;
    // Locks the post so a concurrent delete cannot leave a comment on a deleted post.
    posts::lock_post_author(&mut tx, post_id)
        .await?
        .ok_or(ApiError::NotFound("post"))?;
    let id = store::insert_comment(&mut tx, post_id, user.id, &request.content, db::now()).await?;
    // Read back in the transaction that wrote it: another connection could lead to a
    // server that does not have it yet (a primary handing over).
    let comment = store::find_comment_view(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound("comment"))?;
    tx.commit().await?;
    let location = format!("/api/v1/comments/{id}");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(comment),
    )
        .into_response())
}

/// A post's comments, oldest first.
#[utoipa::path(get, path = "/posts/{id}/comments", tag = "comments",
    params(("id" = u64, Path, description = "Post id"), PageParams),
    responses(
        (status = 200, description = "A page of comments", body = Page<CommentView>,
            headers(("Link" = String, description = "URL of the next page"))),
        (status = 400, description = "Bad parameter or cursor", body = ErrorBody),
        (status = 401, description = "A token was sent but is invalid", body = ErrorBody),
        (status = 404, description = "No such post", body = ErrorBody),
    ))]
pub async fn list_comments(
    State(state): State<AppState>,
    _viewer: MaybeAuthUser,
    OriginalUri(uri): OriginalUri,
    Path(post_id): Path<u64>,
    Query(paging): Query<PageParams>,
) -> Result<Response> {
    let page = paging.validate(1)?;
    let after = page.after.as_ref().map_or(0, |key| key[0]);
    let mut conn = state.db.reader().await?;
    posts::find_post_author(&mut conn, post_id)
        .await?
        .ok_or(ApiError::NotFound("post"))?;
    let comments = store::list_post_comments(&mut conn, post_id, after, page.limit + 1).await?;
    Ok(
        Page::from_overfetch(comments, page.limit, |comment| vec![comment.id])
            .into_response_for(&uri),
    )
}

/// Get a comment.
#[utoipa::path(get, path = "/comments/{id}", tag = "comments",
    params(("id" = u64, Path, description = "Comment id")),
    responses(
        (status = 200, description = "The comment", body = CommentView),
        (status = 400, description = "The id is not a number", body = ErrorBody),
        (status = 401, description = "A token was sent but is invalid", body = ErrorBody),
        (status = 404, description = "No such comment", body = ErrorBody),
    ))]
pub async fn get_comment(
    State(state): State<AppState>,
    _viewer: MaybeAuthUser,
    Path(id): Path<u64>,
) -> Result<axum::Json<CommentView>> {
    let mut conn = state.db.reader().await?;
    store::find_comment_view(&mut conn, id)
        .await?
        .ok_or(ApiError::NotFound("comment"))
        .map(axum::Json)
}

/// Edit one's own comment.
#[utoipa::path(patch, path = "/comments/{id}", tag = "comments",
    security(("bearer" = [])),
    params(("id" = u64, Path, description = "Comment id")),
    request_body = CommentRequest,
    responses(
        (status = 200, description = "The edited comment", body = CommentView),
        (status = 400, description = "Malformed JSON or id", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Someone else's comment", body = ErrorBody),
        (status = 404, description = "No such comment", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "A field breaks its rule", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = user.id, comment = id))]
pub async fn update_comment(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<u64>,
    Json(request): Json<CommentRequest>,
) -> Result<axum::Json<CommentView>> {
    request.validate()?;
    let mut tx = state.db.writer().begin().await?;
    let owners = store::lock_comment_owners(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound("comment"))?;
    if owners.comment_author_id != user.id {
        return Err(ApiError::Forbidden("only the author may edit a comment"));
    }
    store::update_comment_content(&mut tx, id, &request.content, db::now()).await?;
    let comment = store::find_comment_view(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound("comment"))?;
    tx.commit().await?;
    Ok(axum::Json(comment))
}

/// Delete a comment: its author, or the author of the post it is on.
#[utoipa::path(delete, path = "/comments/{id}", tag = "comments",
    security(("bearer" = [])),
    params(("id" = u64, Path, description = "Comment id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "The id is not a number", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Neither the comment's nor the post's author", body = ErrorBody),
        (status = 404, description = "No such comment", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = user.id, comment = id))]
pub async fn delete_comment(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<u64>,
) -> Result<StatusCode> {
    let mut tx = state.db.writer().begin().await?;
    let owners = store::lock_comment_owners(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound("comment"))?;
    if owners.comment_author_id != user.id && owners.post_author_id != user.id {
        return Err(ApiError::Forbidden(
            "only the comment's author or the post's author may delete a comment",
        ));
    }
    store::delete_comment(&mut tx, id, owners.post_id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
