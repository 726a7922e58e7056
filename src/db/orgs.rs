use sqlx::{PgExecutor, Postgres, Transaction};
use time::OffsetDateTime;

use crate::domain::{Ctx, Email, OrgId, Role, UserId};

pub struct OrgRow {
    pub id: OrgId,
    pub name: String,
    pub role: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

pub struct MemberRow {
    pub user_id: UserId,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub role: String,
    pub must_change_password: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// Creates an organization with `owner` as its first owner.
pub async fn create(
    tx: &mut Transaction<'_, Postgres>,
    id: OrgId,
    name: &str,
    owner: UserId,
) -> sqlx::Result<()> {
    sqlx::query!("insert into organizations (id, name) values ($1, $2)", id as OrgId, name)
        .execute(&mut **tx)
        .await?;
    sqlx::query!(
        "insert into memberships (org_id, user_id, role) values ($1, $2, 'owner')",
        id as OrgId,
        owner as UserId
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn get(ex: impl PgExecutor<'_>, ctx: &Ctx) -> sqlx::Result<Option<OrgRow>> {
    sqlx::query_as!(
        OrgRow,
        "select o.id, o.name, m.role, o.created_at, o.updated_at
         from organizations o join memberships m on m.org_id = o.id
         where o.id = $1 and m.user_id = $2",
        ctx.org_id as OrgId,
        ctx.user_id as UserId
    )
    .fetch_optional(ex)
    .await
}

pub async fn list_members(ex: impl PgExecutor<'_>, ctx: &Ctx) -> sqlx::Result<Vec<MemberRow>> {
    sqlx::query_as!(
        MemberRow,
        "select u.id as user_id, u.email, u.first_name, u.last_name, m.role, u.must_change_password,
                m.created_at, m.updated_at
         from memberships m join users u on u.id = m.user_id
         where m.org_id = $1 order by u.email",
        ctx.org_id as OrgId
    )
    .fetch_all(ex)
    .await
}

pub async fn get_member(
    ex: impl PgExecutor<'_>,
    ctx: &Ctx,
    user_id: UserId,
) -> sqlx::Result<Option<MemberRow>> {
    sqlx::query_as!(
        MemberRow,
        "select u.id as user_id, u.email, u.first_name, u.last_name, m.role, u.must_change_password,
                m.created_at, m.updated_at
         from memberships m join users u on u.id = m.user_id
         where m.org_id = $1 and m.user_id = $2",
        ctx.org_id as OrgId,
        user_id as UserId
    )
    .fetch_optional(ex)
    .await
}

/// The member of the context's organization with this address, if any.
pub async fn member_by_email(
    ex: impl PgExecutor<'_>,
    ctx: &Ctx,
    email: &Email,
) -> sqlx::Result<Option<UserId>> {
    let id = sqlx::query_scalar!(
        "select m.user_id from memberships m join users u on u.id = m.user_id
         where m.org_id = $1 and u.email = $2",
        ctx.org_id as OrgId,
        email.as_str()
    )
    .fetch_optional(ex)
    .await?;
    Ok(id.map(UserId::from))
}

pub async fn add_member(ex: impl PgExecutor<'_>, ctx: &Ctx, user_id: UserId, role: Role) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into memberships (org_id, user_id, role) values ($1, $2, $3)",
        ctx.org_id as OrgId,
        user_id as UserId,
        role.as_str()
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// Locks the organization's memberships for the rest of the transaction and returns the owners,
/// so that two concurrent changes cannot both remove "the other" owner.
pub async fn lock_owners(tx: &mut Transaction<'_, Postgres>, ctx: &Ctx) -> sqlx::Result<Vec<UserId>> {
    let ids = sqlx::query_scalar!(
        "select user_id from memberships where org_id = $1 and role = 'owner' for update",
        ctx.org_id as OrgId
    )
    .fetch_all(&mut **tx)
    .await?;
    Ok(ids.into_iter().map(UserId::from).collect())
}

pub async fn set_role(
    ex: impl PgExecutor<'_>,
    ctx: &Ctx,
    user_id: UserId,
    role: Role,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update memberships set role = $3, updated_at = $4 where org_id = $1 and user_id = $2",
        ctx.org_id as OrgId,
        user_id as UserId,
        role.as_str(),
        now
    )
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn remove_member(ex: impl PgExecutor<'_>, ctx: &Ctx, user_id: UserId) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "delete from memberships where org_id = $1 and user_id = $2",
        ctx.org_id as OrgId,
        user_id as UserId
    )
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}
