use axum::extract::State;
use axum::http::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::auth::USER_ID_KEY;
use crate::db;
use crate::domain::{AuthMethod, password};
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{AppJson, Authenticated};
use crate::http::routes::users::UserView;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(logout))
        .routes(routes!(check))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// The user's e-mail address.
    #[schema(example = "owner@example.com")]
    pub login: String,
    #[schema(value_type = String, format = Password)]
    pub password: SecretString,
}

/// Signs in with a password and sets the session cookie (HttpOnly, Secure, SameSite=Lax).
///
/// The session id is new at every login. A wrong password and an unknown login get the same
/// answer in the same time. After 10 failures for one login within 15 minutes, attempts for it
/// are refused with 429 until the window has passed, the right password included.
#[utoipa::path(
    post, path = "/api/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in; `Set-Cookie` carries the session", body = UserView),
        (status = 401, description = "Wrong login or password", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Cross-site request", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Malformed request", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failures for this login; see `Retry-After`", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn login(
    State(state): State<AppState>,
    session: Session,
    AppJson(body): AppJson<LoginRequest>,
) -> ApiResult<AppJson<UserView>> {
    let login = body.login.trim().to_lowercase();
    if login.is_empty() || login.len() > 254 {
        return Err(ApiError::field(
            "login",
            "must be an e-mail address of 1 to 254 characters",
        ));
    }
    if body.password.expose_secret().chars().count() > password::MAX_LEN {
        return Err(ApiError::field(
            "password",
            "is longer than any password can be",
        ));
    }
    let user = db::users::find_for_login(&state.db, &login).await?;
    let (user_id, stored) = match user {
        Some(u) => (Some(u.id), Some(u.password_hash)),
        None => (None, None),
    };
    if !check_password(&state, &login, body.password, stored).await? {
        return Err(ApiError::InvalidCredentials);
    }
    let user_id = user_id.ok_or_else(|| anyhow::anyhow!("verified a password without a user"))?;

    // A new id at every login: a session id planted before login is worth nothing after it.
    session
        .cycle_id()
        .await
        .map_err(|e| anyhow::anyhow!("cycling session: {e}"))?;
    session.clear().await;
    session
        .insert(USER_ID_KEY, user_id)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    let principal = db::users::principal(&state.db, user_id)
        .await?
        .ok_or(ApiError::InvalidCredentials)?;
    Ok(AppJson(principal.into()))
}

/// Checks a password against the stored hash (or a dummy when `stored` is `None`), under the
/// per-login throttle: `Ok(false)` is a recorded failure, 429 a refusal without checking.
pub async fn check_password(
    state: &AppState,
    login: &str,
    password: SecretString,
    stored: Option<String>,
) -> ApiResult<bool> {
    let now = state.clock.now();
    let window = time::Duration::try_from(state.auth.login_window)
        .map_err(|e| anyhow::anyhow!("login window: {e}"))?;
    let recent = db::login_failures::in_window(&state.db, login, now - window).await?;
    if recent.failures >= i64::from(state.auth.login_max_failures) {
        let frees_at = recent.oldest.unwrap_or(now) + window;
        let retry_after_secs = (frees_at - now).whole_seconds().max(1) as u64;
        return Err(ApiError::TooManyRequests { retry_after_secs });
    }
    if state.hasher.verify(password, stored).await? {
        db::login_failures::clear(&state.db, login).await?;
        Ok(true)
    } else {
        db::login_failures::record(&state.db, login, now).await?;
        Ok(false)
    }
}

/// Signs out: the session ends server-side, for every instance of Berth, at once.
#[utoipa::path(
    post, path = "/api/auth/logout", tag = "auth",
    security(("session" = [])),
    responses(
        (status = 204, description = "Signed out (also when there was no session)"),
        (status = 403, description = "Cross-site request", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn logout(session: Session) -> ApiResult<StatusCode> {
    session
        .flush()
        .await
        .map_err(|e| anyhow::anyhow!("ending session: {e}"))?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckResponse {
    #[serde(flatten)]
    pub user: UserView,
    /// How this request was authenticated: `session`.
    pub auth_method: String,
}

/// Who the request is authenticated as.
#[utoipa::path(
    get, path = "/api/auth/check", tag = "auth",
    security(("session" = [])),
    responses(
        (status = 200, body = CheckResponse),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn check(user: Authenticated) -> AppJson<CheckResponse> {
    let auth_method = match user.method {
        AuthMethod::Session => "session",
    };
    AppJson(CheckResponse {
        user: user.principal.into(),
        auth_method: auth_method.into(),
    })
}
