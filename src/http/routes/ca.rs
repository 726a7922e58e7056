//! The organization's certificate authority, to verify its stores' TLS certificates.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::domain::{OrgId, Scope};
use crate::error::ApiResult;
use crate::http::extract::{ActiveUser, AppPath};
use crate::service::ca;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(download_ca))
}

/// The CA certificate (PEM) that signs the organization's node certificates. Connect with
/// `sslmode=verify-full sslrootcert=ca.pem`.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/ca.pem", tag = "security",
    security(("session" = []), ("bearer" = ["stores:read"])),
    params(("org_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The CA certificate", content_type = "application/x-pem-file", body = String),
    )
)]
async fn download_ca(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath(org_id): AppPath<OrgId>,
) -> ApiResult<Response> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresRead)?;
    let pem = ca::certificate(&state, &ctx).await?;
    let mut res = pem.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-pem-file"));
    let disposition = format!("attachment; filename=\"berth-ca-{org_id}.pem\"");
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).expect("ascii"));
    Ok(res)
}
