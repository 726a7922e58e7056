//! Authentication attempts counted against a throttle, per subject (`login:<email>`,
//! `addr:<ip>`, `client:<client_id>`), for throttling across every Berth instance.

use sqlx::PgExecutor;
use time::OffsetDateTime;

pub struct Window {
    pub failures: i64,
    pub oldest: Option<OffsetDateTime>,
}

/// For each subject, the attempts counted against it since its `since`, and the oldest of them
/// (it leaves the window first), in the order given; one read for all. A flood of requests
/// refused on this read writes nothing.
pub async fn in_windows(
    ex: impl PgExecutor<'_>,
    subjects: &[String],
    since: &[OffsetDateTime],
) -> sqlx::Result<Vec<Window>> {
    let rows = sqlx::query!(
        r#"select count(a.at) as "failures!", min(a.at) as oldest
           from unnest($1::text[], $2::timestamptz[]) with ordinality s(subject, since, i)
           left join auth_attempts t on t.subject = s.subject
           left join lateral unnest(t.attempts) a(at) on a.at > s.since
           group by s.i order by s.i"#,
        subjects,
        since
    )
    .fetch_all(ex)
    .await?;
    Ok(rows.into_iter().map(|r| Window { failures: r.failures, oldest: r.oldest }).collect())
}

/// Counts one attempt at `at` against `subject` if fewer than `max` were counted since
/// `since`, in one statement: on conflict the row is locked and read in its latest version, so
/// concurrent requests take turns and no more than `max` are ever counted. `false`: refused.
pub async fn reserve(
    ex: impl PgExecutor<'_>,
    subject: &str,
    at: OffsetDateTime,
    since: OffsetDateTime,
    max: u32,
) -> sqlx::Result<bool> {
    let reserved = sqlx::query_scalar!(
        r#"insert into auth_attempts as t (subject, attempts) values ($1, array[$2::timestamptz])
           on conflict (subject) do update
             set attempts = array(select a from unnest(t.attempts) a where a > $3 order by a) || $2::timestamptz
             where (select count(*) from unnest(t.attempts) a where a > $3) < $4
           returning true as "reserved!""#,
        subject,
        at,
        since,
        i64::from(max)
    )
    .fetch_optional(ex)
    .await?;
    Ok(reserved.is_some())
}

/// Takes back one attempt reserved at `at` (of a request that turned out to be no failure).
pub async fn release(ex: impl PgExecutor<'_>, subject: &str, at: OffsetDateTime) -> sqlx::Result<()> {
    sqlx::query!(
        "update auth_attempts
         set attempts = attempts[:array_position(attempts, $2) - 1] || attempts[array_position(attempts, $2) + 1:]
         where subject = $1 and $2 = any(attempts)",
        subject,
        at
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// Forgets every attempt of `subject`.
pub async fn clear(ex: impl PgExecutor<'_>, subject: &str) -> sqlx::Result<()> {
    sqlx::query!("delete from auth_attempts where subject = $1", subject).execute(ex).await?;
    Ok(())
}

/// Removes the subjects none of whose attempts is after `before`.
pub async fn purge_before(ex: impl PgExecutor<'_>, before: OffsetDateTime) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "delete from auth_attempts where not exists (select from unnest(attempts) a where a > $1)",
        before
    )
    .execute(ex)
    .await?;
    Ok(done.rows_affected())
}

impl Window {
    /// Whole seconds until the window holds fewer than `max` attempts, if it is full now.
    pub fn retry_after(&self, max: u32, window: time::Duration, now: OffsetDateTime) -> Option<u64> {
        (self.failures >= i64::from(max)).then(|| self.until_room(window, now))
    }

    /// Whole seconds until the oldest attempt (or one made now) leaves the window.
    pub fn until_room(&self, window: time::Duration, now: OffsetDateTime) -> u64 {
        (self.oldest.unwrap_or(now) + window - now).whole_seconds().max(1) as u64
    }
}
