use sqlx::PgExecutor;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{Ctx, OrgId, StoreId};

#[derive(Debug, Clone)]
pub struct GroupRow {
    pub id: Uuid,
    pub name: String,
    pub vendor: String,
    pub version: String,
    pub description: String,
    pub parameters: serde_json::Value,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// One more with every change: the group's `ETag`.
    pub revision: i32,
}

pub async fn list(ex: impl PgExecutor<'_>, ctx: &Ctx) -> sqlx::Result<Vec<GroupRow>> {
    sqlx::query_as!(
        GroupRow,
        "select id, name, vendor, version, description, parameters, created_at, updated_at, revision
         from parameter_groups where org_id = $1 order by name",
        ctx.org_id as OrgId
    )
    .fetch_all(ex)
    .await
}

pub async fn get(ex: impl PgExecutor<'_>, ctx: &Ctx, id: Uuid) -> sqlx::Result<Option<GroupRow>> {
    sqlx::query_as!(
        GroupRow,
        "select id, name, vendor, version, description, parameters, created_at, updated_at, revision
         from parameter_groups where org_id = $1 and id = $2",
        ctx.org_id as OrgId,
        id
    )
    .fetch_optional(ex)
    .await
}

/// [`get`], locking the row until the transaction ends: a change checks and makes its
/// revision with nothing in between.
pub async fn get_for_update(ex: impl PgExecutor<'_>, ctx: &Ctx, id: Uuid) -> sqlx::Result<Option<GroupRow>> {
    sqlx::query_as!(
        GroupRow,
        "select id, name, vendor, version, description, parameters, created_at, updated_at, revision
         from parameter_groups where org_id = $1 and id = $2 for update",
        ctx.org_id as OrgId,
        id
    )
    .fetch_optional(ex)
    .await
}

/// The group applied to a store, for the data plane.
pub async fn of_store(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    store_id: StoreId,
) -> sqlx::Result<Option<serde_json::Value>> {
    sqlx::query_scalar!(
        "select g.parameters from parameter_groups g join stores s on s.parameter_group_id = g.id
         where s.org_id = $1 and s.id = $2",
        org_id as OrgId,
        store_id as StoreId
    )
    .fetch_optional(ex)
    .await
}

pub async fn insert(ex: impl PgExecutor<'_>, ctx: &Ctx, g: &GroupRow) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into parameter_groups (id, org_id, name, vendor, version, description, parameters, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        g.id,
        ctx.org_id as OrgId,
        g.name,
        g.vendor,
        g.version,
        g.description,
        g.parameters,
        g.created_at
    )
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn update(
    ex: impl PgExecutor<'_>,
    ctx: &Ctx,
    id: Uuid,
    description: &str,
    parameters: &serde_json::Value,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update parameter_groups set description = $3, parameters = $4, updated_at = $5, revision = revision + 1
         where org_id = $1 and id = $2",
        ctx.org_id as OrgId,
        id,
        description,
        parameters,
        now
    )
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn delete(ex: impl PgExecutor<'_>, ctx: &Ctx, id: Uuid) -> sqlx::Result<bool> {
    let done =
        sqlx::query!("delete from parameter_groups where org_id = $1 and id = $2", ctx.org_id as OrgId, id)
            .execute(ex)
            .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn assign(
    ex: impl PgExecutor<'_>,
    ctx: &Ctx,
    store_id: StoreId,
    group: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update stores set parameter_group_id = $3, status = 'modifying', revision = revision + 1, updated_at = $4
         where org_id = $1 and id = $2",
        ctx.org_id as OrgId,
        store_id as StoreId,
        group,
        now
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// A store a group is applied to.
pub struct GroupUser {
    pub name: String,
    pub instance_size: String,
}

/// The stores (not deleted) the group is applied to, for the checks a change of it must pass.
pub async fn users(ex: impl PgExecutor<'_>, ctx: &Ctx, group: Uuid) -> sqlx::Result<Vec<GroupUser>> {
    sqlx::query_as!(
        GroupUser,
        "select name, instance_size from stores
         where org_id = $1 and parameter_group_id = $2 and status <> 'deleted' order by name",
        ctx.org_id as OrgId,
        group
    )
    .fetch_all(ex)
    .await
}

/// The id of the group applied to a store (none: the defaults). The store must exist.
pub async fn group_id_of_store(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    store_id: StoreId,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("select parameter_group_id from stores where org_id = $1 and id = $2")
        .bind(org_id)
        .bind(store_id)
        .fetch_one(ex)
        .await
}
