use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{Ctx, JobId, JobStatus, OrgId, StoreId, UserId};

#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: JobId,
    pub org_id: OrgId,
    pub store_id: Option<StoreId>,
    pub kind: String,
    pub status: JobStatus,
    pub params: serde_json::Value,
    pub steps: Vec<String>,
    pub step: i32,
    pub attempts: i32,
    pub max_attempts: i32,
    pub run_after: OffsetDateTime,
    pub locked_by: Option<String>,
    pub locked_until: Option<OffsetDateTime>,
    pub cancel_requested: bool,
    pub error: Option<String>,
    pub created_by: Option<UserId>,
    pub created_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub finished_at: Option<OffsetDateTime>,
    pub updated_at: OffsetDateTime,
}

pub struct NewJob<'a> {
    pub id: JobId,
    pub store_id: Option<StoreId>,
    pub kind: &'a str,
    pub params: serde_json::Value,
    pub steps: &'a [String],
    pub created_by: Option<UserId>,
    pub now: OffsetDateTime,
    /// Not before this (a scheduled switchover); `now` if none.
    pub run_after: Option<OffsetDateTime>,
}

/// Enqueues a job in the caller's transaction, beside the change it serves. Fails on the
/// `jobs_one_active_per_store` constraint while another job of the store is queued or running.
pub async fn insert(ex: impl PgExecutor<'_>, org_id: OrgId, j: NewJob<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into jobs (id, org_id, store_id, kind, status, params, steps, run_after, created_by, created_at, updated_at)
         values ($1, $2, $3, $4, 'queued', $5, $6, coalesce($9::timestamptz, $7), $8, $7, $7)",
        j.id as JobId,
        org_id as OrgId,
        j.store_id as Option<StoreId>,
        j.kind,
        j.params,
        j.steps,
        j.now,
        j.created_by as Option<UserId>,
        j.run_after
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// The queued or running job of a store, if any; a failover first, which may run beside one
/// other job.
pub async fn active_for_store(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    store_id: StoreId,
) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as!(
        JobRow,
        r#"select id, org_id, store_id as "store_id: StoreId", kind, status as "status: JobStatus", params, steps, step, attempts, max_attempts,
                run_after, locked_by, locked_until, cancel_requested, error, created_by as "created_by: UserId", created_at, started_at,
                finished_at, updated_at
           from jobs where org_id = $1 and store_id = $2 and status in ('queued', 'running')
           order by (kind = 'failover') desc, created_at
           limit 1"#,
        org_id as OrgId,
        store_id as StoreId
    )
    .fetch_optional(ex)
    .await
}

/// Takes the oldest runnable job: queued and due, or running under a lease that has run out
/// (its worker died). `for update skip locked` lets many workers claim side by side.
pub async fn claim(
    ex: impl PgExecutor<'_>,
    worker: &str,
    now: OffsetDateTime,
    lease_until: OffsetDateTime,
) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as!(
        JobRow,
        r#"update jobs set status = 'running', locked_by = $1, locked_until = $3, attempts = attempts + 1,
                started_at = coalesce(started_at, $2), updated_at = $2
         where id = (
             select id from jobs
             where (status = 'queued' and run_after <= $2)
                or (status = 'running' and locked_until < $2)
             order by run_after, created_at
             for update skip locked
             limit 1
         )
         returning id, org_id, store_id as "store_id: StoreId", kind, status as "status: JobStatus", params, steps, step, attempts, max_attempts,
                run_after, locked_by, locked_until, cancel_requested, error, created_by as "created_by: UserId", created_at, started_at,
                finished_at, updated_at"#,
        worker,
        now,
        lease_until
    )
    .fetch_optional(ex)
    .await
}

/// Extends the lease; `false` when the job is no longer this worker's.
pub async fn heartbeat(
    ex: impl PgExecutor<'_>,
    id: JobId,
    worker: &str,
    until: OffsetDateTime,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update jobs set locked_until = $3 where id = $1 and locked_by = $2 and status = 'running'",
        id as JobId,
        worker,
        until
    )
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records that steps before `step` are done; `false` when the job is no longer this worker's.
pub async fn advance(
    ex: impl PgExecutor<'_>,
    id: JobId,
    worker: &str,
    step: i32,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update jobs set step = $3, updated_at = $4 where id = $1 and locked_by = $2 and status = 'running'",
        id as JobId,
        worker,
        step,
        now
    )
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn finish(
    ex: impl PgExecutor<'_>,
    id: JobId,
    worker: &str,
    status: JobStatus,
    error: Option<&str>,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update jobs set status = $3, error = $4, finished_at = $5, updated_at = $5, locked_by = null, locked_until = null,
                step = case when $3 = 'succeeded' then cardinality(steps) else step end
         where id = $1 and locked_by = $2 and status = 'running'",
        id as JobId,
        worker,
        status.as_str(),
        error,
        now
    )
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Puts the job back in the queue to try again after `run_after`.
pub async fn retry_later(
    ex: impl PgExecutor<'_>,
    id: JobId,
    worker: &str,
    run_after: OffsetDateTime,
    error: &str,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update jobs set status = 'queued', run_after = $3, error = $4, updated_at = $5, locked_by = null, locked_until = null
         where id = $1 and locked_by = $2 and status = 'running'",
        id as JobId,
        worker,
        run_after,
        error,
        now
    )
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn log(
    ex: impl PgExecutor<'_>,
    id: JobId,
    level: &str,
    message: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into job_logs (job_id, at, level, message) values ($1, $2, $3, $4)",
        id as JobId,
        now,
        level,
        message
    )
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn get(ex: impl PgExecutor<'_>, ctx: &Ctx, id: JobId) -> sqlx::Result<Option<JobRow>> {
    get_in_org(ex, ctx.org_id, id).await
}

