use sqlx::{PgExecutor, Postgres, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{CredentialId, Ctx, OrgId, UserId};

pub struct CredentialRow {
    pub id: CredentialId,
    pub client_id: String,
    pub description: String,
    pub scopes: Vec<String>,
    pub created_by: UserId,
    pub created_by_email: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

pub struct NewCredential<'a> {
    pub id: CredentialId,
    pub client_id: &'a str,
    pub secret_hash: &'a [u8],
    pub description: &'a str,
    pub scopes: &'a [String],
    pub now: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// A credential created by the context's user in the context's organization.
pub async fn insert(ex: impl PgExecutor<'_>, ctx: &Ctx, c: NewCredential<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into credentials (id, org_id, created_by, client_id, secret_hash, description, scopes, created_at, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        c.id as CredentialId,
        ctx.org_id as OrgId,
        ctx.user_id as UserId,
        c.client_id,
        c.secret_hash,
        c.description,
        c.scopes,
        c.now,
        c.expires_at
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// The organization's credentials; only `creator`'s when given.
pub async fn list(
    ex: impl PgExecutor<'_>,
    ctx: &Ctx,
    creator: Option<UserId>,
) -> sqlx::Result<Vec<CredentialRow>> {
    sqlx::query_as!(
        CredentialRow,
        "select c.id, c.client_id, c.description, c.scopes, c.created_by, u.email as created_by_email,
                c.created_at, c.expires_at, c.last_used_at, c.revoked_at
         from credentials c join users u on u.id = c.created_by
         where c.org_id = $1 and ($2::uuid is null or c.created_by = $2)
         order by c.created_at desc, c.id",
        ctx.org_id as OrgId,
        creator as Option<UserId>
    )
    .fetch_all(ex)
    .await
}

/// Revokes a credential of the organization (only `creator`'s when given) and every token it
/// issued. `None` when there is no such credential for the caller.
pub async fn revoke(
    tx: &mut Transaction<'_, Postgres>,
    ctx: &Ctx,
    client_id: &str,
    creator: Option<UserId>,
    now: OffsetDateTime,
) -> sqlx::Result<Option<Uuid>> {
    let id = sqlx::query_scalar!(
        "update credentials set revoked_at = coalesce(revoked_at, $4)
         where org_id = $1 and client_id = $2 and ($3::uuid is null or created_by = $3)
         returning id",
        ctx.org_id as OrgId,
        client_id,
        creator as Option<UserId>,
        now
    )
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(id) = id {
        sqlx::query!(
            "update oauth_tokens set revoked_at = $2 where credential_id = $1 and revoked_at is null",
            id,
            now
        )
        .execute(&mut **tx)
        .await?;
    }
    Ok(id)
}

/// Revokes every credential `user_id` created, in any organization, and every token they
/// issued; returns the organization of each credential revoked. Not tenant-scoped: it serves a
/// change of the user's own password, which is not an act inside one organization.
pub async fn revoke_created_by(
    tx: &mut Transaction<'_, Postgres>,
    user_id: UserId,
    now: OffsetDateTime,
) -> sqlx::Result<Vec<OrgId>> {
    // Data-modifying CTEs run whether or not the outer query reads them.
    sqlx::query_scalar!(
        r#"with revoked as (
             update credentials set revoked_at = $2
             where created_by = $1 and revoked_at is null
             returning id, org_id
         ), tokens as (
             update oauth_tokens t set revoked_at = $2
             from revoked r where t.credential_id = r.id and t.revoked_at is null
         )
         select org_id as "org_id: OrgId" from revoked"#,
        user_id as UserId,
        now
    )
    .fetch_all(&mut **tx)
    .await
}

/// What the token endpoint needs to authenticate a client. Not tenant-scoped: the client id is
/// what establishes the tenant.
pub struct ClientAuth {
    pub id: CredentialId,
    pub org_id: OrgId,
    pub created_by: UserId,
    pub secret_hash: Vec<u8>,
    pub scopes: Vec<String>,
    pub expires_at: OffsetDateTime,
    pub revoked_at: Option<OffsetDateTime>,
    /// The creator's current role in the organization; `None` once they have left it.
    pub creator_role: Option<String>,
}

/// The client with this id, if any.
pub async fn for_client_auth(ex: impl PgExecutor<'_>, client_id: &str) -> sqlx::Result<Option<ClientAuth>> {
    sqlx::query_as!(
        ClientAuth,
        r#"select c.id, c.org_id, c.created_by, c.secret_hash, c.scopes, c.expires_at, c.revoked_at,
                  m.role as "creator_role?"
           from credentials c
           left join memberships m on m.org_id = c.org_id and m.user_id = c.created_by
           where c.client_id = $1"#,
        client_id
    )
    .fetch_optional(ex)
    .await
}
