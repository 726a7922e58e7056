use sqlx::{PgConnection, PgExecutor};

use crate::domain::OrgId;

/// An organization's own limits; `None` keeps the operator's default.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    pub stores: Option<i64>,
    pub nodes: Option<i64>,
    pub vpcs: Option<i64>,
    pub backup_bytes: Option<i64>,
}

/// What an organization has of each quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Stores that are not deleted.
    pub stores: i64,
    /// Nodes of those stores, being made or removed included.
    pub nodes: i64,
    /// VPCs that are not deleted.
    pub vpcs: i64,
    /// Bytes of succeeded backups kept, of deleted stores too.
    pub backup_bytes: i64,
}

/// Serializes the quota-checked creations of one organization until the caller's transaction
/// ends, so that counting and inserting are one step for each of them.
pub async fn lock(tx: &mut PgConnection, org_id: OrgId) -> sqlx::Result<()> {
    sqlx::query!(
        "select pg_advisory_xact_lock(hashtextextended('berth.quotas:' || $1::uuid, 0))",
        org_id as OrgId
    )
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn overrides(ex: impl PgExecutor<'_>, org_id: OrgId) -> sqlx::Result<Overrides> {
    let row = sqlx::query_as!(
        Overrides,
        "select stores, nodes, vpcs, backup_bytes from org_quotas where org_id = $1",
        org_id as OrgId
    )
    .fetch_optional(ex)
    .await?;
    Ok(row.unwrap_or_default())
}

pub async fn usage(ex: impl PgExecutor<'_>, org_id: OrgId) -> sqlx::Result<Usage> {
    sqlx::query_as!(
        Usage,
        r#"select
             (select count(*) from stores where org_id = $1 and status <> 'deleted') as "stores!",
             (select count(*) from store_nodes n join stores s on s.id = n.store_id
               where n.org_id = $1 and s.status <> 'deleted') as "nodes!",
             (select count(*) from vpcs where org_id = $1 and status <> 'deleted') as "vpcs!",
             (select coalesce(sum(size_bytes), 0)::bigint from backups
               where org_id = $1 and status = 'succeeded') as "backup_bytes!""#,
        org_id as OrgId
    )
    .fetch_one(ex)
    .await
}
