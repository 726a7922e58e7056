use axum::extract::FromRequest;
use axum::extract::FromRequestParts;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// `axum::Json` whose rejections are problem documents: a body that does not match the schema
/// (wrong type, unknown or missing field) is 422, malformed JSON 400, a wrong content type 415.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct AppJson<T>(pub T);

impl<T: serde::Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(e) => {
                // serde's message names the field ("unknown field `x`, expected one of ...").
                let message = e.body_text();
                let message = message
                    .strip_prefix("Failed to deserialize the JSON body into the target type: ")
                    .unwrap_or(&message)
                    .to_owned();
                // "path.to.field: what is wrong" when serde knows the field.
                match message.split_once(": ") {
                    Some((path, rest)) if !path.contains(' ') => ApiError::field(path, rest),
                    _ => ApiError::field("body", message),
                }
            }
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::UnsupportedMediaType("expected Content-Type: application/json".into())
            }
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

/// `axum::extract::Path` with a problem document when a segment does not parse.
#[derive(Debug, Clone, Copy, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct AppPath<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::BadRequest(format!("invalid path: {}", rejection.body_text()))
    }
}

/// `axum::extract::Query` with a problem document when the query string does not parse.
#[derive(Debug, Clone, Copy, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct AppQuery<T>(pub T);

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::field("query", rejection.body_text())
    }
}
