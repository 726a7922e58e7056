//! What a call into a store's server, made while a request waits, can fail with: the server
//! not reachable, the server refusing a statement, or anything else. Jobs treat every one alike
//! (as `anyhow` errors to retry); requests tell them apart, once, in the conversion into a
//! [`domain::Error`](crate::domain::Error) below.

use crate::domain::{self, NodeId};

/// SQLSTATEs by which a store's PostgreSQL says that what was to be created exists:
/// `duplicate_database`, `duplicate_object`, and `unique_violation`, which a catalog's unique
/// index raises when two concurrent CREATEs both passed the server's own check for a name.
const DUPLICATE_SQLSTATES: [&str; 3] = ["42P04", "42710", "23505"];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The node's server did not take a connection: stopped, starting, or gone.
    #[error("node {node} is not reachable: {source:#}")]
    Unreachable {
        node: NodeId,
        #[source]
        source: anyhow::Error,
    },
    /// The server refused a statement, with its SQLSTATE.
    #[error("the server refused a statement ({code}): {message}")]
    Refused { code: String, message: String },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Self {
        match e.as_database_error().and_then(|d| d.code().map(|c| (c.into_owned(), d.message().to_owned()))) {
            Some((code, message)) => Self::Refused { code, message },
            None => Self::Other(e.into()),
        }
    }
}

impl Error {
    /// The server said that what was to be created exists (two requests racing to create one
    /// database or role both passed Berth's own check): `conflict` instead of this error.
    pub fn or_exists(self, conflict: impl FnOnce() -> domain::Error) -> domain::Error {
        match &self {
            Self::Refused { code, .. } if DUPLICATE_SQLSTATES.contains(&code.as_str()) => conflict(),
            _ => self.into(),
        }
    }
}

/// The one place a request learns what the data plane's failure means to its caller: a node
/// out of reach is a 503 to try again; a refused statement or anything else is Berth's fault.
impl From<Error> for domain::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Unreachable { node, source } => {
                tracing::warn!(%node, error = format!("{source:#}"), "a node did not answer a request");
                domain::Error::Unavailable(format!(
                    "node {node} of the store is not reachable now (stopped, starting or being changed); try again shortly"
                ))
            }
            other => domain::Error::Internal(other.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duplicate_is_the_callers_conflict_and_an_unreachable_node_is_unavailable() {
        let dup = Error::Refused { code: "42P04".into(), message: "exists".into() };
        let conflict = dup.or_exists(|| domain::Error::conflict("database_exists", "exists"));
        assert!(matches!(conflict, domain::Error::Conflict { .. }), "{conflict:?}");
        let other = Error::Refused { code: "42501".into(), message: "denied".into() };
        let internal = other.or_exists(|| domain::Error::conflict("database_exists", "exists"));
        assert!(matches!(internal, domain::Error::Internal(_)), "{internal:?}");
        let down = Error::Unreachable { node: NodeId::default(), source: anyhow::anyhow!("refused") };
        assert!(matches!(domain::Error::from(down), domain::Error::Unavailable(_)));
    }
}
