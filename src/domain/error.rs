//! What a rule of the domain answers when it refuses: an error with no HTTP in it, which the
//! HTTP layer renders once (`crate::error::ApiError`), and which services, jobs and the driver's
//! catalog return alike.

use serde::Serialize;
use utoipa::ToSchema;

use super::{QuotaExceeded, Scope};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One offending field of a rejected request.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct FieldError {
    /// JSON pointer-ish name of the field (`email`, `role`, `body`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A value breaks a rule; each offending field is named.
    #[error("{detail}")]
    Invalid { detail: String, errors: Vec<FieldError> },
    /// The caller may not do this (`code` says why, for clients to branch on).
    #[error("{detail}")]
    Forbidden { code: &'static str, detail: String },
    #[error("the access token lacks the scope {}", .0.as_str())]
    InsufficientScope(Scope),
    /// None of the caller's organization: the same whether it exists elsewhere or not at all.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The resource's state does not allow it now.
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("the resource changed since it was read (If-Match); read it again")]
    PreconditionFailed,
    #[error("{0}")]
    QuotaExceeded(QuotaExceeded),
    /// The operator's capacity (node ports, say) is used up: not the tenant's doing, and gone
    /// when capacity is freed or added.
    #[error("{0}")]
    CapacityExhausted(String),
    /// Something this depends on cannot be reached now; asking again later may work.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    /// One field that breaks a rule.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let (field, message) = (field.into(), message.into());
        Self::Invalid { detail: format!("{field}: {message}"), errors: vec![FieldError { field, message }] }
    }

    /// Several fields that break rules, all named; the detail joins them.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let detail =
            errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
        Self::Invalid { detail, errors }
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::Forbidden { code: "forbidden", detail: detail.into() }
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Conflict { code, detail: detail.into() }
    }
}

impl From<sqlx::Error> for Error {
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

/// Maps a database constraint violation to the error it means (constraint names come from
/// `migrations/` and are part of the contract between the two); any other database error is
/// what it is.
pub fn on_constraint<E: From<Error>>(err: sqlx::Error, map: impl FnOnce(&str) -> Option<E>) -> E {
    if let sqlx::Error::Database(db) = &err {
        if let Some(mapped) = db.constraint().and_then(map) {
            return mapped;
        }
    }
    Error::from(err).into()
}
