//! HTTP handler of the home feed.

use axum::extract::{OriginalUri, State};
use axum::http::HeaderValue;
use axum::response::Response;

use super::service;
use crate::error::{ErrorBody, Result};
use crate::http::auth::AuthUser;
use crate::http::extract::Query;
use crate::http::pagination::{Page, PageParams, encode_cursor};
use crate::posts::model::PostView;
use crate::state::AppState;

/// The caller's home feed: their own posts and those of everyone they follow, newest first.
#[utoipa::path(get, path = "/feed", tag = "feed",
    security(("bearer" = [])),
    params(PageParams),
    responses(
        (status = 200, description = "A page of the feed", body = Page<PostView>,
            headers(
                ("Link" = String, description = "URL of the next page"),
                ("X-Feed-Source" = String, description = "`redis`, or `database` when served from MySQL"),
            )),
        (status = 400, description = "Bad parameter or cursor", body = ErrorBody),
        (status = 401, description = "Missing or invalid token", body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(user = user.id))]
pub async fn get_feed(
    State(state): State<AppState>,
    user: AuthUser,
    OriginalUri(uri): OriginalUri,
    Query(paging): Query<PageParams>,
) -> Result<Response> {
    let page = paging.validate(1)?;
    let before = page.after.as_ref().map(|key| key[0]);
    let feed = service::read_feed(&state, user.id, before, page.limit).await?;
    state
        .metrics
        .feed_reads
        .with_label_values(&[feed.source.as_str()])
        .inc();
    let body = Page {
        items: feed.items,
        next_cursor: feed.next_before.map(|id| encode_cursor(&[id])),
    };
    let mut response = body.into_response_for(&uri);
    response.headers_mut().insert(
        "x-feed-source",
        HeaderValue::from_static(feed.source.as_str()),
    );
    Ok(response)
}
