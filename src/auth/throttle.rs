//! The throttles on authentication: what counts against whom, and for how long.
//!
//! A login reserves its attempt under every limit before its password is hashed, in the
//! statement that counts ([`db::auth_attempts::reserve`]): however many requests arrive at once,
//! no more than a limit's worth are hashed per window. A success gives its reservation back; a
//! failure leaves it counted. A client secret is checked first, since checking it costs a
//! SHA-256, and a failure is then counted the same way, or refused with 429 when the window has
//! no room, so that no more failures per window are answered, recorded or audited.

use sqlx::PgPool;
use time::{Duration, OffsetDateTime};

use crate::config::AuthConfig;
use crate::db;

/// At most `CLIENT_MAX_FAILURES` wrong secrets per client id in this window.
pub const CLIENT_WINDOW: Duration = Duration::HOUR;
pub const CLIENT_MAX_FAILURES: u32 = 100;

/// The source address of requests that came without one (in-process callers): they share one
/// bucket rather than escape the limit.
const UNKNOWN_ADDRESS: &str = "unknown";

/// At most `max` attempts counted against `subject` within `window`.
#[derive(Debug, Clone)]
pub struct Limit {
    pub subject: String,
    pub max: u32,
    pub window: Duration,
}

impl Limit {
    /// One account's logins (and its password checks when it changes its password).
    pub fn login(auth: &AuthConfig, login: &str) -> Self {
        Self { subject: format!("login:{login}"), max: auth.login_max_failures, window: login_window(auth) }
    }

    /// One source address's failures, across accounts and clients (password spraying).
    pub fn address(auth: &AuthConfig, source_ip: Option<&str>) -> Self {
        Self {
            subject: format!("addr:{}", source_ip.unwrap_or(UNKNOWN_ADDRESS)),
            max: auth.address_max_failures,
            window: login_window(auth),
        }
    }

    /// One client id's wrong secrets.
    pub fn client(client_id: &str) -> Self {
        Self { subject: format!("client:{client_id}"), max: CLIENT_MAX_FAILURES, window: CLIENT_WINDOW }
    }
}

fn login_window(auth: &AuthConfig) -> Duration {
    Duration::try_from(auth.login_window).unwrap_or(Duration::MAX)
}

/// How long attempts are kept: the longest window.
pub fn longest_window(auth: &AuthConfig) -> Duration {
    login_window(auth).max(CLIENT_WINDOW)
}

/// Whole seconds to wait, for a request refused by a throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    pub retry_after_secs: u64,
}

/// `Err` when any of `limits` has no room now; a read only.
pub async fn check(
    db: &PgPool,
    limits: &[Limit],
    now: OffsetDateTime,
) -> sqlx::Result<Result<(), Throttled>> {
    let subjects: Vec<String> = limits.iter().map(|l| l.subject.clone()).collect();
    let since: Vec<OffsetDateTime> = limits.iter().map(|l| now - l.window).collect();
    let windows = db::auth_attempts::in_windows(db, &subjects, &since).await?;
    let wait = limits.iter().zip(&windows).filter_map(|(l, w)| w.retry_after(l.max, l.window, now)).max();
    Ok(match wait {
        Some(retry_after_secs) => Err(Throttled { retry_after_secs }),
        None => Ok(()),
    })
}

/// Attempts counted at one moment under some limits: a request that fails leaves them counted.
#[must_use = "a successful attempt gives its reservation back"]
pub struct Reservation {
    at: OffsetDateTime,
    subjects: Vec<String>,
}

/// Counts one attempt under every limit, or under none: refused (`Err`) when any has no room,
/// with the time until it has. A full window is seen by a read, so a flood of refused requests
/// writes nothing; the reservations themselves are atomic (see the module's comment).
pub async fn reserve(
    db: &PgPool,
    limits: &[Limit],
    now: OffsetDateTime,
) -> sqlx::Result<Result<Reservation, Throttled>> {
    if let Err(t) = check(db, limits, now).await? {
        return Ok(Err(t));
    }
    let mut taken = Reservation { at: now, subjects: vec![] };
    for l in limits {
        if !db::auth_attempts::reserve(db, &l.subject, now, now - l.window, l.max).await? {
            // Lost a race for the last places: the window filled since the read.
            taken.give_back(db, &[]).await?;
            let full = db::auth_attempts::in_windows(db, std::slice::from_ref(&l.subject), &[now - l.window])
                .await?;
            let retry_after_secs = full.first().map_or(1, |w| w.until_room(l.window, now));
            return Ok(Err(Throttled { retry_after_secs }));
        }
        taken.subjects.push(l.subject.clone());
    }
    Ok(Ok(taken))
}

impl Reservation {
    /// The attempt succeeded: it no longer counts, and every earlier attempt of `forget`'s
    /// subjects is forgotten too (a login's own failures end with its success; an address's do not).
    pub async fn give_back(self, db: &PgPool, forget: &[&Limit]) -> sqlx::Result<()> {
        for subject in &self.subjects {
            if forget.iter().any(|l| &l.subject == subject) {
                db::auth_attempts::clear(db, subject).await?;
            } else {
                db::auth_attempts::release(db, subject, self.at).await?;
            }
        }
        Ok(())
    }
}
