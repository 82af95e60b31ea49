//! HTTP handlers of posts.

use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::model::{CreatePostRequest, PostView, UpdatePostRequest, check_idempotency_key};
use super::{service, store};
use crate::db;
use crate::error::{ApiError, ErrorBody, Result};
use crate::feed::jobs::FeedJob;
use crate::feed::store as feed;
use crate::http::auth::{AuthUser, MaybeAuthUser};
use crate::http::extract::{Json, Path, Query};
use crate::http::pagination::{Page, PageParams};
use crate::state::AppState;
use crate::uploads::service as uploads;
use crate::users::store as users;

/// Header a client sets to make `POST /posts` safe to retry.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Write a post.
#[utoipa::path(post, path = "/posts", tag = "posts",
    security(("bearer" = [])),
    request_body = CreatePostRequest,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Retrying with the same key returns the post the first request created")),
    responses(
        (status = 201, description = "Created", body = PostView,
            headers(("Location" = String, description = "URL of the new post"))),
        (status = 400, description = "Malformed JSON or Idempotency-Key", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "A field breaks its rule, a media key is unusable, or the key was reused for another request", body = ErrorBody),
        (status = 503, description = "The object store cannot be reached to check media", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(author = user.id))]
pub async fn create_post(
    State(state): State<AppState>,
    user: AuthUser,
    headers: HeaderMap,
    Json(request): Json<CreatePostRequest>,
) -> Result<Response> {
    request.validate()?;
    let key = match headers.get(IDEMPOTENCY_KEY) {
        Some(value) => {
            let key = value.to_str().map_err(|_| {
                ApiError::bad_request("INVALID_IDEMPOTENCY_KEY", "Idempotency-Key must be ASCII")
            })?;
            check_idempotency_key(key)?;
            Some(key.to_owned())
        }
        None => None,
    };
    let fingerprint = request.fingerprint();
    if let Some(key) = &key
        && let Some(existing) = replayed_post(&state, user.id, key, &fingerprint).await?
    {
        return Ok(created(existing));
    }
    let media = uploads::verify_media(&state, user.id, &request.media).await?;

    let now = db::now();
    let mut tx = state.db.writer().begin().await?;
    let id = store::insert_post(&mut tx, user.id, &request.content, now).await?;
    store::replace_media(&mut tx, id, &media).await?;
    if state.kv.is_some() {
        // Committed with the post: its fan-out survives a crash of this process.
        let job = FeedJob::FanOut {
            post_id: id,
            author_id: user.id,
        };
        feed::insert_outbox_job(&mut tx, job, now, now).await?;
    }
    if let Some(key) = &key
        && let Err(error) =
            store::insert_idempotency_key(&mut tx, user.id, key, &fingerprint, id, now).await
    {
        drop(tx);
        // A concurrent request with the same key won the race: answer with its post.
        if let sqlx::Error::Database(db) = &error
            && db.is_unique_violation()
            && let Some(existing) = replayed_post(&state, user.id, key, &fingerprint).await?
        {
            return Ok(created(existing));
        }
        return Err(error.into());
    }
    // Read back in the transaction that wrote it: another connection could lead to a
    // server that does not have it yet (a primary handing over, a proxy's other backend).
    let mut post = store::find_post_view(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound("post"))?;
    tx.commit().await?;
    state.feed.fanout_wake.notify_one();

    service::sign_media_urls(&state, std::slice::from_mut(&mut post)).await;
    Ok(created(post))
}

/// The post an earlier request with this Idempotency-Key created, if any.
async fn replayed_post(
    state: &AppState,
    user_id: u64,
    key: &str,
    fingerprint: &str,
) -> Result<Option<PostView>> {
    let Some((post_id, stored)) =
        store::find_idempotent_post(state.db.writer(), user_id, key).await?
    else {
        return Ok(None);
    };
    if stored != fingerprint {
        return Err(ApiError::IdempotencyKeyReused);
    }
    // Deleted since: the key still stands for it, and the client learns it is gone.
    find_post_on_writer(state, post_id).await.map(Some)
}

/// A post just written, read back from the writer (a replica may lag), media URLs signed.
async fn find_post_on_writer(state: &AppState, id: u64) -> Result<PostView> {
    let mut conn = state.db.writer().acquire().await?;
    let mut post = store::find_post_view(&mut conn, id)
        .await?
        .ok_or(ApiError::NotFound("post"))?;
    service::sign_media_urls(state, std::slice::from_mut(&mut post)).await;
    Ok(post)
}

fn created(post: PostView) -> Response {
    let location = format!("/api/v1/posts/{}", post.id);
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(post),
    )
        .into_response()
}

