//! OAuth2 client credentials: made by a signed-in member for one organization, acting for them
//! there within their role; and the rules of the token endpoint that turns a credential into
//! tokens (authenticating the client under its throttles, the scopes a grant may have, issuing
//! and rotating token pairs, revoking). The wire format (RFC 6749 forms and error bodies) is the
//! HTTP layer's.

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use time::{Duration, OffsetDateTime};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::{Event, Outcome, RequestMeta};
use crate::auth::throttle::{self, Limit, Throttled};
use crate::auth::token::{self, TagKey};
use crate::db;
use crate::db::credentials::{ClientAuth, CredentialRow, NewCredential};
use crate::db::tokens::{NewPair, Refresh};
use crate::domain::{CredentialId, Ctx, Error, OrgId, Result, Role, Scope, UserId};

pub const ACCESS_TTL: Duration = Duration::HOUR;
pub const REFRESH_TTL: Duration = Duration::days(30);

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCredential {
    /// What the credential is for (1 to 200 characters, not all blank, without control
    /// characters).
    #[schema(example = "CI pipeline", pattern = r"^\s*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]{0,199}$")]
    pub description: String,
    /// When it stops working: required, in the future, at most a year ahead (configurable).
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// What it may do; each must be allowed by the creator's role. See `GET /api/v1/scopes`.
    #[schema(min_items = 1)]
    pub scopes: Vec<Scope>,
}

/// A credential just made, with its secret, which is not kept.
#[derive(Debug)]
pub struct Issued {
    pub client_id: String,
    pub client_secret: String,
    pub description: String,
    pub scopes: Vec<String>,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// A credential's description, trimmed: 1 to 200 characters without control characters.
pub fn description(raw: &str) -> Result<&str> {
    let d = raw.trim();
    if d.is_empty() || d.chars().count() > 200 || d.chars().any(char::is_control) {
        return Err(Error::field("description", "must be 1 to 200 characters without control characters"));
    }
    Ok(d)
}

/// A new credential expires in the future, at most `max` ahead.
pub fn check_expiry(expires_at: OffsetDateTime, now: OffsetDateTime, max: std::time::Duration) -> Result<()> {
    let max = Duration::try_from(max).unwrap_or(Duration::MAX);
    if expires_at <= now {
        return Err(Error::field("expires_at", "must be in the future"));
    }
    // A maximum past the calendar's end (configured as "no limit") bounds nothing.
    if now.checked_add(max).is_some_and(|latest| expires_at > latest) {
        return Err(Error::field("expires_at", format!("must be at most {} days ahead", max.whole_days())));
    }
    Ok(())
}

/// The scopes a member of `role` may give a credential: at least one, each allowed by the role;
/// in the catalog's order, once each.
pub fn grantable(role: Role, requested: &[Scope]) -> Result<Vec<String>> {
    if requested.is_empty() {
        return Err(Error::field("scopes", "name at least one scope"));
    }
    if let Some(s) = requested.iter().find(|s| !role.allows(**s)) {
        return Err(Error::Forbidden {
            code: "insufficient_role",
            detail: format!("the role {} cannot grant {}", role.as_str(), s.as_str()),
        });
    }
    let mut scopes: Vec<String> =
        Scope::ALL.iter().filter(|s| requested.contains(s)).map(|s| s.as_str().to_owned()).collect();
    scopes.dedup();
    Ok(scopes)
}

/// Makes a credential acting for the context's user in its organization.
pub async fn create(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    cmd: &CreateCredential,
) -> Result<Issued> {
    let description = description(&cmd.description)?;
    let now = state.clock.now();
    check_expiry(cmd.expires_at, now, state.auth.credential_max_lifetime)?;
    let scopes = grantable(ctx.role, &cmd.scopes)?;
    let client_id = state.token_tags.generate(token::CLIENT_ID);
    let secret = state.token_tags.generate(token::CLIENT_SECRET);
    let mut tx = state.db.begin().await?;
    db::credentials::insert(
        &mut *tx,
        ctx,
        NewCredential {
            id: CredentialId::new(),
            client_id: &client_id,
            secret_hash: &token::hash(&secret),
            description,
            scopes: &scopes,
            now,
            expires_at: cmd.expires_at,
        },
    )
    .await?;
    Event::new("credential.created", meta)
        .in_ctx(ctx, actor)
        .target(format!("credential:{client_id}"))
        .detail("scopes", &scopes)
        .detail("expires_at", cmd.expires_at.unix_timestamp())
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    Ok(Issued {
        client_id,
        client_secret: secret,
        description: description.to_owned(),
        scopes,
        created_at: now,
        expires_at: cmd.expires_at,
    })
}

/// Whose credentials the context sees and revokes: everyone's for owners and admins, else its own.
fn only_own(ctx: &Ctx) -> Option<UserId> {
    (ctx.role < Role::Admin).then_some(ctx.user_id)
}

pub async fn list(state: &AppState, ctx: &Ctx) -> Result<Vec<CredentialRow>> {
    Ok(db::credentials::list(&state.db, ctx, only_own(ctx)).await?)
}

/// Revokes a credential the context may see, and every token it issued. A request made with a
/// credential's token (`by`) may revoke that credential alone: giving up one's own access needs
/// no session, as `berthctl logout` does it.
pub async fn revoke(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    client_id: &str,
    by: Option<CredentialId>,
) -> Result<()> {
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let id = db::credentials::revoke(&mut tx, ctx, client_id, only_own(ctx), now)
        .await?
        .ok_or(Error::NotFound("credential"))?;
    if by.is_some_and(|by| Uuid::from(by) != id) {
        // Dropping the transaction undoes the revocation.
        return Err(Error::Forbidden {
            code: "session_required",
            detail: "revoking another credential needs a signed-in user; a credential may revoke only itself"
                .into(),
        });
    }
    Event::new("credential.revoked", meta)
        .in_ctx(ctx, actor)
        .target(format!("credential:{client_id}"))
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Why the token endpoint refuses, in the terms of RFC 6749 §5.2; the HTTP layer writes it.
#[derive(Debug)]
pub enum GrantError {
    InvalidClient(String),
    UnauthorizedClient(String),
    InvalidGrant(String),
    InvalidScope(String),
    /// The client's id or the request's address failed too often.
    Throttled(Throttled),
    /// The control database failed.
    Database(sqlx::Error),
}

impl From<sqlx::Error> for GrantError {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(e)
    }
}

pub type GrantResult<T> = std::result::Result<T, GrantError>;

/// Why a credential no longer authenticates: revoked, or expired.
pub fn dead(
    revoked_at: Option<OffsetDateTime>,
    expires_at: OffsetDateTime,
    now: OffsetDateTime,
) -> Option<&'static str> {
    if revoked_at.is_some() {
        Some("the credential is revoked")
    } else if expires_at <= now {
        Some("the credential has expired")
    } else {
        None
    }
}

