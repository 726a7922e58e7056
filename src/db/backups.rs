use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{BackupId, BackupKind, BackupStatus, Ctx, NodeId, OrgId, StoreId};

#[derive(Debug, Clone)]
pub struct BackupRow {
    pub id: BackupId,
    pub org_id: OrgId,
    pub store_id: StoreId,
    pub kind: BackupKind,
    pub status: BackupStatus,
    pub node_id: Option<NodeId>,
    pub size_bytes: Option<i64>,
    pub sha256: Option<String>,
    pub location: Option<String>,
    pub start_lsn: Option<String>,
    pub end_lsn: Option<String>,
    pub error: Option<String>,
    pub created_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
    /// `manual` or `schedule`.
    pub trigger: String,
}

pub async fn insert(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    id: BackupId,
    store_id: StoreId,
    kind: BackupKind,
    trigger: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into backups (id, org_id, store_id, kind, status, trigger, created_at)
         values ($1, $2, $3, $4, 'running', $5, $6)",
        id as BackupId,
        org_id as OrgId,
        store_id as StoreId,
        kind as BackupKind,
        trigger,
        now
    )
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn get(
    ex: impl PgExecutor<'_>,
    ctx: &Ctx,
    store_id: StoreId,
    id: BackupId,
) -> sqlx::Result<Option<BackupRow>> {
    sqlx::query_as!(
        BackupRow,
        r#"select id, org_id, store_id, kind as "kind: BackupKind", status as "status: BackupStatus", node_id as "node_id: NodeId", size_bytes, sha256, location,
                  start_lsn, end_lsn, error, created_at, finished_at, trigger
           from backups where org_id = $1 and store_id = $2 and id = $3"#,
        ctx.org_id as OrgId,
        store_id as StoreId,
        id as BackupId
    )
    .fetch_optional(ex)
    .await
}

/// For the jobs, which act for the organization named in the job row.
pub async fn get_by_id(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    id: BackupId,
) -> sqlx::Result<Option<BackupRow>> {
    sqlx::query_as!(BackupRow, r#"select id, org_id, store_id, kind as "kind: BackupKind", status as "status: BackupStatus", node_id as "node_id: NodeId", size_bytes, sha256, location,
                  start_lsn, end_lsn, error, created_at, finished_at, trigger
           from backups where org_id = $1 and id = $2"#, org_id as OrgId, id as BackupId)
        .fetch_optional(ex)
        .await
}

pub async fn list(
    ex: impl PgExecutor<'_>,
    ctx: &Ctx,
    store_id: StoreId,
    before: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<BackupRow>> {
    let (at, id) = before.map_or((None, None), |(a, i)| (Some(a), Some(i)));
    sqlx::query_as!(
        BackupRow,
        r#"select id, org_id, store_id, kind as "kind: BackupKind", status as "status: BackupStatus", node_id as "node_id: NodeId", size_bytes, sha256, location,
                  start_lsn, end_lsn, error, created_at, finished_at, trigger
           from backups where org_id = $1 and store_id = $2
             and ($3::timestamptz is null or (created_at, id) < ($3, $4::uuid))
           order by created_at desc, id desc limit $5"#,
        ctx.org_id as OrgId,
        store_id as StoreId,
        at,
        id,
        limit
    )
    .fetch_all(ex)
    .await
}

pub struct Finished<'a> {
    pub node_id: NodeId,
    pub size_bytes: i64,
    pub sha256: &'a str,
    pub location: &'a str,
    /// The WAL a physical backup covers; none for a logical one.
    pub start_lsn: Option<&'a str>,
    pub end_lsn: Option<&'a str>,
    pub now: OffsetDateTime,
}

pub async fn succeed(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    id: BackupId,
    f: Finished<'_>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update backups set status = 'succeeded', node_id = $3, size_bytes = $4, sha256 = $5, location = $6,
                start_lsn = $7, end_lsn = $8, finished_at = $9, error = null
         where org_id = $1 and id = $2",
        org_id as OrgId,
        id as BackupId,
        f.node_id as NodeId,
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
    org_id: OrgId,
    id: BackupId,
    error: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update backups set status = 'failed', error = $3, finished_at = $4 where org_id = $1 and id = $2 and status = 'running'",
        org_id as OrgId,
        id as BackupId,
        error,
        now
    )
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn delete(
    ex: impl PgExecutor<'_>,
    ctx: &Ctx,
    store_id: StoreId,
    id: BackupId,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "delete from backups where org_id = $1 and store_id = $2 and id = $3",
        ctx.org_id as OrgId,
        store_id as StoreId,
        id as BackupId
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
    store_id: StoreId,
    at: OffsetDateTime,
) -> sqlx::Result<Option<BackupRow>> {
    sqlx::query_as!(
        BackupRow,
        r#"select id, org_id, store_id, kind as "kind: BackupKind", status as "status: BackupStatus", node_id as "node_id: NodeId", size_bytes, sha256, location,
                  start_lsn, end_lsn, error, created_at, finished_at, trigger
           from backups where org_id = $1 and store_id = $2 and kind = 'full' and status = 'succeeded'
             and finished_at <= $3
           order by finished_at desc, id desc limit 1"#,
        ctx.org_id as OrgId,
        store_id as StoreId,
        at
    )
    .fetch_optional(ex)
    .await
}

/// Backups that the retention of their store lets go, oldest first: failed ones and those with
/// `keep` newer good backups of their kind, or older than `before`. The newest good full backup
/// of a store that still exists is never among them: point-in-time recovery starts there.
pub async fn expired(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    store_id: StoreId,
    keep: Option<i32>,
    before: Option<OffsetDateTime>,
) -> sqlx::Result<Vec<BackupRow>> {
    sqlx::query_as!(
        BackupRow,
        r#"with ranked as (
             select b.*, row_number() over (partition by kind, status order by created_at desc, id desc) as rank
             from backups b where org_id = $1 and store_id = $2 and status <> 'running'
           ), newest_full as (
             select b.id from backups b join stores s on s.id = b.store_id and s.status <> 'deleted'
             where b.org_id = $1 and b.store_id = $2 and b.kind = 'full' and b.status = 'succeeded'
             order by b.finished_at desc, b.id desc limit 1
           )
           select id as "id!", org_id as "org_id!", store_id as "store_id!", kind as "kind!: BackupKind",
                  status as "status!: BackupStatus", node_id as "node_id: NodeId", size_bytes, sha256, location, start_lsn, end_lsn, error,
                  created_at as "created_at!", finished_at, trigger as "trigger!"
           from ranked
           where (($3::int is not null and rank > $3) or ($4::timestamptz is not null and created_at < $4))
             and id not in (select id from newest_full)
           order by created_at, id"#,
        org_id as OrgId,
        store_id as StoreId,
        keep,
        before
    )
    .fetch_all(ex)
    .await
}

