//! Invitations: withdrawing one, and the invitee's answer. Until the invitee accepts it is no
//! member, and nothing it does enters the organization's audit trail.

use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::app::AppState;
use crate::audit::{Event, RequestMeta};
use crate::db;
use crate::db::invitations::InvitationRow;
use crate::domain::{AuthMethod, Ctx, Error, InvitationId, InvitationStatus, Principal, Result, Role};
use crate::service::members::{on_membership_conflict, parse_role};

/// A stored invitation's status at `now` (a pending one past its expiry is `expired`).
pub fn status_at(stored: &str, expires_at: OffsetDateTime, now: OffsetDateTime) -> Result<InvitationStatus> {
    InvitationStatus::at(stored, expires_at, now)
        .ok_or_else(|| anyhow::anyhow!("unknown invitation status {stored:?} in the database").into())
}

fn answered(status: InvitationStatus) -> Error {
    Error::conflict("invitation_answered", format!("the invitation is {} already", status.as_str()))
}

/// Whether an invitation of `status` to become `role` may be withdrawn by a member of `by`: until
/// it is answered, and one to become an owner only by an owner.
pub fn revocable(status: InvitationStatus, role: Role, by: Role) -> Result<()> {
    if !status.may_revoke() {
        return Err(answered(status));
    }
    if role == Role::Owner && by != Role::Owner {
        return Err(Error::Forbidden {
            code: "owner_only",
            detail: "only an owner can withdraw an invitation to become an owner".into(),
        });
    }
    Ok(())
}

/// Whether an invitation of `status` can still be answered.
pub fn answerable(status: InvitationStatus) -> Result<()> {
    match status {
        InvitationStatus::Pending => Ok(()),
        InvitationStatus::Expired => Err(Error::conflict(
            "invitation_expired",
            "the invitation has expired; ask the organization for a new one",
        )),
        other => Err(answered(other)),
    }
}

/// The organization's invitations, newest first (expired ones included), and the time their
/// status is seen at.
pub async fn list(state: &AppState, ctx: &Ctx) -> Result<(Vec<InvitationRow>, OffsetDateTime)> {
    let rows = db::invitations::list(&state.db, ctx).await?;
    Ok((rows, state.clock.now()))
}

/// Withdraws an invitation of the context's organization that has not been answered.
pub async fn revoke(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    id: InvitationId,
) -> Result<()> {
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let inv = db::invitations::lock(&mut tx, ctx, id).await?.ok_or(Error::NotFound("invitation"))?;
    revocable(status_at(&inv.status, inv.expires_at, now)?, parse_role(&inv.role)?, ctx.role)?;
    db::invitations::answer(&mut *tx, id, InvitationStatus::Revoked, now).await?;
    Event::new("invitation.revoked", meta)
        .in_ctx(ctx, actor)
        .target(format!("invitation:{id}"))
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The invitations to `email` that can still be answered, and the time their status is seen at.
pub async fn open_for(state: &AppState, email: &str) -> Result<(Vec<InvitationRow>, OffsetDateTime)> {
    let now = state.clock.now();
    Ok((db::invitations::open_for(&state.db, email, now).await?, now))
}

/// The invitee's answer to an invitation.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Answer {
    Accept,
    Decline,
}

/// Answers an invitation to `user`'s address. Accepting makes the user a member with the
/// invited role, recorded in the organization's audit trail; declining is recorded in the
/// system's, the organization being one the user never joined. Returns the invitation as
/// answered, and the time its status is seen at.
pub async fn answer(
    state: &AppState,
    meta: &RequestMeta,
    user: &Principal,
    method: &AuthMethod,
    id: InvitationId,
    answer: Answer,
) -> Result<(InvitationRow, OffsetDateTime)> {
    let email = &user.email;
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let inv =
        db::invitations::lock_addressed_to(&mut tx, email, id).await?.ok_or(Error::NotFound("invitation"))?;
    answerable(status_at(&inv.status, inv.expires_at, now)?)?;
    let event = match answer {
        Answer::Accept => {
            let role = parse_role(&inv.role)?;
            let ctx = Ctx { user_id: user.user_id, org_id: inv.org_id, role, method: method.clone() };
            db::orgs::add_member(&mut *tx, &ctx, ctx.user_id, role)
                .await
                .map_err(|e| on_membership_conflict(e, email))?;
            db::invitations::answer(&mut *tx, id, InvitationStatus::Accepted, now).await?;
            Event::new("invitation.accepted", meta).in_ctx(&ctx, email).detail("role", role)
        }
        Answer::Decline => {
            db::invitations::answer(&mut *tx, id, InvitationStatus::Declined, now).await?;
            Event::new("invitation.declined", meta).by(user, method)
        }
    };
    event.target(format!("invitation:{id}")).record_in(&mut tx, now).await?;
    tx.commit().await?;
    let row =
        db::invitations::addressed_to(&state.db, email, id).await?.ok_or(Error::NotFound("invitation"))?;
    Ok((row, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: Result<()>) -> &'static str {
        match r {
            Ok(()) => "ok",
            Err(Error::Conflict { code, .. } | Error::Forbidden { code, .. }) => code,
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_an_unanswered_invitation_is_withdrawn_and_an_owners_only_by_an_owner() {
        use InvitationStatus::*;
        assert_eq!(code(revocable(Pending, Role::Member, Role::Admin)), "ok");
        assert_eq!(code(revocable(Expired, Role::Member, Role::Admin)), "ok");
        assert_eq!(code(revocable(Accepted, Role::Member, Role::Owner)), "invitation_answered");
        assert_eq!(code(revocable(Pending, Role::Owner, Role::Admin)), "owner_only");
        assert_eq!(code(revocable(Pending, Role::Owner, Role::Owner)), "ok");
        // Answered first: an admin learns it is answered, not that it was an owner's.
        assert_eq!(code(revocable(Revoked, Role::Owner, Role::Admin)), "invitation_answered");
    }

    #[test]
    fn only_a_pending_invitation_is_answered() {
        use InvitationStatus::*;
        assert_eq!(code(answerable(Pending)), "ok");
        assert_eq!(code(answerable(Expired)), "invitation_expired");
        for s in [Accepted, Declined, Revoked] {
            assert_eq!(code(answerable(s)), "invitation_answered");
        }
    }
}
