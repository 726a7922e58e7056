use sqlx::PgExecutor;
use time::OffsetDateTime;

use crate::domain::{Ctx, OrgId, StoreId};

#[derive(Debug, Clone)]
pub struct ScheduleRow {
    pub store_id: StoreId,
    pub org_id: OrgId,
    pub full_cron: String,
    pub logical_cron: Option<String>,
    pub retention_count: Option<i32>,
    pub retention_days: Option<i32>,
    pub source: String,
    pub paused: bool,
    pub next_full_at: Option<OffsetDateTime>,
    pub next_logical_at: Option<OffsetDateTime>,
    pub updated_at: OffsetDateTime,
}

/// What a caller sets; the next due times are worked out from it.
#[derive(Debug, Clone)]
pub struct Settings<'a> {
    pub full_cron: &'a str,
    pub logical_cron: Option<&'a str>,
    pub retention_count: Option<i32>,
    pub retention_days: Option<i32>,
    pub source: &'a str,
    pub paused: bool,
    pub next_full_at: Option<OffsetDateTime>,
    pub next_logical_at: Option<OffsetDateTime>,
}

/// The schedule of a new store.
pub async fn insert(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    store_id: StoreId,
    s: &Settings<'_>,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into backup_schedules (store_id, org_id, full_cron, logical_cron, retention_count, retention_days,
                                       source, paused, next_full_at, next_logical_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        store_id as StoreId,
        org_id as OrgId,
        s.full_cron,
        s.logical_cron,
        s.retention_count,
        s.retention_days,
        s.source,
        s.paused,
        s.next_full_at,
        s.next_logical_at,
        now
    )
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn get(ex: impl PgExecutor<'_>, ctx: &Ctx, store_id: StoreId) -> sqlx::Result<Option<ScheduleRow>> {
    of_store(ex, ctx.org_id, store_id).await
}

/// For the jobs, which act for the organization named in the job row.
pub async fn of_store(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    store_id: StoreId,
) -> sqlx::Result<Option<ScheduleRow>> {
    sqlx::query_as!(
        ScheduleRow,
        "select * from backup_schedules where org_id = $1 and store_id = $2",
        org_id as OrgId,
        store_id as StoreId
    )
    .fetch_optional(ex)
    .await
}

pub async fn update(
    ex: impl PgExecutor<'_>,
    ctx: &Ctx,
    store_id: StoreId,
    s: &Settings<'_>,
    now: OffsetDateTime,
) -> sqlx::Result<Option<ScheduleRow>> {
    sqlx::query_as!(
        ScheduleRow,
        "update backup_schedules set full_cron = $3, logical_cron = $4, retention_count = $5, retention_days = $6,
                source = $7, paused = $8, next_full_at = $9, next_logical_at = $10, updated_at = $11
         where org_id = $1 and store_id = $2
         returning *",
        ctx.org_id as OrgId,
        store_id as StoreId,
        s.full_cron,
        s.logical_cron,
        s.retention_count,
        s.retention_days,
        s.source,
        s.paused,
        s.next_full_at,
        s.next_logical_at,
        now
    )
    .fetch_optional(ex)
    .await
}

/// Schedules with a backup due (or a due time still to work out) on a store that can take one,
/// locked for the caller's transaction; rows another scheduler holds are skipped, so that each
/// due backup is started by one of them.
pub async fn claim_due(
    ex: impl PgExecutor<'_>,
    now: OffsetDateTime,
    limit: i64,
) -> sqlx::Result<Vec<ScheduleRow>> {
    sqlx::query_as!(
        ScheduleRow,
        "select s.* from backup_schedules s join stores st on st.id = s.store_id and st.org_id = s.org_id
         where not s.paused and st.status in ('available', 'degraded')
           and (s.next_full_at is null or s.next_full_at <= $1
                or (s.logical_cron is not null and (s.next_logical_at is null or s.next_logical_at <= $1)))
         order by s.next_full_at nulls first
         limit $2
         for update of s skip locked",
        now,
        limit
    )
    .fetch_all(ex)
    .await
}

pub async fn set_next(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    store_id: StoreId,
    next_full_at: Option<OffsetDateTime>,
    next_logical_at: Option<OffsetDateTime>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update backup_schedules set next_full_at = $3, next_logical_at = $4 where org_id = $1 and store_id = $2",
        org_id as OrgId,
        store_id as StoreId,
        next_full_at,
        next_logical_at
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// Every schedule with a retention: what pruning walks, stores deleted or not.
pub async fn with_retention(ex: impl PgExecutor<'_>) -> sqlx::Result<Vec<ScheduleRow>> {
    sqlx::query_as!(
        ScheduleRow,
        "select * from backup_schedules where retention_count is not null or retention_days is not null"
    )
    .fetch_all(ex)
    .await
}

pub async fn delete(ex: impl PgExecutor<'_>, org_id: OrgId, store_id: StoreId) -> sqlx::Result<()> {
    sqlx::query!(
        "delete from backup_schedules where org_id = $1 and store_id = $2",
        org_id as OrgId,
        store_id as StoreId
    )
    .execute(ex)
    .await?;
    Ok(())
}
