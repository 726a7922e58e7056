//! Signing in and out: the password check under its throttles, and what the audit trail keeps
//! of each attempt. The session cookie itself is HTTP's.

use secrecy::{ExposeSecret, SecretString};

use crate::app::AppState;
use crate::audit::{Event, Outcome, RequestMeta};
use crate::auth::throttle::{self, Limit};
use crate::db;
use crate::domain::{AuthMethod, Error, OrgId, Principal, Result, password};

pub use crate::auth::throttle::Throttled;

/// What a throttled check answers: refused before anything was hashed, with the wait.
pub type Checked<T> = std::result::Result<T, Throttled>;

/// Checks a password against the stored hash (or a dummy when `stored` is `None`), under the
/// throttles of the login and of the request's source address: the attempt is counted before
/// the hash, so `Ok(false)` is a counted failure and `Err(Throttled)` a refusal without hashing;
/// a success forgets the login's failures.
pub async fn check_password(
    state: &AppState,
    meta: &RequestMeta,
    login: &str,
    password: SecretString,
    stored: Option<String>,
) -> Result<Checked<bool>> {
    let limits = [Limit::login(&state.auth, login), Limit::address(&state.auth, meta.source_ip.as_deref())];
    let reservation = match throttle::reserve(&state.db, &limits, state.clock.now()).await? {
        Ok(r) => r,
        Err(t) => return Ok(Err(t)),
    };
    if state.hasher.verify(password, stored).await? {
        reservation.give_back(&state.db, &[&limits[0]]).await?;
        Ok(Ok(true))
    } else {
        // A failure stays counted.
        drop(reservation);
        Ok(Ok(false))
    }
}

/// A login as typed, as it is looked up: trimmed, lower-case, 1 to 254 characters.
pub fn login_name(typed: &str) -> Result<String> {
    let login = typed.trim().to_lowercase();
    if login.is_empty() || login.len() > 254 {
        return Err(Error::field("login", "must be an e-mail address of 1 to 254 characters"));
    }
    Ok(login)
}

/// Signs in with a password: the user (`None` for a wrong login or password, which answer
/// alike), or the throttle's refusal. Every attempt is recorded in the chain of every
/// organization of the user it names (the system chain for one that names nobody); a refused
/// one is only tallied.
pub async fn login(
    state: &AppState,
    meta: &RequestMeta,
    typed: &str,
    password: SecretString,
) -> Result<Checked<Option<Principal>>> {
    let login = login_name(typed)?;
    if password.expose_secret().chars().count() > password::MAX_LEN {
        return Err(Error::field("password", "is longer than any password can be"));
    }
    let user = db::users::find_for_login(&state.db, &login).await?;
    let (principal, stored) = match user {
        Some(u) => (Some(u.principal), Some(u.password_hash)),
        None => (None, None),
    };
    let verdict = check_password(state, meta, &login, password, stored).await;
    let outcome = match &verdict {
        Ok(Ok(true)) => Outcome::Success,
        Ok(Ok(false)) => Outcome::Failure,
        Ok(Err(_)) | Err(_) => Outcome::Denied,
    };
    audit_login(state, meta, &login, principal.as_ref(), outcome).await?;
    match verdict? {
        Err(t) => Ok(Err(t)),
        Ok(false) => Ok(Ok(None)),
        Ok(true) => {
            let principal = principal.ok_or_else(|| anyhow::anyhow!("verified a password without a user"))?;
            Ok(Ok(Some(principal)))
        }
    }
}

/// Records a login attempt in the chain of every organization of the user it names (the system
/// chain for a login that names nobody).
async fn audit_login(
    state: &AppState,
    meta: &RequestMeta,
    login: &str,
    user: Option<&Principal>,
    outcome: Outcome,
) -> Result<()> {
    let orgs: Vec<OrgId> = user.map(|u| u.orgs.iter().map(|o| o.id).collect()).unwrap_or_default();
    let mut ev = Event::new("login", meta).claimed_actor(login).outcome(outcome);
    if let Some(id) = user.map(|u| u.user_id) {
        ev = ev.actor_user(id).target(format!("user:{id}"));
    }
    let now = state.clock.now();
    let chains: Vec<Event> = match orgs.as_slice() {
        [] => vec![ev],
        _ => orgs.into_iter().map(|org| ev.clone().org(org)).collect(),
    };
    for ev in chains {
        if outcome == Outcome::Denied {
            // Refused without a hash: anyone can send these as fast as they like.
            ev.detail("reason", "throttled").tally(&state.refusals, now);
        } else {
            ev.record(&state.db, now).await?;
        }
    }
    Ok(())
}

/// Records that `user`'s session ended, in the chain of each of its organizations.
pub async fn logged_out(state: &AppState, meta: &RequestMeta, user: &Principal) -> Result<()> {
    for org in &user.orgs {
        Event::new("logout", meta)
            .org(org.id)
            .by(user, &AuthMethod::Session)
            .record(&state.db, state.clock.now())
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_is_looked_up_trimmed_and_lower_case() {
        assert_eq!(login_name("  Owner@Example.COM ").unwrap(), "owner@example.com");
        assert!(login_name("   ").is_err());
        assert!(login_name(&"a".repeat(255)).is_err());
        assert_eq!(login_name(&"a".repeat(254)).unwrap().len(), 254);
    }
}
