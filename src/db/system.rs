//! The control database itself: its version and the migrations applied to it.

use sqlx::PgExecutor;

/// The server's `server_version`.
pub async fn server_version(ex: impl PgExecutor<'_>) -> sqlx::Result<String> {
    sqlx::query_scalar("show server_version").fetch_one(ex).await
}

/// How many migrations have been applied successfully.
pub async fn migrations_applied(ex: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar("select count(*) from _sqlx_migrations where success").fetch_one(ex).await
}
