//! One error type for the HTTP API, rendered as RFC 9457 `application/problem+json`.
//!
//! Every variant has a stable machine-readable `code`; clients branch on it, never on `detail`.
//! A 500 is logged once here, server-side, and the client sees only an opaque id to quote.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::Error as DomainError;
pub use crate::domain::FieldError;

pub type ApiResult<T> = Result<T, ApiError>;

/// When to ask again after `capacity_exhausted`: capacity comes back as other tenants remove
/// nodes, or when the operator adds some, neither of which is quick.
const CAPACITY_RETRY_AFTER_SECS: u64 = 300;

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

/// Everything a request can be answered with but success: the domain's refusals, and what only
/// HTTP knows (a malformed request, missing or wrong credentials, throttling).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("{0}")]
    BadRequest(String),
    #[error("authentication required")]
    Unauthenticated,
    #[error("wrong login or password")]
    InvalidCredentials,
    #[error("the access token is invalid, expired or revoked")]
    InvalidToken,
    #[error("the body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("too many attempts")]
    TooManyRequests { retry_after_secs: u64 },
}

impl ApiError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        DomainError::field(field, message).into()
    }

    pub fn invalid(errors: Vec<FieldError>) -> Self {
        DomainError::invalid(errors).into()
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        DomainError::forbidden(detail).into()
    }

    pub fn forbidden_as(code: &'static str, detail: impl Into<String>) -> Self {
        DomainError::Forbidden { code, detail: detail.into() }.into()
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        DomainError::conflict(code, detail).into()
    }

    pub fn not_found(what: &'static str) -> Self {
        DomainError::NotFound(what).into()
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Domain(e) => match e {
                DomainError::Invalid { .. } | DomainError::QuotaExceeded(_) => {
                    StatusCode::UNPROCESSABLE_ENTITY
                }
                DomainError::Forbidden { .. } | DomainError::InsufficientScope(_) => StatusCode::FORBIDDEN,
                DomainError::NotFound(_) => StatusCode::NOT_FOUND,
                DomainError::Conflict { .. } => StatusCode::CONFLICT,
                DomainError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
                DomainError::Unavailable(_) | DomainError::CapacityExhausted(_) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                DomainError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            },
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthenticated | Self::InvalidCredentials | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Domain(e) => match e {
                DomainError::Invalid { .. } => "validation_failed",
                DomainError::Forbidden { code, .. } | DomainError::Conflict { code, .. } => code,
                DomainError::InsufficientScope(_) => "insufficient_scope",
                DomainError::NotFound(_) => "not_found",
                DomainError::PreconditionFailed => "precondition_failed",
                DomainError::QuotaExceeded(_) => "quota_exceeded",
                DomainError::CapacityExhausted(_) => "capacity_exhausted",
                DomainError::Unavailable(_) => "service_unavailable",
                DomainError::Internal(_) => "internal_error",
            },
            Self::BadRequest(_) => "bad_request",
            Self::Unauthenticated => "unauthenticated",
            Self::InvalidCredentials => "invalid_credentials",
            Self::InvalidToken => "invalid_token",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::TooManyRequests { .. } => "too_many_requests",
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        DomainError::from(err).into()
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        DomainError::Internal(err).into()
    }
}

pub use crate::domain::on_constraint;

impl From<crate::auth::throttle::Throttled> for ApiError {
    fn from(t: crate::auth::throttle::Throttled) -> Self {
        Self::TooManyRequests { retry_after_secs: t.retry_after_secs }
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
            Self::Domain(DomainError::Invalid { detail, errors }) => (Some(detail.clone()), errors.clone()),
            Self::Domain(DomainError::Internal(err)) => {
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
            Self::Domain(DomainError::QuotaExceeded(e)) => Some(*e),
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
            Self::Domain(DomainError::InsufficientScope(scope)) => {
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
            Self::Domain(DomainError::CapacityExhausted(_)) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(CAPACITY_RETRY_AFTER_SECS));
            }
            _ => {}
        }
        res
    }
}
