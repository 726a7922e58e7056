use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::Ctx;

#[derive(Debug, Clone)]
pub struct BackupRow {
    pub id: Uuid,
    pub org_id: Uuid,
    pub store_id: Uuid,
    pub kind: String,
    pub status: String,
    pub node_id: Option<Uuid>,
    pub size_bytes: Option<i64>,
    pub sha256: Option<String>,
    pub location: Option<String>,
    pub start_lsn: Option<String>,
    pub end_lsn: Option<String>,
    pub error: Option<String>,
    pub created_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
}

pub async fn insert(
    ex: impl PgExecutor<'_>,
    ctx: &Ctx,
    id: Uuid,
    store_id: Uuid,
    kind: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into backups (id, org_id, store_id, kind, status, created_at) values ($1, $2, $3, $4, 'running', $5)",
        id,
        ctx.org_id,
        store_id,
        kind,
        now
    )
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn get(
    ex: impl PgExecutor<'_>,
    ctx: &Ctx,
    store_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<BackupRow>> {
    sqlx::query_as!(
        BackupRow,
        "select * from backups where org_id = $1 and store_id = $2 and id = $3",
        ctx.org_id,
        store_id,
        id
    )
    .fetch_optional(ex)
    .await
}

/// For the jobs, which act for the organization named in the job row.
pub async fn get_by_id(ex: impl PgExecutor<'_>, org_id: Uuid, id: Uuid) -> sqlx::Result<Option<BackupRow>> {
    sqlx::query_as!(BackupRow, "select * from backups where org_id = $1 and id = $2", org_id, id)
        .fetch_optional(ex)
        .await
}

pub async fn list(
    ex: impl PgExecutor<'_>,
    ctx: &Ctx,
    store_id: Uuid,
    before: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<BackupRow>> {
    let (at, id) = before.map_or((None, None), |(a, i)| (Some(a), Some(i)));
    sqlx::query_as!(
        BackupRow,
        "select * from backups where org_id = $1 and store_id = $2
           and ($3::timestamptz is null or (created_at, id) < ($3, $4::uuid))
         order by created_at desc, id desc limit $5",
        ctx.org_id,
        store_id,
        at,
        id,
        limit
    )
    .fetch_all(ex)
    .await
}

pub struct Finished<'a> {
    pub node_id: Uuid,
    pub size_bytes: i64,
    pub sha256: &'a str,
    pub location: &'a str,
    pub start_lsn: &'a str,
    pub end_lsn: &'a str,
    pub now: OffsetDateTime,
}

pub async fn succeed(ex: impl PgExecutor<'_>, org_id: Uuid, id: Uuid, f: Finished<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "update backups set status = 'succeeded', node_id = $3, size_bytes = $4, sha256 = $5, location = $6,
                start_lsn = $7, end_lsn = $8, finished_at = $9, error = null
         where org_id = $1 and id = $2",
        org_id,
        id,
        f.node_id,
        f.size_bytes,
        f.sha256,
        f.location,
        f.start_lsn,
        f.end_lsn,
        f.now
    )
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn fail(
    ex: impl PgExecutor<'_>,
    org_id: Uuid,
    id: Uuid,
    error: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update backups set status = 'failed', error = $3, finished_at = $4 where org_id = $1 and id = $2 and status = 'running'",
        org_id,
        id,
        error,
        now
    )
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn delete(ex: impl PgExecutor<'_>, ctx: &Ctx, store_id: Uuid, id: Uuid) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "delete from backups where org_id = $1 and store_id = $2 and id = $3",
        ctx.org_id,
        store_id,
        id
    )
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The newest good full backup that finished at or before `at`: where a point-in-time restore
/// starts.
pub async fn latest_full_before(
    ex: impl PgExecutor<'_>,
    ctx: &Ctx,
    store_id: Uuid,
    at: OffsetDateTime,
) -> sqlx::Result<Option<BackupRow>> {
    sqlx::query_as!(
        BackupRow,
        "select * from backups where org_id = $1 and store_id = $2 and kind = 'full' and status = 'succeeded'
           and finished_at <= $3
         order by finished_at desc limit 1",
        ctx.org_id,
        store_id,
        at
    )
    .fetch_optional(ex)
    .await
}
