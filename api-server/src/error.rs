//! The API's one error type and its mapping to the JSON error contract.
//!
//! Every error body is `{"error": {"code", "message", "details"}}` with a stable upper-snake
//! `code`. Client mistakes map to 4xx; only our own failures become 5xx, with a generic message
//! (the cause chain is logged once, here, never sent to the client).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// Result type of handlers and services.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Validation failures keyed by field name (a field may fail several rules).
#[derive(Debug, Default, Clone, Serialize, ToSchema)]
#[serde(transparent)]
pub struct FieldErrors(pub BTreeMap<String, Vec<String>>);

impl FieldErrors {
    /// Records that `field` broke a rule described by `message`.
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.entry(field.into()).or_default().push(message.into());
    }

    /// True when no rule was broken.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when empty, else the validation error carrying every field.
    pub fn into_result(self) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self))
        }
    }

    /// A single-field validation error.
    pub fn single(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        let mut errors = Self::default();
        errors.add(field, message);
        ApiError::Validation(errors)
    }
}

/// Everything that can go wrong while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body or a parameter could not be parsed (400).
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// No token, or one that is not valid (401).
    #[error("authentication required")]
    Unauthorized,
    /// The resource exists but belongs to someone else (403).
    #[error("{0}")]
    Forbidden(&'static str),
    /// A signed URL's signature does not match its parameters, or is missing (403).
    #[error("the URL's signature is missing or does not match its parameters")]
    SignatureInvalid,
    /// A signed URL's lifetime is over (403).
    #[error("the URL has expired")]
    UrlExpired,
    /// A request to a signed URL carries a header other than the signed value (403); the
    /// code names the header, e.g. `CONTENT_TYPE_MISMATCH`.
    #[error("{header} must be `{expected}`, as signed")]
    SignedHeaderMismatch {
        header: &'static str,
        expected: String,
    },
    /// The named thing does not exist or the caller may not see it (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// No route matches the path (404).
    #[error("no route for this path")]
    RouteNotFound,
    /// The route exists but not with this method (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A unique thing already exists (409); the payload names it (`username`, `email`).
    #[error("{0} already taken")]
    Conflict(&'static str),
    /// The body is larger than the route accepts (413).
    #[error("payload too large")]
    PayloadTooLarge,
    /// A declared upload is larger than its type allows (413); names the field.
    #[error("{field} is {size} bytes; at most {limit} are allowed")]
    UploadTooLarge {
        field: String,
        size: u64,
        limit: u64,
    },
    /// An upload's type is not one of the allowed ones (415); names the field.
    #[error("{field}: `{content_type}` is not an allowed upload type")]
    MediaTypeNotAllowed { field: String, content_type: String },
    /// The body's media type is not JSON (415).
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// Fields broke validation rules (422).
    #[error("validation failed")]
    Validation(FieldErrors),
    /// The same Idempotency-Key was sent with a different request (422).
    #[error("Idempotency-Key reused with a different request")]
    IdempotencyKeyReused,
    /// A `Range` none of whose bytes exist (416); `size` is the object's length.
    #[error("the range starts past the object's {size} bytes")]
    RangeNotSatisfiable { size: u64 },
    /// The caller exceeded a rate limit (429).
    #[error("rate limit exceeded")]
    RateLimited { retry_after: Duration },
    /// A dependency is down and no fallback exists (503).
    #[error("{what} unavailable")]
    Unavailable {
        what: &'static str,
        retry_after: Duration,
    },
    /// The database took nothing of the request (503), for the reason given: it may run
    /// again.
    #[error("database unavailable: {0}")]
    NotWritable(Unwritten),
    /// The connection to the database broke while the request used it (503); part of it
    /// may have been written, so it is not run again.
    #[error("database unavailable: the connection to it was lost")]
    ConnectionLost,
    /// Our own failure (500); the cause is logged, never sent.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// A 400 with a stable code.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_)
            | Self::SignatureInvalid
            | Self::UrlExpired
            | Self::SignedHeaderMismatch { .. } => StatusCode::FORBIDDEN,
            Self::NotFound(_) | Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge | Self::UploadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType | Self::MediaTypeNotAllowed { .. } => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::Validation(_) | Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } | Self::NotWritable(_) | Self::ConnectionLost => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable upper-snake code clients switch on.
    pub fn code(&self) -> String {
        match self {
            Self::BadRequest { code, .. } => (*code).to_owned(),
            Self::Unauthorized => "UNAUTHORIZED".into(),
            Self::Forbidden(_) => "FORBIDDEN".into(),
            Self::SignatureInvalid => "SIGNATURE_INVALID".into(),
            Self::UrlExpired => "URL_EXPIRED".into(),
            Self::SignedHeaderMismatch { header, .. } => {
                format!("{}_MISMATCH", header.to_uppercase().replace('-', "_"))
            }
            Self::NotFound(what) => format!("{}_NOT_FOUND", what.to_uppercase()),
            Self::RouteNotFound => "ROUTE_NOT_FOUND".into(),
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED".into(),
            Self::Conflict(what) => format!("{}_TAKEN", what.to_uppercase()),
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE".into(),
            Self::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE".into(),
            Self::UploadTooLarge { .. } => "UPLOAD_TOO_LARGE".into(),
            Self::MediaTypeNotAllowed { .. } => "MEDIA_TYPE_NOT_ALLOWED".into(),
            Self::Validation(_) => "VALIDATION_FAILED".into(),
            Self::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED".into(),
            Self::RangeNotSatisfiable { .. } => "RANGE_NOT_SATISFIABLE".into(),
            Self::RateLimited { .. } => "RATE_LIMITED".into(),
            Self::Unavailable { what, .. } => format!("{}_UNAVAILABLE", what.to_uppercase()),
            Self::NotWritable(_) | Self::ConnectionLost => "DATABASE_UNAVAILABLE".into(),
            Self::Internal(_) => "INTERNAL".into(),
        }
    }

    fn details(&self) -> serde_json::Value {
        match self {
            Self::Validation(fields) => serde_json::json!({ "fields": fields }),
            Self::Conflict(what) => serde_json::json!({ "field": what }),
            Self::SignedHeaderMismatch { header, expected } => {
                serde_json::json!({ "header": header, "expected": expected })
            }
            Self::RangeNotSatisfiable { size } => serde_json::json!({ "size": size }),
            Self::UploadTooLarge { field, limit, .. } => {
                serde_json::json!({ "field": field, "max_bytes": limit })
            }
            Self::MediaTypeNotAllowed { field, .. } => serde_json::json!({
                "field": field,
                "allowed": crate::uploads::media::ALLOWED_TYPES
                    .iter()
                    .map(|allowed| allowed.content_type)
                    .collect::<Vec<_>>(),
            }),
            _ => serde_json::json!({}),
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } | Self::Unavailable { retry_after, .. } => {
                Some(*retry_after)
            }
            Self::NotWritable(_) => Some(Duration::from_secs(1)),
            Self::ConnectionLost => Some(Duration::from_secs(2)),
            _ => None,
        }
    }
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error itself.
    pub error: ErrorDetail,
}

