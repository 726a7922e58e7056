//! Checking a user's password, for signing in and for changing it.

use secrecy::SecretString;

use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::auth::throttle::{self, Limit};
use crate::error::ApiResult;

/// Checks a password against the stored hash (or a dummy when `stored` is `None`), under the
/// throttles of the login and of the request's source address: the attempt is counted before
/// the hash, so `Ok(false)` is a counted failure and 429 a refusal without hashing; a success
/// forgets the login's failures.
pub async fn check_password(
    state: &AppState,
    meta: &RequestMeta,
    login: &str,
    password: SecretString,
    stored: Option<String>,
) -> ApiResult<bool> {
    let limits = [Limit::login(&state.auth, login), Limit::address(&state.auth, meta.source_ip.as_deref())];
    let reservation = throttle::reserve(&state.db, &limits, state.clock.now()).await??;
    if state.hasher.verify(password, stored).await? {
        reservation.give_back(&state.db, &[&limits[0]]).await?;
        Ok(true)
    } else {
        // A failure stays counted.
        drop(reservation);
        Ok(false)
    }
}
