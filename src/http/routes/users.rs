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
use crate::error::{ApiResult, Problem};
use crate::http::extract::{AppJson, Authenticated};
use crate::http::views::UserView;
use crate::service::users;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(me)).routes(routes!(change_password))
}

/// The signed-in user.
#[utoipa::path(
    get, path = "/api/v1/users/me", tag = "users",
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 200, body = UserView),
    )
)]
async fn me(user: Authenticated) -> AppJson<UserView> {
    AppJson(user.principal.into())
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    #[schema(value_type = String, format = Password, max_length = 1024)]
    #[serde(serialize_with = "crate::domain::password::serialize_secret")]
    pub current_password: SecretString,
    /// 12 to 1024 characters.
    #[schema(value_type = String, format = Password, min_length = 12, max_length = 1024)]
    #[serde(serialize_with = "crate::domain::password::serialize_secret")]
    pub new_password: SecretString,
}

/// Changes the signed-in user's password. Every other session of the user ends; this one
/// continues under a new id. Every OAuth2 credential the user created, in any organization, is
/// revoked with its tokens, in the same transaction.
#[utoipa::path(
    post, path = "/api/v1/users/me/password", tag = "users",
    security(("session" = [])),
    request_body = ChangePassword,
    responses(
        (status = 204, description = "Changed; the user's other sessions have ended and their credentials are revoked"),
        (status = 403, description = "Wrong current password, a bearer token, or a cross-site request", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The new password breaks the rules", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong passwords", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn change_password(
    State(state): State<AppState>,
    meta: RequestMeta,
    session: Session,
    user: Authenticated,
    AppJson(body): AppJson<ChangePassword>,
) -> ApiResult<StatusCode> {
    user.method.require_session("changing a password")?;
    let change =
        users::check_change(&state, &meta, &user.principal, body.current_password, body.new_password)
            .await??;
    // The current session continues under a fresh id, which the session layer stores after this
    // handler returns; every session stored before, on any instance, ends here.
    session.cycle_id().await.map_err(|e| anyhow::anyhow!("cycling session: {e}"))?;
    users::change_password(&state, &meta, &user.principal, &user.method, change).await?;
    Ok(StatusCode::NO_CONTENT)
}
