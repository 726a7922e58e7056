use sqlx::PgExecutor;
use time::OffsetDateTime;

use crate::domain::{Email, OrgId, Principal, PrincipalOrg, Role, UserId};

/// A user as a login needs them: the stored hash, and the principal the login answers with.
pub struct LoginRow {
    pub password_hash: String,
    pub principal: Principal,
}

/// The user with this e-mail, with their organizations, in one round trip.
pub async fn find_for_login(ex: impl PgExecutor<'_>, email: &str) -> sqlx::Result<Option<LoginRow>> {
    let rows = sqlx::query!(
        r#"select u.password_hash, u.id, u.email, u.first_name, u.last_name, u.origin, u.must_change_password,
                  u.created_at, u.updated_at,
                  o.id as "org_id?", o.name as "org_name?", m.role as "role?",
                  o.created_at as "org_created_at?", o.updated_at as "org_updated_at?"
           from users u
           left join memberships m on m.user_id = u.id
           left join organizations o on o.id = m.org_id
           where u.email = $1
           order by o.name, o.id"#,
        email
    )
    .fetch_all(ex)
    .await?;
    let mut orgs = Vec::with_capacity(rows.len());
    for r in &rows {
        orgs.extend(membership(
            r.org_id.map(Into::into),
            &r.org_name,
            &r.role,
            r.org_created_at,
            r.org_updated_at,
        )?);
    }
    Ok(rows.into_iter().next().map(|r| LoginRow {
        password_hash: r.password_hash,
        principal: Principal {
            user_id: r.id.into(),
            email: r.email,
            first_name: r.first_name,
            last_name: r.last_name,
            origin: r.origin,
            must_change_password: r.must_change_password,
            created_at: r.created_at,
            updated_at: r.updated_at,
            orgs,
        },
    }))
}

/// A membership from the columns of a principal's query, one row per membership: `None` for the
/// single row of a user in no organization, whose membership columns are all null.
pub(super) fn membership(
    org_id: Option<OrgId>,
    name: &Option<String>,
    role: &Option<String>,
    created_at: Option<OffsetDateTime>,
    updated_at: Option<OffsetDateTime>,
) -> sqlx::Result<Option<PrincipalOrg>> {
    let (Some(id), Some(name), Some(role), Some(created_at), Some(updated_at)) =
        (org_id, name, role, created_at, updated_at)
    else {
        return Ok(None);
    };
    Ok(Some(PrincipalOrg { id, name: name.clone(), role: role_of(role)?, created_at, updated_at }))
}

pub(super) fn role_of(stored: &str) -> sqlx::Result<Role> {
    Role::parse(stored)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown role {stored:?} in the database").into()))
}

pub async fn password_hash(ex: impl PgExecutor<'_>, user_id: UserId) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!("select password_hash from users where id = $1", user_id as UserId)
        .fetch_optional(ex)
        .await
}

pub async fn find_id_by_email(ex: impl PgExecutor<'_>, email: &Email) -> sqlx::Result<Option<UserId>> {
    let id = sqlx::query_scalar!("select id from users where email = $1", email.as_str())
        .fetch_optional(ex)
        .await?;
    Ok(id.map(UserId::from))
}

pub async fn any_exists(ex: impl PgExecutor<'_>) -> sqlx::Result<bool> {
    let exists =
        sqlx::query_scalar!(r#"select exists(select 1 from users) as "exists!""#).fetch_one(ex).await?;
    Ok(exists)
}

pub struct NewUser<'a> {
    pub id: UserId,
    pub email: &'a Email,
    pub password_hash: &'a str,
    pub must_change_password: bool,
}

pub async fn insert(ex: impl PgExecutor<'_>, u: NewUser<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into users (id, email, password_hash, must_change_password) values ($1, $2, $3, $4)",
        u.id as UserId,
        u.email.as_str(),
        u.password_hash,
        u.must_change_password
    )
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn set_password(
    ex: impl PgExecutor<'_>,
    user_id: UserId,
    password_hash: &str,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update users set password_hash = $2, must_change_password = false, updated_at = $3 where id = $1",
        user_id as UserId,
        password_hash,
        now
    )
    .execute(ex)
    .await?;
    Ok(())
}
