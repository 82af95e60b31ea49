//! Cursor paging shared by every list: `?cursor=&limit=` in, `{items, next_cursor}` and a
//! `Link: <...>; rel="next"` header out.
//!
//! A cursor is opaque to clients: base64url of `v1:` and the sort key of the last item sent
//! (one or more unsigned numbers), so lists page by keyset, never by offset.

use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

/// Items per page when the client does not say.
pub const DEFAULT_LIMIT: u32 = 20;
/// Most items a client may ask for in one page.
pub const MAX_LIMIT: u32 = 50;

/// `?cursor=&limit=` as sent.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Items per page, 1-50 (default 20).
    #[param(minimum = 1, maximum = 50)]
    pub limit: Option<u32>,
}

/// A validated page request: the decoded cursor key and the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Sort key of the last item of the previous page, if any.
    pub after: Option<Vec<u64>>,
    /// Items wanted.
    pub limit: u32,
}

impl PageParams {
    /// Checks the limit and decodes a cursor that must carry `key_len` numbers.
    pub fn validate(&self, key_len: usize) -> Result<PageRequest, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(ApiError::bad_request(
                "INVALID_PARAMETER",
                format!("limit must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let after = match self.cursor.as_deref() {
            None | Some("") => None,
            Some(cursor) => Some(decode_cursor(cursor, key_len)?),
        };
        Ok(PageRequest { after, limit })
    }
}

/// Encodes a sort key as an opaque cursor.
pub fn encode_cursor(key: &[u64]) -> String {
    let text = key.iter().map(u64::to_string).collect::<Vec<_>>().join(":");
    URL_SAFE_NO_PAD.encode(format!("v1:{text}"))
}

fn decode_cursor(cursor: &str, key_len: usize) -> Result<Vec<u64>, ApiError> {
    let invalid =
        || ApiError::bad_request("INVALID_CURSOR", "the cursor is not one this API issued");
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let body = text.strip_prefix("v1:").ok_or_else(invalid)?;
    let key = body
        .split(':')
        .map(str::parse)
        .collect::<Result<Vec<u64>, _>>()
        .map_err(|_| invalid())?;
    if key.len() != key_len {
        return Err(invalid());
    }
    Ok(key)
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items, in the list's order.
    pub items: Vec<T>,
    /// Cursor of the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` fetched items: the extra one only proves that a
    /// next page exists, and `key` gives the sort key of the last item kept.
    pub fn from_overfetch(mut items: Vec<T>, limit: u32, key: impl Fn(&T) -> Vec<u64>) -> Self {
        let has_more = items.len() > limit as usize;
        items.truncate(limit as usize);
        let next_cursor = if has_more {
            items.last().map(|last| encode_cursor(&key(last)))
        } else {
            None
        };
        Self { items, next_cursor }
    }

    /// Answers with the page as JSON and a `Link` header to the next page, built from the
    /// request's own URI so that every other query parameter is kept.
    pub fn into_response_for(self, uri: &Uri) -> Response
    where
        T: Serialize,
    {
        let link = self
            .next_cursor
            .as_deref()
            .map(|cursor| next_link(uri, cursor));
        let mut response = axum::Json(self).into_response();
        if let Some(value) = link.and_then(|link| HeaderValue::from_str(&link).ok()) {
            response.headers_mut().insert(header::LINK, value);
        }
        response
    }
}

fn next_link(uri: &Uri, cursor: &str) -> String {
    let mut query: Vec<String> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty() && !pair.starts_with("cursor="))
        .map(str::to_owned)
        .collect();
    query.push(format!("cursor={cursor}"));
    format!("<{}?{}>; rel=\"next\"", uri.path(), query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let params = PageParams {
            cursor: Some(encode_cursor(&[7, 9])),
            limit: Some(5),
        };
        assert_eq!(
            params.validate(2).unwrap(),
            PageRequest {
                after: Some(vec![7, 9]),
                limit: 5
            }
        );
    }

    #[test]
    fn foreign_cursor_and_bad_limit_are_rejected() {
        let forged = PageParams {
            cursor: Some("bm9wZQ".into()),
            limit: None,
        };
        assert_eq!(forged.validate(1).unwrap_err().code(), "INVALID_CURSOR");
        let too_many = PageParams {
            cursor: None,
            limit: Some(51),
        };
        assert_eq!(
            too_many.validate(1).unwrap_err().code(),
            "INVALID_PARAMETER"
        );
    }

    #[test]
    fn next_link_keeps_other_parameters() {
        let uri: Uri = "/api/v1/feed?limit=5&cursor=old".parse().unwrap();
        assert_eq!(
            next_link(&uri, "new"),
            "</api/v1/feed?limit=5&cursor=new>; rel=\"next\""
        );
    }

    #[test]
    fn overfetched_item_only_signals_a_next_page() {
        let page = Page::from_overfetch(vec![5u64, 4, 3], 2, |id| vec![*id]);
        assert_eq!(page.items, vec![5, 4]);
        assert_eq!(page.next_cursor, Some(encode_cursor(&[4])));
        let last = Page::from_overfetch(vec![5u64], 2, |id| vec![*id]);
        assert_eq!(last.next_cursor, None);
    }
}
