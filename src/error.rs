//! One error type for the HTTP API, rendered as RFC 9457 `application/problem+json`.
//!
//! Every variant has a stable machine-readable `code`; clients branch on it, never on `detail`.
//! A 500 is logged once here, server-side, and the client sees only an opaque id to quote.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

pub type ApiResult<T> = Result<T, ApiError>;

/// When to ask again after `capacity_exhausted`: capacity comes back as other tenants remove
/// nodes, or when the operator adds some, neither of which is quick.
const CAPACITY_RETRY_AFTER_SECS: u64 = 300;

/// One offending field of a rejected request.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    /// JSON pointer-ish name of the field (`email`, `role`, `body`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// URI naming the kind of problem; stable for a given `code`.
    #[schema(example = "urn:berth:problem:validation_failed")]
    pub r#type: String,
    /// Short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// Explanation specific to this occurrence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Stable machine-readable code.
    #[schema(example = "validation_failed")]
    pub code: String,
    /// Per-field errors of a rejected request body.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// For server errors: an id to quote to the operator, who finds it in the log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// For `quota_exceeded`: the quota (`stores`, `nodes`, `vpcs`, `backup_bytes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<String>,
    /// For `quota_exceeded`: the organization's limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    /// For `quota_exceeded`: what the organization has of it now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    Validation { detail: String, errors: Vec<FieldError> },
    #[error("{0}")]
    BadRequest(String),
    #[error("authentication required")]
    Unauthenticated,
    #[error("wrong login or password")]
    InvalidCredentials,
    #[error("the access token is invalid, expired or revoked")]
    InvalidToken,
    #[error("the access token lacks the scope {}", .0.as_str())]
    InsufficientScope(crate::domain::Scope),
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("the resource changed since it was read (If-Match); read it again")]
    PreconditionFailed,
    #[error("the body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("too many attempts")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("{0}")]
    Unavailable(String),
    /// The operator's capacity (node ports, say) is used up: not the tenant's doing, and gone
    /// when capacity is freed or added.
    #[error("{0}")]
    CapacityExhausted(String),
    #[error("{0}")]
    QuotaExceeded(crate::quota::QuotaExceeded),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let (field, message) = (field.into(), message.into());
        Self::Validation {
            detail: format!("{field}: {message}"),
            errors: vec![FieldError { field, message }],
        }
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::Forbidden { code: "forbidden", detail: detail.into() }
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Conflict { code, detail: detail.into() }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthenticated | Self::InvalidCredentials | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } | Self::InsufficientScope(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) | Self::CapacityExhausted(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::QuotaExceeded(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Validation { .. } => "validation_failed",
            Self::BadRequest(_) => "bad_request",
            Self::Unauthenticated => "unauthenticated",
            Self::InvalidCredentials => "invalid_credentials",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::Forbidden { code, .. } | Self::Conflict { code, .. } => code,
            Self::NotFound(_) => "not_found",
            Self::PreconditionFailed => "precondition_failed",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::TooManyRequests { .. } => "too_many_requests",
            Self::Unavailable(_) => "service_unavailable",
            Self::CapacityExhausted(_) => "capacity_exhausted",
            Self::QuotaExceeded(_) => "quota_exceeded",
            Self::Internal(_) => "internal_error",
        }
    }
}

/// Maps a database constraint violation to the API error it means; anything else is a 500.
/// Constraint names come from `migrations/` and are part of the contract between the two.
pub fn on_constraint(err: sqlx::Error, map: impl FnOnce(&str) -> Option<ApiError>) -> ApiError {
    if let sqlx::Error::Database(db) = &err {
        if let Some(mapped) = db.constraint().and_then(map) {
            return mapped;
        }
    }
    ApiError::Internal(err.into())
}

/// SQLSTATEs by which a store's PostgreSQL says that what was to be created exists:
/// `duplicate_database`, `duplicate_object`, and `unique_violation`, which a catalog's unique
/// index raises when two concurrent CREATEs both passed the server's own check for a name.
const DUPLICATE_SQLSTATES: [&str; 3] = ["42P04", "42710", "23505"];

/// Maps a data-plane error saying "it exists" to `conflict` (two requests racing to create one
/// database or role both passed Berth's check); anything else is a 500.
pub fn on_duplicate(err: anyhow::Error, conflict: impl FnOnce() -> ApiError) -> ApiError {
    let duplicate = err.chain().any(|e| {
        e.downcast_ref::<sqlx::Error>()
            .and_then(|e| e.as_database_error())
            .and_then(|db| db.code())
            .is_some_and(|code| DUPLICATE_SQLSTATES.contains(&code.as_ref()))
    });
    if duplicate { conflict() } else { ApiError::Internal(err) }
}

impl From<crate::auth::throttle::Throttled> for ApiError {
    fn from(t: crate::auth::throttle::Throttled) -> Self {
        Self::TooManyRequests { retry_after_secs: t.retry_after_secs }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                tracing::error!(error = %err, "control database unavailable");
                Self::Unavailable("the control database is unavailable; try again shortly".into())
            }
            other => Self::Internal(other.into()),
        }
    }
}

pub fn problem_response(status: StatusCode, problem: &Problem) -> Response {
    let mut res = (status, axum::Json(problem)).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    res
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut instance = None;
        let (detail, errors) = match &self {
            Self::Validation { detail, errors } => (Some(detail.clone()), errors.clone()),
            Self::Internal(err) => {
                let id = uuid::Uuid::now_v7();
                tracing::error!(error_id = %id, error = ?err, "internal error");
                instance = Some(format!("urn:uuid:{id}"));
                (Some(format!("internal error; quote {id} to the operator")), vec![])
            }
            Self::Unauthenticated => (Some("sign in or present a bearer token".into()), vec![]),
            Self::TooManyRequests { retry_after_secs } => {
                (Some(format!("too many failed attempts; retry in {retry_after_secs} s")), vec![])
            }
            other => (Some(other.to_string()), vec![]),
        };
        let code = self.code();
        let exceeded = match &self {
            Self::QuotaExceeded(e) => Some(*e),
            _ => None,
        };
        let problem = Problem {
            r#type: format!("urn:berth:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            code: code.to_owned(),
            errors,
            instance,
            quota: exceeded.map(|e| e.quota.as_str().to_owned()),
            limit: exceeded.map(|e| e.limit),
            usage: exceeded.map(|e| e.usage),
        };
        let mut res = problem_response(status, &problem);
        let headers = res.headers_mut();
        match self {
            Self::Unauthenticated | Self::InvalidCredentials => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer realm="berth""#));
            }
            Self::InvalidToken => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(
                        r#"Bearer realm="berth", error="invalid_token", error_description="the access token is invalid, expired or revoked""#,
                    ),
                );
            }
            Self::InsufficientScope(scope) => {
                let v = format!(
                    r#"Bearer realm="berth", error="insufficient_scope", scope="{}""#,
                    scope.as_str()
                );
                if let Ok(v) = HeaderValue::from_str(&v) {
                    headers.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            Self::TooManyRequests { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            Self::CapacityExhausted(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(CAPACITY_RETRY_AFTER_SECS));
            }
            _ => {}
        }
        res
    }
}
