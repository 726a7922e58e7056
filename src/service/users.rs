//! A user's own account: changing its password, which ends its other sessions and revokes the
//! credentials it made.

use secrecy::SecretString;

use crate::app::AppState;
use crate::audit::{Event, RequestMeta};
use crate::db;
use crate::domain::{AuthMethod, Error, NewPassword, Principal, Result};
use crate::service::auth::{Checked, check_password};

/// A password change checked: the current password was right, and this is the new one's hash.
#[derive(Debug)]
pub struct PasswordChange {
    hash: String,
}

/// Checks a change of `user`'s password: the new one keeps the rules (422), the current one is
/// right (403 `wrong_current_password`, counted by the login's throttle, whose refusal is
/// returned as such). Nothing changes until [`change_password`].
pub async fn check_change(
    state: &AppState,
    meta: &RequestMeta,
    user: &Principal,
    current: SecretString,
    new: SecretString,
) -> Result<Checked<PasswordChange>> {
    let new = NewPassword::parse(new).map_err(|m| Error::field("new_password", m))?;
    let stored = db::users::password_hash(&state.db, user.user_id).await?;
    match check_password(state, meta, &user.email, current, stored).await? {
        Err(t) => return Ok(Err(t)),
        Ok(false) => {
            return Err(Error::Forbidden {
                code: "wrong_current_password",
                detail: "current_password is not the current password".into(),
            });
        }
        Ok(true) => {}
    }
    Ok(Ok(PasswordChange { hash: state.hasher.hash(new.into_secret()).await? }))
}

/// Sets `user`'s new password, ends every session of the user stored so far (the caller's
/// continues under a new id, which the caller has already asked for), and revokes every OAuth2
/// credential the user created, in any organization, with its tokens, in one transaction;
/// recorded in each of the user's organizations.
pub async fn change_password(
    state: &AppState,
    meta: &RequestMeta,
    user: &Principal,
    method: &AuthMethod,
    change: PasswordChange,
) -> Result<()> {
    let user_id = user.user_id;
    let mut tx = state.db.begin().await?;
    db::users::set_password(&mut *tx, user_id, &change.hash, state.clock.now()).await?;
    let ended = db::sessions::delete_others(&mut *tx, user_id, None).await?;
    // Whoever learnt the old password may have made credentials with it: they end with it.
    let revoked = db::credentials::revoke_created_by(&mut tx, user_id, state.clock.now()).await?;
    for org in &user.orgs {
        Event::new("user.password_changed", meta)
            .org(org.id)
            .by(user, method)
            .target(format!("user:{user_id}"))
            .detail("sessions_ended", ended)
            .detail("credentials_revoked", revoked.iter().filter(|o| **o == org.id).count())
            .record_in(&mut tx, state.clock.now())
            .await?;
    }
    tx.commit().await?;
    Ok(())
}
