use axum::extract::{FromRef, FromRequestParts, MatchedPath};
use axum::http::header;
use axum::http::request::Parts;
use time::Duration;
use tower_sessions::Session;

use crate::app::AppState;
use crate::audit::{Event, Outcome, RequestMeta};
use crate::auth::{PRINCIPAL_KEY, token};
use crate::db;
use crate::domain::{AuthMethod, Ctx, Principal, Scope};
use crate::error::ApiError;

/// Any authenticated principal, including one who must still change their password: by session
/// cookie, or by `Authorization: Bearer` (the scheme name in any case).
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub principal: Principal,
    pub method: AuthMethod,
}

impl<S> FromRequestParts<S> for Authenticated
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.query().is_some_and(|q| q.split('&').any(|kv| kv.starts_with("access_token="))) {
            return Err(ApiError::BadRequest(
                "access tokens are not accepted in the query string; send Authorization: Bearer".into(),
            ));
        }
        if let Some(value) = parts.headers.get(header::AUTHORIZATION) {
            let state = AppState::from_ref(state);
            let value = value.to_str().map_err(|_| ApiError::InvalidToken)?.to_owned();
            return match value.split_once(' ') {
                Some((scheme, tok)) if scheme.eq_ignore_ascii_case("bearer") => {
                    bearer(&state, tok.trim(), parts).await
                }
                _ => Err(ApiError::Unauthenticated),
            };
        }
        let session = parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("session layer missing"))?;
        if let Some(id) = session.id() {
            let state = AppState::from_ref(state);
            if let Some(principal) = state.sessions.principal(&id).await? {
                return Ok(Self { principal, method: AuthMethod::Session });
            }
        }
        // No live session: tower-sessions looks too, finds nothing, and removes the cookie.
        let principal = session
            .get::<Principal>(PRINCIPAL_KEY)
            .await
            .map_err(|e| anyhow::anyhow!("loading session: {e}"))?
            .ok_or(ApiError::Unauthenticated)?;
        Ok(Self { principal, method: AuthMethod::Session })
    }
}

async fn bearer(state: &AppState, tok: &str, parts: &mut Parts) -> Result<Authenticated, ApiError> {
    let now = state.clock.now();
    // A made-up token is refused before the database: a flood of them takes no connection.
    let found = if state.token_tags.may_be_genuine(token::ACCESS, tok) {
        db::tokens::bearer_principal(&state.db, &token::hash(tok), now).await?
    } else {
        None
    };
    let Some(row) = found else {
        let meta = RequestMeta::from_request_parts(parts, &()).await.unwrap_or_default();
        // Counted, not appended: a flood of made-up tokens must not queue on the audit chain.
        let route = parts.extensions.get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str);
        Event::new("token.refused", &meta)
            .outcome(Outcome::Denied)
            .detail("reason", "invalid, expired or revoked access token")
            .detail("route", route)
            .tally(&state.refusals, now);
        return Err(ApiError::InvalidToken);
    };
    // `last_used_at` is written at most once a minute, to keep most requests free of writes.
    if row.last_used_at.is_none_or(|at| at < now - Duration::MINUTE) {
        db::tokens::touch_credential(&state.db, row.credential_id, now, now - Duration::MINUTE).await?;
    }
    let scopes = row.scopes.iter().filter_map(|s| Scope::parse(s)).collect();
    Ok(Authenticated {
        principal: row.principal,
        method: AuthMethod::Bearer { credential_id: row.credential_id, scopes },
    })
}

/// An authenticated principal allowed to use the API: one whose initial password has been
/// replaced. Until then only `/api/auth/*` and `/api/v1/users/me*` answer.
#[derive(Debug, Clone)]
pub struct ActiveUser {
    pub principal: Principal,
    pub method: AuthMethod,
}

impl ActiveUser {
    pub fn in_org(&self, org_id: crate::domain::OrgId) -> Result<Ctx, ApiError> {
        Ok(self.principal.in_org(org_id, self.method.clone())?)
    }

    /// For what a credential must never do by itself, like minting more credentials.
    pub fn require_session(&self) -> Result<(), ApiError> {
        Ok(self.method.require_session("this")?)
    }
}

impl<S> FromRequestParts<S> for ActiveUser
where
    AppState: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Authenticated { principal, method } = Authenticated::from_request_parts(parts, state).await?;
        if principal.must_change_password {
            return Err(ApiError::forbidden_as(
                "password_change_required",
                "change the initial password first: POST /api/v1/users/me/password",
            ));
        }
        Ok(Self { principal, method })
    }
}