/// What went wrong, for machines (`code`, `details`) and people (`message`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable upper-snake code, e.g. `POST_NOT_FOUND`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Structured context; for validation errors `{"fields": {name: [messages]}}`.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// Why the database took nothing of a statement, and so of its transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unwritten {
    /// The server refused the write as read-only: the primary moved, or is moving (a
    /// switchover or failover).
    #[error("its primary is moving")]
    ReadOnly,
    /// No connection could be opened within the acquire timeout.
    #[error("no connection to it")]
    NoConnection,
    /// The transaction lost a deadlock and was rolled back whole.
    #[error("the transaction lost a deadlock")]
    Deadlock,
}

/// Marks a response whose request lost its database connection
/// ([`ApiError::ConnectionLost`]): the server it led to is gone, and so are the others
/// opened to it.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLost;

/// Whether `error` says the connection broke (the server went away).
pub fn connection_lost(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Io(_))
}

/// Marks a response whose request the database took nothing of
/// ([`ApiError::NotWritable`]): the write-retry middleware runs such a request again.
#[derive(Clone, Copy, Debug)]
pub struct NothingWritten(pub Unwritten);

/// MariaDB/MySQL error 1290 (ER_OPTION_PREVENTS_STATEMENT): the server runs with
/// `read_only`, as a replica, a fenced former primary or a primary handing over does.
const ER_OPTION_PREVENTS_STATEMENT: u16 = 1290;

