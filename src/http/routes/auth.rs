use axum::extract::State;
use axum::http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::audit::{Event, Outcome, RequestMeta};
use crate::auth::{PRINCIPAL_KEY, USER_ID_KEY};
use crate::db;
use crate::domain::{AuthMethod, Principal, Scope, password};
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{AppJson, Authenticated};
use crate::http::password::check_password;
use crate::http::views::UserView;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(login)).routes(routes!(logout)).routes(routes!(check))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The user's e-mail address.
    #[schema(example = "owner@example.com", pattern = r"^\s*\S[^\x00]{0,253}$")]
    pub login: String,
    #[schema(value_type = String, format = Password, max_length = 1024)]
    pub password: SecretString,
}

/// Signs in with a password and sets the session cookie (HttpOnly, Secure, SameSite=Lax).
///
/// The session id is new at every login. A wrong password and an unknown login get the same
/// answer in the same time. After 10 failures for one login within 15 minutes, attempts for it
/// are refused with 429 until the window has passed, the right password included; requests
/// arriving at once count as they arrive, before any is checked. So are attempts from an
/// address that failed `BERTH_AUTH_MAX_FAILURES_PER_ADDRESS` times (100) in those 15 minutes,
/// whatever the accounts.
#[utoipa::path(
    post, path = "/api/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in; `Set-Cookie` carries the session", body = UserView),
        (status = 401, description = "Wrong login or password", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Cross-site request", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failures for this login or from this address; see `Retry-After`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn login(
    State(state): State<AppState>,
    meta: RequestMeta,
    session: Session,
    AppJson(body): AppJson<LoginRequest>,
) -> ApiResult<AppJson<UserView>> {
    let login = body.login.trim().to_lowercase();
    if login.is_empty() || login.len() > 254 {
        return Err(ApiError::field("login", "must be an e-mail address of 1 to 254 characters"));
    }
    if body.password.expose_secret().chars().count() > password::MAX_LEN {
        return Err(ApiError::field("password", "is longer than any password can be"));
    }
    let user = db::users::find_for_login(&state.db, &login).await?;
    let (principal, stored) = match user {
        Some(u) => (Some(u.principal), Some(u.password_hash)),
        None => (None, None),
    };
    let verdict = check_password(&state, &meta, &login, body.password, stored).await;
    let outcome = match &verdict {
        Ok(true) => Outcome::Success,
        Ok(false) => Outcome::Failure,
        Err(_) => Outcome::Denied,
    };
    audit_login(&state, &meta, &login, principal.as_ref(), outcome).await?;
    if !verdict? {
        return Err(ApiError::InvalidCredentials);
    }
    let principal = principal.ok_or_else(|| anyhow::anyhow!("verified a password without a user"))?;
    let user_id = principal.user_id;

    // A new id at every login: a session id planted before login is worth nothing after it.
    session.cycle_id().await.map_err(|e| anyhow::anyhow!("cycling session: {e}"))?;
    session.clear().await;
    session.insert(USER_ID_KEY, user_id).await.map_err(|e| anyhow::anyhow!("{e}"))?;

    Ok(AppJson(principal.into()))
}

/// Records a login attempt in the chain of every organization of the user it names (the system
/// chain for a login that names nobody).
async fn audit_login(
    state: &AppState,
    meta: &RequestMeta,
    login: &str,
    user: Option<&crate::domain::Principal>,
    outcome: Outcome,
) -> ApiResult<()> {
    let orgs: Vec<uuid::Uuid> = user.map(|u| u.orgs.iter().map(|o| o.id).collect()).unwrap_or_default();
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

/// Signs out: the session ends server-side, for every instance of Berth, at once.
#[utoipa::path(
    post, path = "/api/auth/logout", tag = "auth",
    security((), ("session" = [])),
    responses(
        (status = 204, description = "Signed out (also when there was no session)"),
        (status = 403, description = "Cross-site request", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn logout(State(state): State<AppState>, meta: RequestMeta, session: Session) -> ApiResult<StatusCode> {
    let principal =
        session.get::<Principal>(PRINCIPAL_KEY).await.map_err(|e| anyhow::anyhow!("loading session: {e}"))?;
    session.flush().await.map_err(|e| anyhow::anyhow!("ending session: {e}"))?;
    if let Some(p) = principal {
        for org in &p.orgs {
            Event::new("logout", &meta)
                .org(org.id)
                .by(&p, &AuthMethod::Session)
                .record(&state.db, state.clock.now())
                .await?;
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckResponse {
    #[serde(flatten)]
    pub user: UserView,
    /// How this request was authenticated: `session` or `bearer`.
    pub auth_method: String,
    /// For a bearer token: its scopes (its organization is the only one in `organizations`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<Scope>>,
}

/// Who the request is authenticated as.
#[utoipa::path(
    get, path = "/api/auth/check", tag = "auth",
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 200, body = CheckResponse),
        (status = 400, description = "A token in the query string", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Not authenticated, or an invalid token (`WWW-Authenticate: Bearer error=\"invalid_token\"`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn check(user: Authenticated) -> AppJson<CheckResponse> {
    let (auth_method, scopes) = match user.method {
        AuthMethod::Session => ("session", None),
        AuthMethod::Bearer { scopes, .. } => ("bearer", Some(scopes)),
    };
    AppJson(CheckResponse { user: user.principal.into(), auth_method: auth_method.into(), scopes })
}
