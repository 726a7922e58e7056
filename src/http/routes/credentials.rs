//! OAuth2 client credentials: created by a signed-in user in one organization, acting for that
//! user there, limited to their scopes and to the user's current role.

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::{Event, RequestMeta};
use crate::auth::token;
use crate::db;
use crate::db::credentials::{CredentialRow, NewCredential};
use crate::domain::{Role, Scope};
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{ActiveUser, AppJson, AppPath};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_credentials, create_credential))
        .routes(routes!(revoke_credential))
}

#[derive(Debug, Deserialize, ToSchema)]
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

#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialView {
    pub client_id: String,
    pub description: String,
    pub scopes: Vec<String>,
    pub created_by: Uuid,
    pub created_by_email: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

impl From<CredentialRow> for CredentialView {
    fn from(r: CredentialRow) -> Self {
        Self {
            client_id: r.client_id,
            description: r.description,
            scopes: r.scopes,
            created_by: r.created_by,
            created_by_email: r.created_by_email,
            created_at: r.created_at,
            expires_at: r.expires_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedCredential {
    pub client_id: String,
    /// Shown this once; Berth keeps only its hash.
    pub client_secret: String,
    pub description: String,
    pub scopes: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialList {
    pub items: Vec<CredentialView>,
}

/// Creates a client credential acting for the caller in this organization. The secret is in this
/// response only.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/credentials", tag = "credentials",
    security(("session" = [])),
    params(("org_id" = Uuid, Path)),
    request_body = CreateCredential,
    responses(
        (status = 201, body = CreatedCredential),
        (status = 403, description = "A bearer token, a cross-site request, or a scope beyond the caller's role", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid description, expiry or scopes", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_credential(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath(org_id): AppPath<Uuid>,
    AppJson(body): AppJson<CreateCredential>,
) -> ApiResult<(StatusCode, AppJson<CreatedCredential>)> {
    let ctx = user.in_org(org_id)?;
    user.require_session()?;
    let description = body.description.trim();
    if description.is_empty()
        || description.chars().count() > 200
        || description.chars().any(char::is_control)
    {
        return Err(ApiError::field("description", "must be 1 to 200 characters without control characters"));
    }
    let now = state.clock.now();
    let max = time::Duration::try_from(state.auth.credential_max_lifetime).unwrap_or(time::Duration::MAX);
    if body.expires_at <= now {
        return Err(ApiError::field("expires_at", "must be in the future"));
    }
    if body.expires_at > now + max {
        return Err(ApiError::field(
            "expires_at",
            format!("must be at most {} days ahead", max.whole_days()),
        ));
    }
    if body.scopes.is_empty() {
        return Err(ApiError::field("scopes", "name at least one scope"));
    }
    if let Some(s) = body.scopes.iter().find(|s| !ctx.role.allows(**s)) {
        return Err(ApiError::forbidden_as(
            "insufficient_role",
            format!("the role {} cannot grant {}", ctx.role.as_str(), s.as_str()),
        ));
    }
    let mut scopes: Vec<String> =
        Scope::ALL.iter().filter(|s| body.scopes.contains(s)).map(|s| s.as_str().to_owned()).collect();
    scopes.dedup();

    let client_id = state.token_tags.generate(token::CLIENT_ID);
    let secret = state.token_tags.generate(token::CLIENT_SECRET);
    let mut tx = state.db.begin().await?;
    db::credentials::insert(
        &mut *tx,
        &ctx,
        NewCredential {
            id: Uuid::now_v7(),
            client_id: &client_id,
            secret_hash: &token::hash(&secret),
            description,
            scopes: &scopes,
            now,
            expires_at: body.expires_at,
        },
    )
    .await?;
    Event::new("credential.created", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("credential:{client_id}"))
        .detail("scopes", &scopes)
        .detail("expires_at", body.expires_at.unix_timestamp())
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        AppJson(CreatedCredential {
            client_id,
            client_secret: secret,
            description: description.to_owned(),
            scopes,
            created_at: now,
            expires_at: body.expires_at,
        }),
    ))
}

/// The organization's credentials: all of them for owners and admins, one's own otherwise.
/// Never a secret.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/credentials", tag = "credentials",
    security(("session" = [])),
    params(("org_id" = Uuid, Path)),
    responses(
        (status = 200, body = CredentialList),
        (status = 403, description = "A bearer token", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_credentials(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath(org_id): AppPath<Uuid>,
) -> ApiResult<AppJson<CredentialList>> {
    let ctx = user.in_org(org_id)?;
    user.require_session()?;
    let only_own = (ctx.role < Role::Admin).then_some(ctx.user_id);
    let rows = db::credentials::list(&state.db, &ctx, only_own).await?;
    Ok(AppJson(CredentialList { items: rows.into_iter().map(Into::into).collect() }))
}

/// Revokes a credential and every token it issued, effective at the next request. One's own, or
/// any for owners and admins.
#[utoipa::path(
    delete, path = "/api/v1/orgs/{org_id}/credentials/{client_id}", tag = "credentials",
    security(("session" = [])),
    params(("org_id" = Uuid, Path), ("client_id" = String, Path)),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "A bearer token, or a cross-site request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such credential for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn revoke_credential(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, client_id)): AppPath<(Uuid, String)>,
) -> ApiResult<StatusCode> {
    let ctx = user.in_org(org_id)?;
    user.require_session()?;
    let only_own = (ctx.role < Role::Admin).then_some(ctx.user_id);
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    db::credentials::revoke(&mut tx, &ctx, &client_id, only_own, now)
        .await?
        .ok_or(ApiError::not_found("credential"))?;
    Event::new("credential.revoked", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("credential:{client_id}"))
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