/// Where the oldest good full backup of a store starts: no restore needs WAL before it.
pub async fn oldest_full_start(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    store_id: StoreId,
) -> sqlx::Result<Option<String>> {
    let row = sqlx::query_scalar!(
        "select start_lsn from backups
         where org_id = $1 and store_id = $2 and kind = 'full' and status = 'succeeded' and start_lsn is not null
         order by finished_at, id limit 1",
        org_id as OrgId,
        store_id as StoreId
    )
    .fetch_optional(ex)
    .await?;
    Ok(row.flatten())
}

/// The good full backups of a store, oldest first: where restores can start.
pub async fn succeeded_full(
    ex: impl PgExecutor<'_>,
    ctx: &Ctx,
    store_id: StoreId,
) -> sqlx::Result<Vec<BackupRow>> {
    sqlx::query_as!(
        BackupRow,
        r#"select id, org_id, store_id, kind as "kind: BackupKind", status as "status: BackupStatus", node_id as "node_id: NodeId", size_bytes, sha256, location,
                  start_lsn, end_lsn, error, created_at, finished_at, trigger
           from backups where org_id = $1 and store_id = $2 and kind = 'full' and status = 'succeeded'
           order by finished_at, id"#,
        ctx.org_id as OrgId,
        store_id as StoreId
    )
    .fetch_all(ex)
    .await
}

/// Removes every backup row of a store; returns the archives to remove.
pub async fn delete_all_of_store(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    store_id: StoreId,
) -> sqlx::Result<Vec<String>> {
    let rows = sqlx::query_scalar!(
        "delete from backups where org_id = $1 and store_id = $2 returning location",
        org_id as OrgId,
        store_id as StoreId
    )
    .fetch_all(ex)
    .await?;
    Ok(rows.into_iter().flatten().collect())
}

/// Removes one backup row, for the jobs.
pub async fn delete_by_id(ex: impl PgExecutor<'_>, org_id: OrgId, id: BackupId) -> sqlx::Result<bool> {
    let done =
        sqlx::query!("delete from backups where org_id = $1 and id = $2", org_id as OrgId, id as BackupId)
            .execute(ex)
            .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn count_of_store(ex: impl PgExecutor<'_>, org_id: OrgId, store_id: StoreId) -> sqlx::Result<i64> {
    let n = sqlx::query_scalar!(
        r#"select count(*) as "n!" from backups where org_id = $1 and store_id = $2"#,
        org_id as OrgId,
        store_id as StoreId
    )
    .fetch_one(ex)
    .await?;
    Ok(n)
}
