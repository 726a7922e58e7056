use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection, RawPathParamsRejection};
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

/// PostgreSQL's `text` cannot hold U+0000 ("invalid byte sequence for encoding UTF8: 0x00"), and
/// no name, description or filter of ours has a use for it. Every string a request brings in
/// through these extractors is checked here, before any handler sees it.
fn nul_rejected(field: impl Into<String>) -> ApiError {
    ApiError::field(field, "must not contain a NUL character (U+0000)")
}

/// The largest JSON body a request may bring: axum's default limit, named for the error that
/// tells it.
pub const MAX_JSON_BODY: usize = 2 * 1024 * 1024;

/// `axum::Json` whose rejections are problem documents: a body that does not match the schema
/// (wrong type, unknown or missing field) or holds a NUL character is 422, malformed JSON 400, a
/// wrong content type 415, one over [`MAX_JSON_BODY`] 413.
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<Value>::from_request(req, state).await?;
        if let Some(field) = nul_in(&value, &mut String::new()) {
            return Err(nul_rejected(field));
        }
        serde_path_to_error::deserialize(value).map(AppJson).map_err(|e| {
            // "path.to.field: what is wrong" when serde knows the field.
            let field = e.path().to_string();
            let field = if field == "." { "body".to_owned() } else { field };
            ApiError::field(field, e.into_inner().to_string())
        })
    }
}

/// The path (as serde_path_to_error writes it: `a.b[0]`) of the first string or object key in
/// `value` that holds a NUL.
fn nul_in(value: &Value, path: &mut String) -> Option<String> {
    let here = |path: &str| if path.is_empty() { "body".to_owned() } else { path.to_owned() };
    match value {
        Value::String(s) if s.contains('\0') => Some(here(path)),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let found = nul_in(v, path);
            path.truncate(len);
            found
        }),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                return Some(here(path));
            }
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(k);
            let found = nul_in(v, path);
            path.truncate(len);
            found
        }),
        _ => None,
    }
}

impl<T: serde::Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => {
                ApiError::UnsupportedMediaType("expected Content-Type: application/json".into())
            }
            other if other.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::PayloadTooLarge(MAX_JSON_BODY)
            }
            other => ApiError::BadRequest(other.body_text()),
        }
    }
}

/// `axum::extract::Path` with a problem document when a segment does not parse, and a 422 naming
/// the segment when it holds a NUL.
#[derive(Debug, Clone, Copy)]
pub struct AppPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for AppPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let raw = RawPathParams::from_request_parts(parts, state).await?;
        if let Some((name, _)) = raw.iter().find(|(_, v)| v.contains('\0')) {
            return Err(nul_rejected(name));
        }
        let axum::extract::Path(v) = axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(AppPath(v))
    }
}

impl From<RawPathParamsRejection> for ApiError {
    fn from(rejection: RawPathParamsRejection) -> Self {
        ApiError::BadRequest(format!("invalid path: {}", rejection.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::BadRequest(format!("invalid path: {}", rejection.body_text()))
    }
}

/// `axum::extract::Query` with a problem document when the query string does not parse or a
/// parameter holds a NUL.
#[derive(Debug, Clone, Copy)]
pub struct AppQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for AppQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if let Some((name, _)) =
            form_urlencoded::parse(query.as_bytes()).find(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(nul_rejected(if name.contains('\0') { "query".into() } else { name.into_owned() }));
        }
        let axum::extract::Query(v) = axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(AppQuery(v))
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::field("query", rejection.body_text())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::nul_in;

    #[test]
    fn a_nul_is_found_by_the_path_serde_would_name() {
        let at = |v| nul_in(&v, &mut String::new());
        assert_eq!(at(json!({"name": "ok", "tags": ["a", {"k": "b\u{0}"}]})).as_deref(), Some("tags[1].k"));
        assert_eq!(at(json!("x\u{0}")).as_deref(), Some("body"));
        assert_eq!(at(json!({"a": {"b\u{0}": 1}})).as_deref(), Some("a"));
        assert_eq!(at(json!({"a": [1, "two", null, {"b": true}]})), None);
    }
}
