//! HTTP handlers of accounts.

use axum::extract::{OriginalUri, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::model::{RegisterRequest, SearchParams, UpdateProfileRequest, UserProfile};
use super::{password, store};
use crate::db;
use crate::error::{ApiError, ErrorBody, Result, ResultExt};
use crate::http::auth::{AuthUser, MaybeAuthUser};
use crate::http::extract::{Json, Path, Query};
use crate::http::pagination::{Page, PageParams};
use crate::state::AppState;

/// Register a new account.
#[utoipa::path(post, path = "/users", tag = "users",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created", body = UserProfile,
            headers(("Location" = String, description = "URL of the new profile"))),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 409, description = "Username or email taken", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "A field breaks its rule", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(username = %request.username))]
pub async fn register_user(
    State(state): State<AppState>,
    Json(request): Json<RegisterRequest>,
) -> Result<Response> {
    request.validate()?;
    let hash = password::hash_password(request.password.clone()).await?;
    let id = store::insert_user(
        state.db.writer(),
        &request.username,
        &request.email,
        &hash,
        db::now(),
    )
    .await
    .on_unique_violation(|message| {
        if message.contains("email") {
            "email"
        } else {
            "username"
        }
    })?;
    let profile = store::find_profile_by_id(state.db.writer(), id, Some(id))
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    let location = format!("/api/v1/users/{id}");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(profile),
    )
        .into_response())
}

/// Get a profile by user id or username.
#[utoipa::path(get, path = "/users/{id}", tag = "users",
    params(("id" = String, Path, description = "User id, or username")),
    responses(
        (status = 200, description = "The profile", body = UserProfile),
        (status = 401, description = "A token was sent but is invalid", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = %id))]
pub async fn get_user(
    State(state): State<AppState>,
    viewer: MaybeAuthUser,
    Path(id): Path<String>,
) -> Result<axum::Json<UserProfile>> {
    let mut conn = state.db.reader().await?;
    let profile = match id.parse::<u64>() {
        Ok(id) => store::find_profile_by_id(&mut conn, id, viewer.0).await?,
        Err(_) => store::find_profile_by_username(&mut conn, &id, viewer.0).await?,
    };
    profile.ok_or(ApiError::NotFound("user")).map(axum::Json)
}

/// Get the caller's own profile.
#[utoipa::path(get, path = "/users/me", tag = "users",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's profile", body = UserProfile),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    ))]
pub async fn get_me(
    State(state): State<AppState>,
    user: AuthUser,
) -> Result<axum::Json<UserProfile>> {
    // The writer: a user who just changed their profile expects to see the change.
    store::find_profile_by_id(state.db.writer(), user.id, Some(user.id))
        .await?
        .ok_or(ApiError::Unauthorized)
        .map(axum::Json)
}

/// Change the caller's display name, bio or avatar.
#[utoipa::path(patch, path = "/users/me", tag = "users",
    security(("bearer" = [])),
    request_body = UpdateProfileRequest,
    responses(
        (status = 200, description = "The updated profile", body = UserProfile),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
        (status = 415, description = "Body is not JSON", body = ErrorBody),
        (status = 422, description = "A field breaks its rule", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = user.id))]
pub async fn update_me(
    State(state): State<AppState>,
    user: AuthUser,
    Json(request): Json<UpdateProfileRequest>,
) -> Result<axum::Json<UserProfile>> {
    request.validate()?;
    store::update_profile(state.db.writer(), user.id, &request).await?;
    store::find_profile_by_id(state.db.writer(), user.id, Some(user.id))
        .await?
        // A valid token for a user that no longer exists.
        .ok_or(ApiError::Unauthorized)
        .map(axum::Json)
}

/// Search users by username or display-name prefix.
#[utoipa::path(get, path = "/users", tag = "users",
    params(SearchParams, PageParams),
    responses(
        (status = 200, description = "Matching users, by id", body = Page<UserProfile>,
            headers(("Link" = String, description = "URL of the next page"))),
        (status = 400, description = "Bad parameter or cursor", body = ErrorBody),
        (status = 401, description = "A token was sent but is invalid", body = ErrorBody),
    ))]
pub async fn search_users(
    State(state): State<AppState>,
    viewer: MaybeAuthUser,
    OriginalUri(uri): OriginalUri,
    Query(search): Query<SearchParams>,
    Query(paging): Query<PageParams>,
) -> Result<Response> {
    let prefix = search.q.trim();
    if prefix.is_empty() || prefix.chars().count() > 30 {
        return Err(ApiError::bad_request(
            "INVALID_PARAMETER",
            "q must be 1-30 characters",
        ));
    }
    let page = paging.validate(1)?;
    let after = page.after.as_ref().map_or(0, |key| key[0]);
    let mut conn = state.db.reader().await?;
    let found = store::search_profiles(&mut conn, prefix, after, page.limit + 1, viewer.0).await?;
    Ok(Page::from_overfetch(found, page.limit, |user| vec![user.id]).into_response_for(&uri))
}
