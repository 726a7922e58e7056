//! OAuth2 client credentials: created by a signed-in user in one organization, acting for that
//! user there, limited to their scopes and to the user's current role.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::db::credentials::CredentialRow;
use crate::domain::{OrgId, UserId};
use crate::error::{ApiResult, Problem};
use crate::http::extract::{ActiveUser, AppJson, AppPath};
use crate::http::respond::Created;
use crate::service::credentials::{self, CreateCredential, Issued};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_credentials, create_credential))
        .routes(routes!(revoke_credential))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialView {
    pub client_id: String,
    pub description: String,
    pub scopes: Vec<String>,
    #[schema(value_type = Uuid)]
    pub created_by: UserId,
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

impl From<Issued> for CreatedCredential {
    fn from(c: Issued) -> Self {
        Self {
            client_id: c.client_id,
            client_secret: c.client_secret,
            description: c.description,
            scopes: c.scopes,
            created_at: c.created_at,
            expires_at: c.expires_at,
        }
    }
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
        (status = 201, body = CreatedCredential, headers(("Location" = String, description = "The credential; a DELETE of it revokes it"))),
        (status = 403, description = "A bearer token, a cross-site request, or a scope beyond the caller's role", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid description, expiry or scopes", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_credential(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath(org_id): AppPath<OrgId>,
    AppJson(body): AppJson<CreateCredential>,
) -> ApiResult<Created<CreatedCredential>> {
    let ctx = user.in_org(org_id)?;
    user.require_session()?;
    let issued = credentials::create(&state, &meta, &ctx, &user.principal.email, &body).await?;
    let location = format!("/api/v1/orgs/{org_id}/credentials/{}", issued.client_id);
    Ok(Created::new(issued.into(), location))
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
    AppPath(org_id): AppPath<OrgId>,
) -> ApiResult<AppJson<CredentialList>> {
    let ctx = user.in_org(org_id)?;
    user.require_session()?;
    let rows = credentials::list(&state, &ctx).await?;
    Ok(AppJson(CredentialList { items: rows.into_iter().map(Into::into).collect() }))
}

/// Revokes a credential and every token it issued, effective at the next request. One's own, or
/// any for owners and admins; with a bearer token, only the credential that issued it.
#[utoipa::path(
    delete, path = "/api/v1/orgs/{org_id}/credentials/{client_id}", tag = "credentials",
    security(("session" = []), ("bearer" = [])),
    params(("org_id" = Uuid, Path), ("client_id" = String, Path)),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "A bearer token of another credential, or a cross-site request", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such credential for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn revoke_credential(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, client_id)): AppPath<(OrgId, String)>,
) -> ApiResult<StatusCode> {
    let ctx = user.in_org(org_id)?;
    let by = user.method.credential_id();
    credentials::revoke(&state, &meta, &ctx, &user.principal.email, &client_id, by).await?;
    Ok(StatusCode::NO_CONTENT)
}
