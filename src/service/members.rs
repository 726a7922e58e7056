//! Members of an organization and invitations to become one.

use crate::app::AppState;
use crate::audit::{Event, RequestMeta};
use crate::db;
use crate::db::invitations::InvitationRow;
use crate::domain::{Ctx, Email, Error, Result, Role, on_constraint};

/// A role as stored.
pub fn parse_role(s: &str) -> Result<Role> {
    Role::parse(s).ok_or_else(|| anyhow::anyhow!("unknown role {s:?} in the database").into())
}

pub fn already_member(email: &str) -> Error {
    Error::conflict("already_member", format!("{email} is a member already"))
}

/// A membership that exists already, found by its primary key: [`already_member`].
pub fn on_membership_conflict(e: sqlx::Error, email: &str) -> Error {
    on_constraint(e, |c| (c == "memberships_pkey").then(|| already_member(email)))
}

/// Invites `email` into the context's organization as `role`, or renews its open invitation:
/// what adding an address that is not a member does. Nothing here depends on whether the
/// address has an account, so neither the answer nor the audit trail can tell.
pub async fn invite(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    email: &Email,
    role: Role,
) -> Result<InvitationRow> {
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let id = db::invitations::upsert(&mut *tx, ctx, email, role, now).await?;
    Event::new("member.invited", meta)
        .in_ctx(ctx, actor)
        .target(format!("invitation:{id}"))
        .detail("email", email.as_str())
        .detail("role", role)
        .record_in(&mut tx, now)
        .await?;
    let row = db::invitations::get(&mut *tx, ctx, id).await?.ok_or(Error::NotFound("invitation"))?;
    tx.commit().await?;
    Ok(row)
}
