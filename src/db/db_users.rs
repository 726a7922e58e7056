use ipnet::IpNet;
use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{Ctx, OrgId, StoreId};

#[derive(Debug, Clone)]
pub struct DbUserRow {
    pub id: Uuid,
    pub name: String,
    pub privilege: String,
    pub database: Option<String>,
    pub host: Option<IpNet>,
    pub created_at: OffsetDateTime,
}

pub async fn list(ex: impl PgExecutor<'_>, ctx: &Ctx, store_id: StoreId) -> sqlx::Result<Vec<DbUserRow>> {
    sqlx::query_as!(
        DbUserRow,
        r#"select id, name, privilege, database, host as "host: IpNet", created_at
           from db_users where org_id = $1 and store_id = $2 order by name"#,
        ctx.org_id as OrgId,
        store_id as StoreId
    )
    .fetch_all(ex)
    .await
}

pub async fn get(
    ex: impl PgExecutor<'_>,
    ctx: &Ctx,
    store_id: StoreId,
    name: &str,
) -> sqlx::Result<Option<DbUserRow>> {
    sqlx::query_as!(
        DbUserRow,
        r#"select id, name, privilege, database, host as "host: IpNet", created_at
           from db_users where org_id = $1 and store_id = $2 and name = $3"#,
        ctx.org_id as OrgId,
        store_id as StoreId,
        name
    )
    .fetch_optional(ex)
    .await
}

pub async fn insert(
    ex: impl PgExecutor<'_>,
    ctx: &Ctx,
    store_id: StoreId,
    u: &DbUserRow,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into db_users (id, org_id, store_id, name, privilege, database, host, created_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
        u.id,
        ctx.org_id as OrgId,
        store_id as StoreId,
        u.name,
        u.privilege,
        u.database,
        u.host as Option<IpNet>,
        u.created_at
    )
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn delete(ex: impl PgExecutor<'_>, ctx: &Ctx, store_id: StoreId, name: &str) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "delete from db_users where org_id = $1 and store_id = $2 and name = $3",
        ctx.org_id as OrgId,
        store_id as StoreId,
        name
    )
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Users with a host restriction, for the nodes' access rules.
pub async fn host_restrictions(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    store_id: StoreId,
) -> sqlx::Result<Vec<(String, IpNet)>> {
    let rows = sqlx::query!(
        r#"select name, host as "host!: IpNet" from db_users
           where org_id = $1 and store_id = $2 and host is not null order by name"#,
        org_id as OrgId,
        store_id as StoreId
    )
    .fetch_all(ex)
    .await?;
    Ok(rows.into_iter().map(|r| (r.name, r.host)).collect())
}
