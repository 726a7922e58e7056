use axum::extract::State;
use axum::http::StatusCode;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tower_sessions::Session;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::auth::{PRINCIPAL_KEY, USER_ID_KEY};
use crate::domain::{AuthMethod, Principal, Scope};
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{AppJson, Authenticated};
use crate::http::views::UserView;
use crate::service::auth;

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
    let principal =
        auth::login(&state, &meta, &body.login, body.password).await??.ok_or(ApiError::InvalidCredentials)?;
    let user_id = principal.user_id;

    // A new id at every login: a session id planted before login is worth nothing after it.
    session.cycle_id().await.map_err(|e| anyhow::anyhow!("cycling session: {e}"))?;
    session.clear().await;
    session.insert(USER_ID_KEY, user_id).await.map_err(|e| anyhow::anyhow!("{e}"))?;

    Ok(AppJson(principal.into()))
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
        auth::logged_out(&state, &meta, &p).await?;
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