/// Authenticates a client under the throttles of its client id and of the request's source
/// address. The secret is checked first (a SHA-256); a wrong one is then counted, and refused as
/// `invalid_client` only if the windows had room for it, throttled otherwise, however many
/// arrive at once.
pub async fn authenticate(
    state: &AppState,
    meta: &RequestMeta,
    client_id: &str,
    secret: &str,
) -> GrantResult<ClientAuth> {
    let now = state.clock.now();
    let refuse = |reason: &str, org: Option<OrgId>, credential: Option<CredentialId>| {
        let mut ev = Event::new("token.refused", meta)
            .claimed_actor(client_id)
            .outcome(Outcome::Denied)
            .detail("reason", reason);
        if let Some(org) = org {
            ev = ev.org(org);
        }
        if let Some(c) = credential {
            ev = ev.credential(c);
        }
        ev
    };
    let unknown = || GrantError::InvalidClient("unknown client or wrong secret".into());
    // A made-up client id is refused before the database. It is not counted either: with no
    // credential behind it, there is no secret to guess.
    if !state.token_tags.may_be_genuine(token::CLIENT_ID, client_id) {
        refuse("made-up client id", None, None).tally(&state.refusals, now);
        return Err(unknown());
    }
    let limits = [Limit::client(client_id), Limit::address(&state.auth, meta.source_ip.as_deref())];
    if let Err(t) = throttle::check(&state.db, &limits, now).await? {
        refuse("throttled", None, None).tally(&state.refusals, now);
        return Err(GrantError::Throttled(t));
    }
    let found = db::credentials::for_client_auth(&state.db, client_id).await?;
    // Hash the presented secret even for an unknown client, so both take the same time.
    let stored = found.as_ref().map_or(&[0u8; 32][..], |c| &c.secret_hash[..]);
    let secret_ok = token::matches(secret, stored) && found.is_some();
    let (known_org, known_credential) = found.as_ref().map(|c| (c.org_id, c.id)).unzip();
    let Some(client) = found.filter(|_| secret_ok) else {
        // The failure stays counted: the reservation is not given back.
        if let Err(t) = throttle::reserve(&state.db, &limits, now).await?.map(drop) {
            refuse("throttled", known_org, known_credential).tally(&state.refusals, now);
            return Err(GrantError::Throttled(t));
        }
        refuse("wrong client secret or unknown client", known_org, known_credential)
            .tally(&state.refusals, now);
        return Err(unknown());
    };
    if let Some(reason) = dead(client.revoked_at, client.expires_at, now) {
        refuse(reason, Some(client.org_id), Some(client.id)).record(&state.db, now).await?;
        return Err(GrantError::InvalidClient(reason.into()));
    }
    if client.creator_role.is_none() {
        refuse("the credential's creator left the organization", Some(client.org_id), Some(client.id))
            .record(&state.db, now)
            .await?;
        return Err(GrantError::UnauthorizedClient(
            "the credential's creator is no longer a member of its organization".into(),
        ));
    }
    Ok(client)
}