/// Get a post.
#[utoipa::path(get, path = "/posts/{id}", tag = "posts",
    params(("id" = u64, Path, description = "Post id")),
    responses(
        (status = 200, description = "The post", body = PostView),
        (status = 400, description = "The id is not a number", body = ErrorBody),
        (status = 401, description = "A token was sent but is invalid", body = ErrorBody),
        (status = 404, description = "No such post, or deleted", body = ErrorBody),
    ))]
pub async fn get_post(
    State(state): State<AppState>,
    viewer: MaybeAuthUser,
    Path(id): Path<u64>,
) -> Result<axum::Json<PostView>> {
    service::hydrate_posts(&state, &[id], viewer.0)
        .await?
        .pop()
        .ok_or(ApiError::NotFound("post"))
        .map(axum::Json)
}

/// Edit one's own post.
#[utoipa::path(patch, path = "/posts/{id}", tag = "posts",
    security(("bearer" = [])),
    params(("id" = u64, Path, description = "Post id")),
    request_body = UpdatePostRequest,
    responses(
        (status = 200, description = "The edited post", body = PostView),
        (status = 400, description = "Malformed JSON or id", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Someone else's post", body = ErrorBody),
        (status = 404, description = "No such post", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "A field breaks its rule or a media key is unusable", body = ErrorBody),
        (status = 503, description = "The object store cannot be reached to check media", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = user.id, post = id))]
pub async fn update_post(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<u64>,
    Json(request): Json<UpdatePostRequest>,
) -> Result<axum::Json<PostView>> {
    request.validate()?;
    check_author(
        store::find_post_author(state.db.writer(), id).await?,
        user.id,
    )?;
    // The bucket is asked before the row is locked: no lock waits on S3.
    let media = match &request.media {
        Some(keys) => Some(uploads::verify_media(&state, user.id, keys).await?),
        None => None,
    };
    let mut tx = state.db.writer().begin().await?;
    check_author(store::lock_post_author(&mut tx, id).await?, user.id)?;
    if let Some(content) = &request.content {
        store::update_post_content(&mut tx, id, content, db::now()).await?;
    }
    if let Some(media) = &media {
        store::replace_media(&mut tx, id, media).await?;
        if request.content.is_none() {
            store::mark_edited(&mut tx, id, db::now()).await?;
        }
    }
    // Read back in the transaction that wrote it (see create_post).
    let mut post = store::find_post_view(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound("post"))?;
    tx.commit().await?;
    service::write_through_post(&state, &post).await;
    let mut conn = state.db.writer().acquire().await?;
    service::apply_viewer_state(
        &state,
        &mut conn,
        std::slice::from_mut(&mut post),
        Some(user.id),
    )
    .await?;
    Ok(axum::Json(post))
}

/// Refuses anyone but the author of a live post.
fn check_author(author: Option<u64>, user_id: u64) -> Result<()> {
    match author {
        None => Err(ApiError::NotFound("post")),
        Some(author) if author != user_id => {
            Err(ApiError::Forbidden("only the author may edit a post"))
        }
        Some(_) => Ok(()),
    }
}

/// Delete one's own post.
#[utoipa::path(delete, path = "/posts/{id}", tag = "posts",
    security(("bearer" = [])),
    params(("id" = u64, Path, description = "Post id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "The id is not a number", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 403, description = "Someone else's post", body = ErrorBody),
        (status = 404, description = "No such post", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = user.id, post = id))]
pub async fn delete_post(
    State(state): State<AppState>,
    user: AuthUser,
    Path(id): Path<u64>,
) -> Result<StatusCode> {
    let mut tx = state.db.writer().begin().await?;
    let author = store::lock_post_author(&mut tx, id)
        .await?
        .ok_or(ApiError::NotFound("post"))?;
    if author != user.id {
        return Err(ApiError::Forbidden("only the author may delete a post"));
    }
    store::soft_delete_post(&mut tx, id, author, db::now()).await?;
    tx.commit().await?;
    // Feeds drop it at once when hydrating (the body is gone) and forget the id lazily.
    service::forget_cached_post(&state, id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// An author's posts, newest first.
#[utoipa::path(get, path = "/users/{id}/posts", tag = "posts",
    params(("id" = u64, Path, description = "Author's user id"), PageParams),
    responses(
        (status = 200, description = "A page of posts", body = Page<PostView>,
            headers(("Link" = String, description = "URL of the next page"))),
        (status = 400, description = "Bad parameter or cursor", body = ErrorBody),
        (status = 401, description = "A token was sent but is invalid", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    ))]
pub async fn list_user_posts(
    State(state): State<AppState>,
    viewer: MaybeAuthUser,
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
    let mut posts = store::list_author_posts(&mut conn, id, before, page.limit + 1).await?;
    service::apply_viewer_state(&state, &mut conn, &mut posts, viewer.0).await?;
    Ok(Page::from_overfetch(posts, page.limit, |post| vec![post.id]).into_response_for(&uri))
}
