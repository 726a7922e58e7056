//! Members of an organization (the invitations are `service::invitations`): who may add, promote, demote and
//! remove whom, and that an organization keeps an owner.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::audit::{Event, RequestMeta};
use crate::db;
use crate::db::invitations::InvitationRow;
use crate::db::orgs::MemberRow;
use crate::domain::{Ctx, Email, Error, NewPassword, Result, Role, UserId, on_constraint};

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

pub async fn list(state: &AppState, ctx: &Ctx) -> Result<Vec<MemberRow>> {
    Ok(db::orgs::list_members(&state.db, ctx).await?)
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    #[schema(example = "dev@example.com", format = Email)]
    pub email: String,
    pub role: Role,
    /// Initial password (12 to 1024 characters) for a new account, which becomes a member at
    /// once and must change it at first login. Ignored, and not kept, when the address has an
    /// account: that account is invited like any other. Not for bearer tokens.
    #[schema(value_type = Option<String>, format = Password, min_length = 12, max_length = 1024)]
    #[serde(
        serialize_with = "crate::domain::password::serialize_exposed",
        skip_serializing_if = "Option::is_none"
    )]
    pub password: Option<SecretString>,
}

/// What adding a member did: made a new account a member, or invited the address.
pub enum Added {
    Member(MemberRow),
    Invited(InvitationRow),
}

fn owner_only(detail: &str) -> Error {
    Error::Forbidden { code: "owner_only", detail: detail.to_owned() }
}

fn last_owner() -> Error {
    Error::conflict("last_owner", "an organization must keep at least one owner; make another owner first")
}

/// Adds `email` to the context's organization as `role`: an address that is not a member is
/// invited; with a password, an address without an account gets one, a member at once. Only a
/// signed-in user may give a password or make an owner, and only an owner makes an owner.
pub async fn add(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    cmd: AddMember,
) -> Result<Added> {
    // A leaked token must not mint a login of its own, or an owner who could revoke the rest.
    if cmd.password.is_some() {
        ctx.method.require_session("creating an account with a password")?;
    }
    if cmd.role == Role::Owner {
        ctx.method.require_session("making an owner")?;
    }
    if cmd.role == Role::Owner && ctx.role != Role::Owner {
        return Err(owner_only("only an owner can add an owner"));
    }
    let email = Email::parse(&cmd.email).map_err(|m| Error::field("email", m))?;
    let given =
        cmd.password.map(|p| NewPassword::parse(p).map_err(|m| Error::field("password", m))).transpose()?;
    if db::orgs::member_by_email(&state.db, ctx, &email).await?.is_some() {
        return Err(already_member(email.as_str()));
    }
    // Without a password nothing asks whether the address has an account.
    let Some(given) = given else {
        return Ok(Added::Invited(invite(state, meta, ctx, actor, &email, cmd.role).await?));
    };
    if db::users::find_id_by_email(&state.db, &email).await?.is_some() {
        return Ok(Added::Invited(invite(state, meta, ctx, actor, &email, cmd.role).await?));
    }

    let hash = state.hasher.hash(given.into_secret()).await?;
    let user_id = UserId::new();
    let mut tx = state.db.begin().await?;
    db::users::insert(
        &mut *tx,
        db::users::NewUser { id: user_id, email: &email, password_hash: &hash, must_change_password: true },
    )
    .await
    .map_err(|e| {
        on_constraint(e, |c| {
            (c == "users_email_key")
                .then(|| Error::conflict("conflict", "the account was created meanwhile; retry"))
        })
    })?;
    db::orgs::add_member(&mut *tx, ctx, user_id, cmd.role)
        .await
        .map_err(|e| on_membership_conflict(e, email.as_str()))?;
    let member = db::orgs::get_member(&mut *tx, ctx, user_id).await?.ok_or(Error::NotFound("member"))?;
    Event::new("member.added", meta)
        .in_ctx(ctx, actor)
        .target(format!("user:{user_id}"))
        .detail("email", email.as_str())
        .detail("role", cmd.role)
        .detail("account_created", true)
        .record_in(&mut tx, state.clock.now())
        .await?;
    tx.commit().await?;
    Ok(Added::Member(member))
}

