//! Failed authentication attempts per subject (`login:<email>`, `client:<client_id>`), for
//! throttling across every Berth instance.

use sqlx::PgExecutor;
use time::OffsetDateTime;

pub struct Window {
    pub failures: i64,
    pub oldest: Option<OffsetDateTime>,
}

/// Failures for `subject` since `since`, and the oldest of them (it leaves the window first).
pub async fn in_window(
    ex: impl PgExecutor<'_>,
    subject: &str,
    since: OffsetDateTime,
) -> sqlx::Result<Window> {
    let r = sqlx::query!(
        r#"select count(*) as "failures!", min(failed_at) as oldest
           from auth_failures where subject = $1 and failed_at > $2"#,
        subject,
        since
    )
    .fetch_one(ex)
    .await?;
    Ok(Window { failures: r.failures, oldest: r.oldest })
}

pub async fn record(ex: impl PgExecutor<'_>, subject: &str, at: OffsetDateTime) -> sqlx::Result<()> {
    sqlx::query!("insert into auth_failures (subject, failed_at) values ($1, $2)", subject, at)
        .execute(ex)
        .await?;
    Ok(())
}

pub async fn clear(ex: impl PgExecutor<'_>, subject: &str) -> sqlx::Result<()> {
    sqlx::query!("delete from auth_failures where subject = $1", subject).execute(ex).await?;
    Ok(())
}

pub async fn purge_before(ex: impl PgExecutor<'_>, before: OffsetDateTime) -> sqlx::Result<u64> {
    let done = sqlx::query!("delete from auth_failures where failed_at <= $1", before).execute(ex).await?;
    Ok(done.rows_affected())
}

impl Window {
    /// Whole seconds until the window holds fewer than `max` failures, if it is full now.
    pub fn retry_after(&self, max: u32, window: time::Duration, now: OffsetDateTime) -> Option<u64> {
        (self.failures >= i64::from(max))
            .then(|| ((self.oldest.unwrap_or(now) + window - now).whole_seconds().max(1)) as u64)
    }
}
