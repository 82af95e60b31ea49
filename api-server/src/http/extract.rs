//! Extractors that turn every bad input into the JSON error contract instead of axum's plain
//! text rejections: a body that is not JSON is 415, broken JSON is 400, JSON of the wrong
//! shape is 422 naming the field, a parameter that does not parse is 400 naming it (in our
//! words: the parsers' speak of Rust types).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldErrors};

/// A JSON request body.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| match rejection {
                BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
                    ApiError::PayloadTooLarge
                }
                other => ApiError::bad_request("MALFORMED_BODY", other.body_text()),
            })?;
        parse_json_body(&bytes).map(Json)
    }
}

/// Parses a JSON body: a syntax error is 400, a shape error 422 naming the field.
pub fn parse_json_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|error| {
        ApiError::bad_request("MALFORMED_JSON", format!("malformed JSON: {error}"))
    })?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "MALFORMED_JSON",
            "the body must be a JSON object",
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let message = error.inner().to_string();
        let field = if path == "." {
            missing_field_name(&message).unwrap_or("body").to_owned()
        } else {
            path
        };
        FieldErrors::single(field, message)
    })
}

/// serde reports a missing field as "missing field `name`" at the parent's path.
fn missing_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.split('`').next()
}

fn has_json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Query parameters; a value that does not parse is 400 `INVALID_PARAMETER`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or_default()).map(Query)
    }
}

/// Path parameters; a segment that does not parse is 400 `INVALID_PARAMETER`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<S, T> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => {
                // A single parameter's error names no key: the route's parameters do.
                let names: Vec<String> =
                    axum::extract::RawPathParams::from_request_parts(parts, state)
                        .await
                        .map(|params| params.iter().map(|(name, _)| name.to_owned()).collect())
                        .unwrap_or_default();
                Err(ApiError::bad_request(
                    "INVALID_PARAMETER",
                    path_message(&rejection, &names),
                ))
            }
        }
    }
}

/// Parses a query string; a value that does not parse names its parameter, in our words
/// (the parser's are about Rust types).
pub fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let deserializer =
        serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|error| {
        let parameter = error.path().to_string();
        let message = if parameter == "." {
            "the query string is not valid".to_owned()
        } else {
            format!("the query parameter `{parameter}` has a value that is not valid")
        };
        ApiError::bad_request("INVALID_PARAMETER", message)
    })
}

/// What a path parameter that does not parse gets told.
fn path_message(rejection: &PathRejection, names: &[String]) -> String {
    use axum::extract::path::ErrorKind;
    let PathRejection::FailedToDeserializePathParams(error) = rejection else {
        return "a path parameter is missing".to_owned();
    };
    match error.kind() {
        ErrorKind::ParseErrorAtKey {
            key, expected_type, ..
        } => format!(
            "the path parameter `{key}` must be {}",
            describe_type(expected_type)
        ),
        ErrorKind::ParseError { expected_type, .. }
        | ErrorKind::ParseErrorAtIndex { expected_type, .. } => match names {
            [only] => format!(
                "the path parameter `{only}` must be {}",
                describe_type(expected_type)
            ),
            _ => format!("a path parameter must be {}", describe_type(expected_type)),
        },
        ErrorKind::InvalidUtf8InPathParam { key } => {
            format!("the path parameter `{key}` is not valid UTF-8")
        }
        _ => "a path parameter is not valid".to_owned(),
    }
}

/// A Rust type as a client would say it.
fn describe_type(rust_type: &str) -> String {
    match rust_type {
        "u64" => format!("a whole number from 0 to {}", u64::MAX),
        "u32" => format!("a whole number from 0 to {}", u32::MAX),
        "i64" | "i32" => "a whole number".to_owned(),
        "bool" => "true or false".to_owned(),
        _ => "a valid value".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Signup {
        username: String,
        age: u8,
    }

    #[test]
    fn broken_json_is_a_bad_request() {
        let error = parse_json_body::<Signup>(b"{\"username\": ").unwrap_err();
        assert_eq!(error.code(), "MALFORMED_JSON");
    }

    #[test]
    fn missing_field_is_named() {
        let error = parse_json_body::<Signup>(br#"{"age": 3}"#).unwrap_err();
        let ApiError::Validation(fields) = error else {
            panic!("expected a validation error, got {error:?}");
        };
        assert!(fields.0.contains_key("username"));
    }

    #[test]
    fn wrong_type_is_named_by_path() {
        let error = parse_json_body::<Signup>(br#"{"username": "a", "age": "x"}"#).unwrap_err();
        let ApiError::Validation(fields) = error else {
            panic!("expected a validation error, got {error:?}");
        };
        assert!(fields.0.contains_key("age"));
    }
}