/// Why the database took nothing of the statement (and its transaction) that failed with
/// `error`; `None` when it may have taken something, or the error is of another kind.
pub fn unwritten(error: &sqlx::Error) -> Option<Unwritten> {
    match error {
        sqlx::Error::PoolTimedOut => Some(Unwritten::NoConnection),
        sqlx::Error::Database(db) if is_read_only_refusal(db.as_ref()) => Some(Unwritten::ReadOnly),
        // A deadlock victim (SQLSTATE 40001) was rolled back whole.
        sqlx::Error::Database(db) if db.code().as_deref() == Some("40001") => {
            Some(Unwritten::Deadlock)
        }
        _ => None,
    }
}

/// Whether a database error says the server refused a write for being read-only.
fn is_read_only_refusal(error: &(dyn sqlx::error::DatabaseError + 'static)) -> bool {
    error
        .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .is_some_and(|mysql| mysql.number() == ER_OPTION_PREVENTS_STATEMENT)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let connection_lost = matches!(self, Self::ConnectionLost);
        let nothing_written = match &self {
            Self::NotWritable(why) => Some(NothingWritten(*why)),
            _ => None,
        };
        let message = if let Self::Internal(cause) = &self {
            // Logged once here with the whole chain; the client only learns that it failed.
            tracing::error!(error = ?cause, "request failed");
            "internal error".to_owned()
        } else {
            self.to_string()
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message,
                details: self.details(),
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(after) = self.retry_after() {
            let secs = after.as_secs().max(1);
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        if let Some(marker) = nothing_written {
            response.extensions_mut().insert(marker);
        }
        if connection_lost {
            response.extensions_mut().insert(ConnectionLost);
        }
        response
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        if let Some(why) = unwritten(&error) {
            tracing::warn!(%error, "the database took nothing of the request: {why}");
            return Self::NotWritable(why);
        }
        match error {
            // The server went away mid-request (it may have taken part of it): not run
            // again, but the other connections opened to it are dropped.
            sqlx::Error::Io(_) => {
                tracing::warn!(%error, "database connection lost");
                Self::ConnectionLost
            }
            sqlx::Error::PoolClosed => {
                tracing::warn!(%error, "database unavailable");
                Self::Unavailable {
                    what: "database",
                    retry_after: Duration::from_secs(2),
                }
            }
            // SQLite's database lock stayed taken past the busy timeout (SQLITE_BUSY and its
            // extended codes, SQLITE_LOCKED): the write did not happen; retrying is safe.
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("5" | "6" | "261" | "517")) =>
            {
                tracing::warn!(error = %db, "SQLite database busy");
                Self::Unavailable {
                    what: "database",
                    retry_after: Duration::from_secs(1),
                }
            }
            other => Self::Internal(anyhow::Error::new(other)),
        }
    }
}

/// Turns a unique-key violation into a conflict naming what was taken.
pub trait ResultExt<T> {
    /// Maps a duplicate-key error to `ApiError::Conflict(what(key_name))`.
    fn on_unique_violation(self, what: impl FnOnce(&str) -> &'static str) -> Result<T>;
}

impl<T> ResultExt<T> for std::result::Result<T, sqlx::Error> {
    fn on_unique_violation(self, what: impl FnOnce(&str) -> &'static str) -> Result<T> {
        self.map_err(|error| match &error {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                // MySQL reports the key only inside the message ("... for key 'users_email'").
                ApiError::Conflict(what(db.message()))
            }
            _ => ApiError::from(error),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_codes_name_the_thing() {
        assert_eq!(ApiError::NotFound("post").code(), "POST_NOT_FOUND");
        assert_eq!(ApiError::NotFound("post").status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn signed_header_mismatches_name_the_header() {
        let error = ApiError::SignedHeaderMismatch {
            header: "Content-Length",
            expected: "10".into(),
        };
        assert_eq!(error.code(), "CONTENT_LENGTH_MISMATCH");
        assert_eq!(error.status(), StatusCode::FORBIDDEN);
        assert_eq!(error.details()["expected"], "10");
    }

    #[test]
    fn validation_details_name_each_field() {
        let mut errors = FieldErrors::default();
        errors.add("username", "too short");
        let details = ApiError::Validation(errors).details();
        assert_eq!(details["fields"]["username"][0], "too short");
    }
}