/// [`get`], for Berth's own jobs (a scheduled backup's), enqueued with no user's context.
pub async fn get_in_org(ex: impl PgExecutor<'_>, org_id: OrgId, id: JobId) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as!(
        JobRow,
        r#"select id, org_id, store_id as "store_id: StoreId", kind, status as "status: JobStatus", params, steps, step, attempts, max_attempts,
                run_after, locked_by, locked_until, cancel_requested, error, created_by as "created_by: UserId", created_at, started_at,
                finished_at, updated_at
           from jobs where org_id = $1 and id = $2"#,
        org_id as OrgId,
        id as JobId
    )
    .fetch_optional(ex)
    .await
}

pub struct LogRow {
    pub at: OffsetDateTime,
    pub level: String,
    pub message: String,
}

pub async fn logs(ex: impl PgExecutor<'_>, ctx: &Ctx, id: JobId) -> sqlx::Result<Vec<LogRow>> {
    sqlx::query_as!(
        LogRow,
        "select l.at, l.level, l.message from job_logs l join jobs j on j.id = l.job_id
         where j.org_id = $1 and l.job_id = $2 order by l.id",
        ctx.org_id as OrgId,
        id as JobId
    )
    .fetch_all(ex)
    .await
}

/// The organization's jobs (of one store, if given), newest first, before the cursor.
pub async fn list(
    ex: impl PgExecutor<'_>,
    ctx: &Ctx,
    store_id: Option<StoreId>,
    before: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<JobRow>> {
    let (before_at, before_id) = before.map_or((None, None), |(a, i)| (Some(a), Some(i)));
    sqlx::query_as!(
        JobRow,
        r#"select id, org_id, store_id as "store_id: StoreId", kind, status as "status: JobStatus", params, steps, step, attempts, max_attempts,
                run_after, locked_by, locked_until, cancel_requested, error, created_by as "created_by: UserId", created_at, started_at,
                finished_at, updated_at
           from jobs
           where org_id = $1 and ($2::uuid is null or store_id = $2)
             and ($3::timestamptz is null or (created_at, id) < ($3, $4::uuid))
           order by created_at desc, id desc
           limit $5"#,
        ctx.org_id as OrgId,
        store_id as Option<StoreId>,
        before_at,
        before_id,
        limit
    )
    .fetch_all(ex)
    .await
}

/// Cancels a job that has not started any step; `None` when there is no such job.
pub async fn cancel_queued(
    ex: impl PgExecutor<'_>,
    ctx: &Ctx,
    id: JobId,
    now: OffsetDateTime,
) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as!(
        JobRow,
        r#"update jobs set status = 'cancelled', finished_at = $3, updated_at = $3, error = 'cancelled by request'
           where org_id = $1 and id = $2 and status = 'queued' and step = 0 and attempts = 0
           returning id, org_id, store_id as "store_id: StoreId", kind, status as "status: JobStatus", params, steps, step, attempts, max_attempts,
                run_after, locked_by, locked_until, cancel_requested, error, created_by as "created_by: UserId", created_at, started_at,
                finished_at, updated_at"#,
        ctx.org_id as OrgId,
        id as JobId,
        now
    )
    .fetch_optional(ex)
    .await
}

pub struct QueueStats {
    pub queued: i64,
    pub running: i64,
    pub oldest_queued: Option<OffsetDateTime>,
}

pub async fn queue_stats(ex: impl PgExecutor<'_>) -> sqlx::Result<QueueStats> {
    sqlx::query_as!(
        QueueStats,
        r#"select count(*) filter (where status = 'queued') as "queued!",
                  count(*) filter (where status = 'running') as "running!",
                  min(created_at) filter (where status = 'queued') as oldest_queued
           from jobs where status in ('queued', 'running')"#
    )
    .fetch_one(ex)
    .await
}

pub async fn register_worker(
    ex: impl PgExecutor<'_>,
    id: &str,
    hostname: &str,
    pid: i32,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into workers (id, hostname, pid, started_at, heartbeat_at) values ($1, $2, $3, $4, $4)
         on conflict (id) do update set heartbeat_at = $4",
        id,
        hostname,
        pid,
        now
    )
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn remove_worker(ex: impl PgExecutor<'_>, id: &str) -> sqlx::Result<()> {
    sqlx::query!("delete from workers where id = $1", id).execute(ex).await?;
    Ok(())
}

pub struct WorkerRow {
    pub id: String,
    pub hostname: String,
    pub pid: i32,
    pub started_at: OffsetDateTime,
    pub heartbeat_at: OffsetDateTime,
}

/// Workers heard from since `since`.
pub async fn live_workers(ex: impl PgExecutor<'_>, since: OffsetDateTime) -> sqlx::Result<Vec<WorkerRow>> {
    sqlx::query_as!(
        WorkerRow,
        "select id, hostname, pid, started_at, heartbeat_at from workers where heartbeat_at > $1 order by started_at",
        since
    )
    .fetch_all(ex)
    .await
}

/// Running jobs and who holds them, for releasing those of workers known to be dead.
pub async fn running_holders(ex: impl PgExecutor<'_>) -> sqlx::Result<Vec<(JobId, Option<String>)>> {
    let rows = sqlx::query!("select id, locked_by from jobs where status = 'running'").fetch_all(ex).await?;
    Ok(rows.into_iter().map(|r| (r.id.into(), r.locked_by)).collect())
}

/// Makes a running job claimable now instead of when its lease runs out.
pub async fn expire_lease(
    ex: impl PgExecutor<'_>,
    id: JobId,
    holder: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update jobs set locked_until = $3 where id = $1 and locked_by = $2 and status = 'running'",
        id as JobId,
        holder,
        now
    )
    .execute(ex)
    .await?;
    Ok(())
}
