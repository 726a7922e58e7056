use sqlx::{PgExecutor, Postgres, Transaction};
use time::OffsetDateTime;

use crate::domain::{Ctx, Email, InvitationId, InvitationStatus, OrgId, Role, UserId};

/// An invitation, with its organization's name and its inviter's address.
pub struct InvitationRow {
    pub id: InvitationId,
    pub org_id: OrgId,
    pub org_name: String,
    pub email: String,
    pub role: String,
    pub status: String,
    pub invited_by: Option<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub answered_at: Option<OffsetDateTime>,
}

/// Invites `email` into the context's organization as `role`, by the context's user. An open
/// invitation of that address there is renewed instead (role, inviter and expiry), so that
/// inviting twice leaves one. Returns the invitation's id.
pub async fn upsert(
    ex: impl PgExecutor<'_>,
    ctx: &Ctx,
    email: &Email,
    role: Role,
    now: OffsetDateTime,
) -> sqlx::Result<InvitationId> {
    let id = sqlx::query_scalar!(
        "insert into invitations (id, org_id, email, role, invited_by, created_at, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7)
         on conflict (org_id, email) where status = 'pending'
         do update set role = excluded.role, invited_by = excluded.invited_by,
                       created_at = excluded.created_at, expires_at = excluded.expires_at
         returning id",
        InvitationId::new() as InvitationId,
        ctx.org_id as OrgId,
        email.as_str(),
        role.as_str(),
        ctx.user_id as UserId,
        now,
        now + InvitationStatus::VALID_FOR
    )
    .fetch_one(ex)
    .await?;
    Ok(id.into())
}

/// Which invitations to read; every filter given must hold.
#[derive(Default)]
struct Filter<'a> {
    org_id: Option<OrgId>,
    email: Option<&'a str>,
    id: Option<InvitationId>,
    /// Only those still open at this time.
    open_at: Option<OffsetDateTime>,
}

async fn select(ex: impl PgExecutor<'_>, f: Filter<'_>) -> sqlx::Result<Vec<InvitationRow>> {
    sqlx::query_as!(
        InvitationRow,
        r#"select i.id, i.org_id, o.name as org_name, i.email, i.role, i.status,
                  u.email as "invited_by?", i.created_at, i.expires_at, i.answered_at
           from invitations i
           join organizations o on o.id = i.org_id
           left join users u on u.id = i.invited_by
           where ($1::uuid is null or i.org_id = $1)
             and ($2::text is null or i.email = $2)
             and ($3::uuid is null or i.id = $3)
             and ($4::timestamptz is null or (i.status = 'pending' and i.expires_at > $4))
           order by i.created_at desc, i.id"#,
        f.org_id as Option<OrgId>,
        f.email,
        f.id as Option<InvitationId>,
        f.open_at
    )
    .fetch_all(ex)
    .await
}

/// The organization's invitations, newest first, answered and expired ones too.
pub async fn list(ex: impl PgExecutor<'_>, ctx: &Ctx) -> sqlx::Result<Vec<InvitationRow>> {
    select(ex, Filter { org_id: Some(ctx.org_id), ..Filter::default() }).await
}

pub async fn get(
    ex: impl PgExecutor<'_>,
    ctx: &Ctx,
    id: InvitationId,
) -> sqlx::Result<Option<InvitationRow>> {
    Ok(select(ex, Filter { org_id: Some(ctx.org_id), id: Some(id), ..Filter::default() }).await?.pop())
}

/// The invitations addressed to `email` that can still be answered, from every organization.
/// Not tenant-scoped: the address is the invitee's own.
pub async fn open_for(
    ex: impl PgExecutor<'_>,
    email: &str,
    now: OffsetDateTime,
) -> sqlx::Result<Vec<InvitationRow>> {
    select(ex, Filter { email: Some(email), open_at: Some(now), ..Filter::default() }).await
}

/// One invitation addressed to `email`, whatever its state.
pub async fn addressed_to(
    ex: impl PgExecutor<'_>,
    email: &str,
    id: InvitationId,
) -> sqlx::Result<Option<InvitationRow>> {
    Ok(select(ex, Filter { email: Some(email), id: Some(id), ..Filter::default() }).await?.pop())
}

/// What deciding on an invitation needs, read under a row lock so that two answers (or an
/// answer and a revocation) take turns.
pub struct Locked {
    pub org_id: OrgId,
    pub role: String,
    pub status: String,
    pub expires_at: OffsetDateTime,
}

/// Locks an invitation addressed to `email`, for its invitee's answer.
pub async fn lock_addressed_to(
    tx: &mut Transaction<'_, Postgres>,
    email: &str,
    id: InvitationId,
) -> sqlx::Result<Option<Locked>> {
    sqlx::query_as!(
        Locked,
        "select org_id, role, status, expires_at from invitations where id = $1 and email = $2 for update",
        id as InvitationId,
        email
    )
    .fetch_optional(&mut **tx)
    .await
}

/// Locks an invitation of the context's organization, for its revocation.
pub async fn lock(
    tx: &mut Transaction<'_, Postgres>,
    ctx: &Ctx,
    id: InvitationId,
) -> sqlx::Result<Option<Locked>> {
    sqlx::query_as!(
        Locked,
        "select org_id, role, status, expires_at from invitations where org_id = $1 and id = $2 for update",
        ctx.org_id as OrgId,
        id as InvitationId
    )
    .fetch_optional(&mut **tx)
    .await
}

/// Records the answer to a pending invitation (accepted, declined or revoked).
pub async fn answer(
    ex: impl PgExecutor<'_>,
    id: InvitationId,
    status: InvitationStatus,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update invitations set status = $2, answered_at = $3 where id = $1 and status = 'pending'",
        id as InvitationId,
        status.as_stored(),
        now
    )
    .execute(ex)
    .await?;
    Ok(())
}
