use sqlx::{PgExecutor, Postgres, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use super::users::role_of;
use crate::domain::{CredentialId, Principal, PrincipalOrg};

/// An access token and its refresh token, of one grant (`family_id`).
pub struct NewPair<'a> {
    pub access_hash: &'a [u8],
    pub refresh_hash: &'a [u8],
    pub credential_id: CredentialId,
    pub family_id: Uuid,
    pub scopes: &'a [String],
    pub now: OffsetDateTime,
    pub access_expires_at: OffsetDateTime,
    pub refresh_expires_at: OffsetDateTime,
}

/// Both tokens in one statement: atomic without a transaction of its own.
///
/// Without `durable`, the commit does not wait for the WAL flush (`synchronous_commit = off`
/// for this transaction only; token issuance went from about 2,000/s to 3,300/s, the flush
/// being most of its wait). A new grant can afford it: should PostgreSQL itself crash in the
/// next moment, its tokens are unknown afterwards and answer `invalid_token`, and the client,
/// which holds its secret, asks again. A refresh rotation, which marks the old refresh token
/// used, and every revocation stay durable.
pub async fn insert_pair(ex: impl PgExecutor<'_>, p: NewPair<'_>, durable: bool) -> sqlx::Result<()> {
    sqlx::query!(
        "with commit_mode as (select set_config('synchronous_commit', $9, true))
         insert into oauth_tokens (token_hash, kind, credential_id, family_id, scopes, created_at, expires_at)
         select v.* from commit_mode,
           (values ($1::bytea, 'access', $3::uuid, $4::uuid, $5::text[], $6::timestamptz, $7::timestamptz),
                   ($2, 'refresh', $3, $4, $5, $6, $8)) v",
        p.access_hash,
        p.refresh_hash,
        p.credential_id as CredentialId,
        p.family_id,
        p.scopes,
        p.now,
        p.access_expires_at,
        p.refresh_expires_at,
        if durable { "on" } else { "off" }
    )
    .execute(ex)
    .await?;
    Ok(())
}

pub struct BearerRow {
    pub credential_id: CredentialId,
    pub scopes: Vec<String>,
    pub principal: Principal,
    pub last_used_at: Option<OffsetDateTime>,
}

/// The principal behind an access token, in one round trip: the token, its credential (neither
/// expired nor revoked), the creator's current membership in the credential's organization (a
/// creator who left kills the token), and the user. A read only: see [`touch_credential`].
pub async fn bearer_principal(
    ex: impl PgExecutor<'_>,
    hash: &[u8],
    now: OffsetDateTime,
) -> sqlx::Result<Option<BearerRow>> {
    let row = sqlx::query!(
        r#"select t.credential_id, t.scopes, c.last_used_at,
                  c.org_id, o.name as org_name, m.role, o.created_at as org_created_at,
                  o.updated_at as org_updated_at,
                  u.id, u.email, u.first_name, u.last_name, u.origin, u.must_change_password,
                  u.created_at, u.updated_at
           from oauth_tokens t
           join credentials c on c.id = t.credential_id
           join memberships m on m.org_id = c.org_id and m.user_id = c.created_by
           join organizations o on o.id = c.org_id
           join users u on u.id = c.created_by
           where t.token_hash = $1 and t.kind = 'access' and t.revoked_at is null
             and t.expires_at > $2 and c.revoked_at is null and c.expires_at > $2"#,
        hash,
        now
    )
    .fetch_optional(ex)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let org = PrincipalOrg {
        id: r.org_id.into(),
        name: r.org_name,
        role: role_of(&r.role)?,
        created_at: r.org_created_at,
        updated_at: r.org_updated_at,
    };
    Ok(Some(BearerRow {
        last_used_at: r.last_used_at,
        credential_id: r.credential_id.into(),
        scopes: r.scopes,
        principal: Principal {
            user_id: r.id.into(),
            email: r.email,
            first_name: r.first_name,
            last_name: r.last_name,
            origin: r.origin,
            must_change_password: r.must_change_password,
            created_at: r.created_at,
            updated_at: r.updated_at,
            orgs: vec![org],
        },
    }))
}

pub enum Refresh {
    /// The token was valid and is now used: issue the next pair in `family_id`.
    Rotated { family_id: Uuid, scopes: Vec<String> },
    /// Presented again after use: someone holds a copy. The family must be revoked.
    Reused { family_id: Uuid },
    /// Unknown, expired, revoked, or another client's.
    Invalid,
}

/// Uses a refresh token of `credential_id` exactly once, also under concurrent presentation.
pub async fn use_refresh(
    tx: &mut Transaction<'_, Postgres>,
    hash: &[u8],
    credential_id: CredentialId,
    now: OffsetDateTime,
) -> sqlx::Result<Refresh> {
    let used = sqlx::query!(
        "update oauth_tokens set used_at = $3
         where token_hash = $1 and kind = 'refresh' and credential_id = $2
           and used_at is null and revoked_at is null and expires_at > $3
         returning family_id, scopes",
        hash,
        credential_id as CredentialId,
        now
    )
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(u) = used {
        return Ok(Refresh::Rotated { family_id: u.family_id, scopes: u.scopes });
    }
    let seen = sqlx::query!(
        "select family_id, used_at from oauth_tokens
         where token_hash = $1 and kind = 'refresh' and credential_id = $2",
        hash,
        credential_id as CredentialId
    )
    .fetch_optional(&mut **tx)
    .await?;
    Ok(match seen {
        Some(s) if s.used_at.is_some() => Refresh::Reused { family_id: s.family_id },
        _ => Refresh::Invalid,
    })
}

pub async fn revoke_family(
    ex: impl PgExecutor<'_>,
    family_id: Uuid,
    now: OffsetDateTime,
) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "update oauth_tokens set revoked_at = $2 where family_id = $1 and revoked_at is null",
        family_id,
        now
    )
    .execute(ex)
    .await?;
    Ok(done.rows_affected())
}

/// RFC 7009: revokes a token of `credential_id` (a refresh token takes its family with it).
/// Another client's token, or an unknown one, is left alone.
pub async fn revoke_token(
    tx: &mut Transaction<'_, Postgres>,
    hash: &[u8],
    credential_id: CredentialId,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let found = sqlx::query!(
        "update oauth_tokens set revoked_at = coalesce(revoked_at, $3)
         where token_hash = $1 and credential_id = $2 returning kind, family_id",
        hash,
        credential_id as CredentialId,
        now
    )
    .fetch_optional(&mut **tx)
    .await?;
    match found {
        Some(t) if t.kind == "refresh" => {
            revoke_family(&mut **tx, t.family_id, now).await?;
            Ok(true)
        }
        Some(_) => Ok(true),
        None => Ok(false),
    }
}

/// Tokens past expiry are refused anyway; this reclaims their rows.
pub async fn purge_expired(ex: impl PgExecutor<'_>, now: OffsetDateTime) -> sqlx::Result<u64> {
    let done = sqlx::query!("delete from oauth_tokens where expires_at <= $1", now).execute(ex).await?;
    Ok(done.rows_affected())
}

/// Records that a credential was used, if it was last recorded before `stale`. Concurrent
/// requests do not queue behind each other on the row: one writes, the others skip it.
pub async fn touch_credential(
    ex: impl PgExecutor<'_>,
    id: CredentialId,
    now: OffsetDateTime,
    stale: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update credentials set last_used_at = $2
         where id = (select id from credentials
                     where id = $1 and (last_used_at is null or last_used_at < $3)
                     for update skip locked)",
        id as CredentialId,
        now,
        stale
    )
    .execute(ex)
    .await?;
    Ok(())
}