/// The requested scopes (space-separated), which must all be in `allowed`; none requested: all
/// of `allowed`.
pub fn granted_scopes(requested: Option<&str>, allowed: &[String]) -> GrantResult<Vec<String>> {
    let Some(requested) = requested else {
        return Ok(allowed.to_vec());
    };
    let mut out: Vec<String> = vec![];
    for s in requested.split(' ').filter(|s| !s.is_empty()) {
        if Scope::parse(s).is_none() {
            return Err(GrantError::InvalidScope(format!("unknown scope {s}")));
        }
        if !allowed.iter().any(|a| a == s) {
            return Err(GrantError::InvalidScope(format!("scope {s} is not granted to this client")));
        }
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    }
    if out.is_empty() {
        return Err(GrantError::InvalidScope("scope is empty".into()));
    }
    Ok(out)
}

/// What a client asks the token endpoint for.
pub enum TokenGrant<'a> {
    /// A new grant.
    ClientCredentials,
    /// The next pair of the grant this refresh token belongs to.
    Refresh(&'a str),
}

/// An access token and a refresh token, neither outliving the credential.
#[derive(Debug)]
pub struct Tokens {
    pub access_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub refresh_token: String,
    pub scopes: Vec<String>,
}

/// The grant a token pair belongs to.
enum Family {
    /// A new grant (`client_credentials`): its pair is committed without waiting for the WAL
    /// flush, see [`db::tokens::insert_pair`].
    New,
    /// The next pair of a grant, in the transaction that used its refresh token: durable.
    Rotated(Uuid),
}

/// Issues an access token and a refresh token of `family`, neither outliving the credential.
async fn issue(
    conn: &mut PgConnection,
    tags: &TagKey,
    client: &ClientAuth,
    family: Family,
    scopes: Vec<String>,
    now: OffsetDateTime,
) -> GrantResult<Tokens> {
    let (family_id, durable) = match family {
        Family::New => (Uuid::now_v7(), false),
        Family::Rotated(family_id) => (family_id, true),
    };
    let access = tags.generate(token::ACCESS);
    let refresh = tags.generate(token::REFRESH);
    let access_expires = (now + ACCESS_TTL).min(client.expires_at);
    let refresh_expires = (now + REFRESH_TTL).min(client.expires_at);
    db::tokens::insert_pair(
        conn,
        NewPair {
            access_hash: &token::hash(&access),
            refresh_hash: &token::hash(&refresh),
            credential_id: client.id,
            family_id,
            scopes: &scopes,
            now,
            access_expires_at: access_expires,
            refresh_expires_at: refresh_expires,
        },
        durable,
    )
    .await?;
    Ok(Tokens {
        access_token: access,
        expires_in: (access_expires - now).whole_seconds(),
        refresh_token: refresh,
        scopes,
    })
}

/// Tokens for an authenticated client: a new grant, or the next pair of a grant whose refresh
/// token is presented (single-use: presenting a used one revokes the whole grant).
pub async fn grant(
    state: &AppState,
    meta: &RequestMeta,
    client: &ClientAuth,
    grant: TokenGrant<'_>,
    scope: Option<&str>,
) -> GrantResult<Tokens> {
    let now = state.clock.now();
    let presented = match grant {
        TokenGrant::ClientCredentials => {
            let scopes = granted_scopes(scope, &client.scopes)?;
            let mut conn = state.db.acquire().await?;
            return issue(&mut conn, &state.token_tags, client, Family::New, scopes, now).await;
        }
        TokenGrant::Refresh(presented) => presented,
    };
    // Counted, not appended, like every refusal a client can repeat at will.
    let refuse = || {
        Event::new("token.refused", meta)
            .org(client.org_id)
            .credential(client.id)
            .outcome(Outcome::Denied)
            .detail("reason", "invalid, expired or revoked refresh token")
            .tally(&state.refusals, now);
        GrantError::InvalidGrant("the refresh token is invalid, expired or revoked".into())
    };
    // A made-up one is refused before the database.
    if !state.token_tags.may_be_genuine(token::REFRESH, presented) {
        return Err(refuse());
    }
    let mut tx = state.db.begin().await?;
    match db::tokens::use_refresh(&mut tx, &token::hash(presented), client.id, now).await? {
        Refresh::Rotated { family_id, scopes } => {
            let scopes = granted_scopes(scope, &scopes)?;
            let r =
                issue(&mut tx, &state.token_tags, client, Family::Rotated(family_id), scopes, now).await?;
            tx.commit().await?;
            Ok(r)
        }
        Refresh::Reused { family_id } => {
            let revoked = db::tokens::revoke_family(&mut *tx, family_id, now).await?;
            Event::new("token.family_revoked", meta)
                .org(client.org_id)
                .credential(client.id)
                .actor_user(client.created_by)
                .outcome(Outcome::Denied)
                .detail("reason", "a used refresh token was presented again")
                .detail("tokens_revoked", revoked)
                .record_in(&mut tx, now)
                .await?;
            tx.commit().await?;
            Err(GrantError::InvalidGrant("the refresh token was already used; the grant is revoked".into()))
        }
        Refresh::Invalid => Err(refuse()),
    }
}