/// Who may change a member's role from `current` to `to`, and whether the organization keeps
/// an owner (`owners`: how many it has now).
pub fn check_role_change(actor: Role, current: Role, to: Role, owners: usize) -> Result<()> {
    if (current == Role::Owner || to == Role::Owner) && actor != Role::Owner {
        return Err(owner_only("only an owner can make or unmake an owner"));
    }
    if current == Role::Owner && to != Role::Owner && owners <= 1 {
        return Err(last_owner());
    }
    Ok(())
}

/// Who may remove a member of role `target`, and whether the organization keeps an owner.
pub fn check_removal(actor: Role, target: Role, owners: usize) -> Result<()> {
    if target == Role::Owner {
        if actor != Role::Owner {
            return Err(owner_only("only an owner can remove an owner"));
        }
        if owners <= 1 {
            return Err(last_owner());
        }
    }
    Ok(())
}

/// Changes a member's role, under the lock of the organization's owners. Making an owner needs a
/// signed-in owner.
pub async fn set_role(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    user_id: UserId,
    role: Role,
) -> Result<MemberRow> {
    if role == Role::Owner {
        ctx.method.require_session("making an owner")?;
    }
    let mut tx = state.db.begin().await?;
    let owners = db::orgs::lock_owners(&mut tx, ctx).await?;
    let target = db::orgs::get_member(&mut *tx, ctx, user_id).await?.ok_or(Error::NotFound("member"))?;
    let current = parse_role(&target.role)?;
    check_role_change(ctx.role, current, role, owners.len())?;
    db::orgs::set_role(&mut *tx, ctx, user_id, role, state.clock.now()).await?;
    let member = db::orgs::get_member(&mut *tx, ctx, user_id).await?.ok_or(Error::NotFound("member"))?;
    Event::new("member.role_changed", meta)
        .in_ctx(ctx, actor)
        .target(format!("user:{user_id}"))
        .detail("from", current)
        .detail("to", role)
        .record_in(&mut tx, state.clock.now())
        .await?;
    tx.commit().await?;
    Ok(member)
}

/// Removes a member, under the lock of the organization's owners.
pub async fn remove(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    user_id: UserId,
) -> Result<()> {
    let mut tx = state.db.begin().await?;
    let owners = db::orgs::lock_owners(&mut tx, ctx).await?;
    let target = db::orgs::get_member(&mut *tx, ctx, user_id).await?.ok_or(Error::NotFound("member"))?;
    check_removal(ctx.role, parse_role(&target.role)?, owners.len())?;
    db::orgs::remove_member(&mut *tx, ctx, user_id).await?;
    Event::new("member.removed", meta)
        .in_ctx(ctx, actor)
        .target(format!("user:{user_id}"))
        .detail("email", &target.email)
        .detail("role", &target.role)
        .record_in(&mut tx, state.clock.now())
        .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(r: Result<()>) -> &'static str {
        match r {
            Ok(()) => "ok",
            Err(Error::Forbidden { code, .. } | Error::Conflict { code, .. }) => code,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn only_owners_make_or_unmake_owners_and_one_stays() {
        use Role::*;
        assert_eq!(code(check_role_change(Admin, Member, Viewer, 1)), "ok");
        assert_eq!(code(check_role_change(Admin, Member, Owner, 1)), "owner_only");
        assert_eq!(code(check_role_change(Admin, Owner, Member, 2)), "owner_only");
        assert_eq!(code(check_role_change(Owner, Owner, Admin, 1)), "last_owner");
        assert_eq!(code(check_role_change(Owner, Owner, Admin, 2)), "ok");
        assert_eq!(code(check_role_change(Owner, Owner, Owner, 1)), "ok");
    }

    #[test]
    fn only_owners_remove_owners_and_never_the_last() {
        use Role::*;
        assert_eq!(code(check_removal(Admin, Member, 1)), "ok");
        assert_eq!(code(check_removal(Admin, Owner, 2)), "owner_only");
        assert_eq!(code(check_removal(Owner, Owner, 1)), "last_owner");
        assert_eq!(code(check_removal(Owner, Owner, 2)), "ok");
    }
}
