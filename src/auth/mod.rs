//! Credentials: password hashing and the Postgres-backed session store.

pub mod password;
pub mod session;
pub mod throttle;
pub mod token;

pub use password::PasswordHasher;
pub use session::{PRINCIPAL_KEY, PgSessionStore, USER_ID_KEY, session_hash};
