use axum::extract::State;
use axum::http::StatusCode;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tower_sessions::Session;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::Event;
use crate::audit::RequestMeta;
use crate::db;
use crate::domain::{NewPassword, Principal, Role};
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{AppJson, Authenticated};
use crate::http::routes::auth::check_password;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(me)).routes(routes!(change_password))
}

/// A point in time as CCX writes it: seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Serialize, ToSchema)]
pub struct Timestamp {
    pub seconds: i64,
    pub nanos: i32,
}

impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Self {
        Self { seconds: t.unix_timestamp(), nanos: t.nanosecond() as i32 }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserOrg {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
}

/// The user, in the shape of CCX's login response, with their organizations and roles.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserView {
    pub id: Uuid,
    /// The login: the user's e-mail address.
    pub login: String,
    pub first_name: String,
    pub last_name: String,
    /// Where the account comes from (`local`: a password kept by Berth).
    pub origin: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// True until the initial password set by an administrator is replaced; until then only
    /// `/api/auth/*` and `/api/v1/users/me*` answer.
    pub must_change_password: bool,
    pub organizations: Vec<UserOrg>,
    pub additional_fields: serde_json::Map<String, serde_json::Value>,
}

impl From<Principal> for UserView {
    fn from(p: Principal) -> Self {
        Self {
            id: p.user_id,
            login: p.email,
            first_name: p.first_name,
            last_name: p.last_name,
            origin: p.origin,
            created_at: p.created_at.into(),
            updated_at: p.updated_at.into(),
            must_change_password: p.must_change_password,
            organizations: p
                .orgs
                .into_iter()
                .map(|o| UserOrg { id: o.id, name: o.name, role: o.role })
                .collect(),
            additional_fields: Default::default(),
        }
    }
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    #[schema(value_type = String, format = Password, max_length = 1024)]
    pub current_password: SecretString,
    /// 12 to 1024 characters.
    #[schema(value_type = String, format = Password, min_length = 12, max_length = 1024)]
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
    let new = NewPassword::parse(body.new_password).map_err(|m| ApiError::field("new_password", m))?;
    let user_id = user.principal.user_id;
    let stored = db::users::password_hash(&state.db, user_id).await?;
    if !check_password(&state, &meta, &user.principal.email, body.current_password, stored).await? {
        return Err(ApiError::forbidden_as(
            "wrong_current_password",
            "current_password is not the current password",
        ));
    }
    let hash = state.hasher.hash(new.into_secret()).await?;

    // The current session continues under a fresh id, which the session layer stores after this
    // handler returns; every session stored before, on any instance, ends here.
    session.cycle_id().await.map_err(|e| anyhow::anyhow!("cycling session: {e}"))?;
    let mut tx = state.db.begin().await?;
    db::users::set_password(&mut *tx, user_id, &hash, state.clock.now()).await?;
    let ended = db::sessions::delete_others(&mut *tx, user_id, None).await?;
    // Whoever learnt the old password may have made credentials with it: they end with it.
    let revoked = db::credentials::revoke_created_by(&mut tx, user_id, state.clock.now()).await?;
    for org in &user.principal.orgs {
        Event::new("user.password_changed", &meta)
            .org(org.id)
            .by(&user.principal, &user.method)
            .target(format!("user:{user_id}"))
            .detail("sessions_ended", ended)
            .detail("credentials_revoked", revoked.iter().filter(|o| **o == org.id).count())
            .record_in(&mut tx, state.clock.now())
            .await?;
    }
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
