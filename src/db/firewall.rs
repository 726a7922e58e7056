use ipnet::IpNet;
use sqlx::PgExecutor;
use time::OffsetDateTime;

use crate::domain::{Ctx, OrgId, RuleId, StoreId};

#[derive(Debug, Clone)]
pub struct RuleRow {
    pub id: RuleId,
    pub store_id: StoreId,
    pub source: IpNet,
    pub description: String,
    pub expires_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
}

pub struct NewRule<'a> {
    pub id: RuleId,
    pub source: IpNet,
    pub description: &'a str,
    pub expires_at: Option<OffsetDateTime>,
    pub now: OffsetDateTime,
}

/// The store's rules in force at `now` (expired ones no longer count, even before the sweeper
/// removes them).
pub async fn list(
    ex: impl PgExecutor<'_>,
    ctx: &Ctx,
    store_id: StoreId,
    now: OffsetDateTime,
) -> sqlx::Result<Vec<RuleRow>> {
    sqlx::query_as!(
        RuleRow,
        r#"select id, store_id, source as "source: IpNet", description, expires_at, created_at
           from firewall_rules
           where org_id = $1 and store_id = $2 and (expires_at is null or expires_at > $3)
           order by source"#,
        ctx.org_id as OrgId,
        store_id as StoreId,
        now
    )
    .fetch_all(ex)
    .await
}

/// The sources allowed on a store's nodes, for the data plane.
pub async fn sources(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    store_id: StoreId,
    now: OffsetDateTime,
) -> sqlx::Result<Vec<IpNet>> {
    sqlx::query_scalar!(
        r#"select source as "source!: IpNet" from firewall_rules
           where org_id = $1 and store_id = $2 and (expires_at is null or expires_at > $3)
           order by source"#,
        org_id as OrgId,
        store_id as StoreId,
        now
    )
    .fetch_all(ex)
    .await
}

pub async fn insert(
    ex: impl PgExecutor<'_>,
    ctx: &Ctx,
    store_id: StoreId,
    r: NewRule<'_>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into firewall_rules (id, org_id, store_id, source, description, expires_at, created_at)
         values ($1, $2, $3, $4, $5, $6, $7)",
        r.id as RuleId,
        ctx.org_id as OrgId,
        store_id as StoreId,
        r.source as IpNet,
        r.description,
        r.expires_at,
        r.now
    )
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn delete(ex: impl PgExecutor<'_>, ctx: &Ctx, store_id: StoreId, id: RuleId) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "delete from firewall_rules where org_id = $1 and store_id = $2 and id = $3",
        ctx.org_id as OrgId,
        store_id as StoreId,
        id as RuleId
    )
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete_all(ex: impl PgExecutor<'_>, ctx: &Ctx, store_id: StoreId) -> sqlx::Result<()> {
    sqlx::query!(
        "delete from firewall_rules where org_id = $1 and store_id = $2",
        ctx.org_id as OrgId,
        store_id as StoreId
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// Removes expired rules; returns the stores whose rules changed, to re-apply.
pub async fn delete_expired(
    ex: impl PgExecutor<'_>,
    now: OffsetDateTime,
) -> sqlx::Result<Vec<(OrgId, StoreId)>> {
    let rows =
        sqlx::query!("delete from firewall_rules where expires_at <= $1 returning org_id, store_id", now)
            .fetch_all(ex)
            .await?;
    let mut out: Vec<(OrgId, StoreId)> =
        rows.into_iter().map(|r| (r.org_id.into(), r.store_id.into())).collect();
    out.sort();
    out.dedup();
    Ok(out)
}