/// Revokes a token of the client (RFC 7009): an access token, or a refresh token with its whole
/// grant. A token that is unknown or another client's is left alone, and not told apart.
pub async fn revoke_token(
    state: &AppState,
    meta: &RequestMeta,
    client: &ClientAuth,
    presented: &str,
) -> GrantResult<()> {
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    if db::tokens::revoke_token(&mut tx, &token::hash(presented), client.id, now).await? {
        Event::new("token.revoked", meta)
            .org(client.org_id)
            .credential(client.id)
            .actor_user(client.created_by)
            .record_in(&mut tx, now)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn descriptions_are_trimmed_and_bounded() {
        assert_eq!(description("  CI ").unwrap(), "CI");
        assert!(description(" \t ").is_err());
        assert!(description(&"x".repeat(201)).is_err());
        assert!(description(&"x".repeat(200)).is_ok());
        assert!(description("a\nb").is_err());
    }

    #[test]
    fn a_new_credential_expires_in_the_future_within_the_maximum() {
        let now = datetime!(2026-12-01 12:00 UTC);
        let year = std::time::Duration::from_secs(365 * 86_400);
        assert!(check_expiry(now, now, year).is_err(), "now is not the future");
        assert!(check_expiry(now - Duration::SECOND, now, year).is_err());
        assert!(check_expiry(now + Duration::days(365), now, year).is_ok());
        let Err(Error::Invalid { errors, .. }) = check_expiry(now + Duration::days(366), now, year) else {
            panic!("accepted")
        };
        assert_eq!(errors[0].message, "must be at most 365 days ahead");
        assert!(check_expiry(now + Duration::days(10_000), now, std::time::Duration::MAX).is_ok());
    }

    #[test]
    fn a_credential_is_dead_once_revoked_or_expired() {
        let now = datetime!(2026-12-01 12:00 UTC);
        assert_eq!(dead(None, now + Duration::SECOND, now), None);
        assert_eq!(dead(None, now, now), Some("the credential has expired"));
        assert_eq!(dead(Some(now), now + Duration::HOUR, now), Some("the credential is revoked"));
    }

    #[test]
    fn granted_scopes_are_a_subset_once_each() {
        let allowed = vec!["stores:read".to_owned(), "stores:write".to_owned()];
        assert_eq!(granted_scopes(None, &allowed).unwrap(), allowed);
        assert_eq!(granted_scopes(Some("stores:read  stores:read"), &allowed).unwrap(), ["stores:read"]);
        assert!(matches!(granted_scopes(Some("backups:read"), &allowed), Err(GrantError::InvalidScope(_))));
        assert!(matches!(granted_scopes(Some("nonsense"), &allowed), Err(GrantError::InvalidScope(_))));
        assert!(matches!(granted_scopes(Some("  "), &allowed), Err(GrantError::InvalidScope(_))));
    }

    #[test]
    fn a_role_grants_only_what_it_holds_in_catalog_order() {
        let scopes =
            grantable(Role::Owner, &[Scope::StoresWrite, Scope::StoresRead, Scope::StoresRead]).unwrap();
        assert_eq!(scopes, [Scope::StoresRead.as_str(), Scope::StoresWrite.as_str()]);
        assert!(matches!(grantable(Role::Owner, &[]), Err(Error::Invalid { .. })));
        let beyond = Scope::ALL.iter().copied().find(|s| !Role::Viewer.allows(*s)).unwrap();
        assert!(matches!(
            grantable(Role::Viewer, &[beyond]),
            Err(Error::Forbidden { code: "insufficient_role", .. })
        ));
    }
}
