use sqlx::PgExecutor;
use time::OffsetDateTime;

pub struct Window {
    pub failures: i64,
    pub oldest: Option<OffsetDateTime>,
}

/// Failures for `login` since `since`, and the oldest of them (it leaves the window first).
pub async fn in_window(
    ex: impl PgExecutor<'_>,
    login: &str,
    since: OffsetDateTime,
) -> sqlx::Result<Window> {
    let r = sqlx::query!(
        r#"select count(*) as "failures!", min(failed_at) as oldest
           from login_failures where login = $1 and failed_at > $2"#,
        login,
        since
    )
    .fetch_one(ex)
    .await?;
    Ok(Window {
        failures: r.failures,
        oldest: r.oldest,
    })
}

pub async fn record(ex: impl PgExecutor<'_>, login: &str, at: OffsetDateTime) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into login_failures (login, failed_at) values ($1, $2)",
        login,
        at
    )
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn clear(ex: impl PgExecutor<'_>, login: &str) -> sqlx::Result<()> {
    sqlx::query!("delete from login_failures where login = $1", login)
        .execute(ex)
        .await?;
    Ok(())
}

pub async fn purge_before(ex: impl PgExecutor<'_>, before: OffsetDateTime) -> sqlx::Result<u64> {
    let done = sqlx::query!("delete from login_failures where failed_at <= $1", before)
        .execute(ex)
        .await?;
    Ok(done.rows_affected())
}
