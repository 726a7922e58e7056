//! The organization's quotas and what it uses of them, read-only: the operator sets them.

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::domain::{OrgId, Scope};
use crate::error::ApiResult;
use crate::http::extract::{ActiveUser, AppJson, AppPath};
use crate::quota::Quota;
use crate::service::quotas;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_quotas))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaView {
    pub quota: Quota,
    /// The most the organization may have: the operator's default or its own.
    pub limit: i64,
    /// What it has now: stores and VPCs not deleted, their nodes, bytes of succeeded backups.
    pub usage: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QuotaList {
    pub items: Vec<QuotaView>,
}

/// The organization's quotas with their usage. Creating past a quota answers 422
/// `quota_exceeded`; a new backup is refused while the backups kept are at or over theirs.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/quotas", tag = "orgs",
    security(("session" = []), ("bearer" = ["org:read"])),
    params(("org_id" = Uuid, Path)),
    responses(
        (status = 200, body = QuotaList),
    )
)]
async fn list_quotas(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath(org_id): AppPath<OrgId>,
) -> ApiResult<AppJson<QuotaList>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::OrgRead)?;
    let items = quotas::list(&state, &ctx)
        .await?
        .into_iter()
        .map(|q| QuotaView { quota: q.quota, limit: q.limit, usage: q.usage })
        .collect();
    Ok(AppJson(QuotaList { items }))
}
