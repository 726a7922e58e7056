//! Database parameters: the catalog, parameter groups, applying a group to a store, and the
//! values in force on its nodes.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::db::parameter_groups::GroupRow;
use crate::domain::{OrgId, Scope, StoreId};
use crate::error::{ApiResult, Problem};
use crate::http::extract::{ActiveUser, AppJson, AppPath, AppQuery, Authenticated, if_match};
use crate::http::respond::{Accepted, Created, etag};
use crate::http::views::JobView;
use crate::service::parameter_groups::{
    self as groups, ApplyGroup, CreateGroup, ParamDef, StoreParameters, UpdateGroup,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(parameter_catalog))
        .routes(routes!(list_groups, create_group))
        .routes(routes!(get_group, update_group, delete_group))
        .routes(routes!(apply_group))
        .routes(routes!(store_parameters))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CatalogQuery {
    /// `postgres`.
    #[param(pattern = "^postgres$")]
    vendor: String,
    /// A major version, e.g. `15`.
    version: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ParamList {
    pub items: Vec<ParamDef>,
}

/// The parameters a group may set for a vendor and version: type, allowed range or values,
/// default, and whether a change needs a restart.
#[utoipa::path(
    get, path = "/api/v1/content/parameters", tag = "parameters",
    security(("session" = []), ("bearer" = [])),
    params(CatalogQuery),
    responses(
        (status = 200, body = ParamList),
        (status = 422, description = "Unknown vendor or version", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn parameter_catalog(
    State(state): State<AppState>,
    _user: Authenticated,
    AppQuery(q): AppQuery<CatalogQuery>,
) -> ApiResult<AppJson<ParamList>> {
    let items = groups::catalog_of(&state, &q.vendor, q.version.as_deref())?;
    Ok(AppJson(ParamList { items }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupView {
    pub id: Uuid,
    pub name: String,
    pub vendor: String,
    pub version: String,
    pub description: String,
    /// Parameter → setting, in the unit PostgreSQL reports (see the catalog).
    pub parameters: BTreeMap<String, String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<GroupRow> for GroupView {
    fn from(g: GroupRow) -> Self {
        Self {
            id: g.id,
            name: g.name,
            vendor: g.vendor,
            version: g.version,
            description: g.description,
            parameters: serde_json::from_value(g.parameters).unwrap_or_default(),
            created_at: g.created_at,
            updated_at: g.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupList {
    pub items: Vec<GroupView>,
}

/// The organization's parameter groups.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/parameter-groups", tag = "parameters",
    security(("session" = []), ("bearer" = ["stores:read"])),
    params(("org_id" = Uuid, Path)),
    responses(
        (status = 200, body = GroupList),
    )
)]
async fn list_groups(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath(org_id): AppPath<OrgId>,
) -> ApiResult<AppJson<GroupList>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresRead)?;
    let rows = groups::list(&state, &ctx).await?;
    Ok(AppJson(GroupList { items: rows.into_iter().map(Into::into).collect() }))
}

/// Creates a parameter group; values are checked against the catalog, and against the bounds
/// of the largest instance size (a group no size can hold is refused).
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/parameter-groups", tag = "parameters",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path)),
    request_body = CreateGroup,
    responses(
        (status = 201, body = GroupView, headers(("Location" = String, description = "The new group"), ("ETag" = String))),
        (status = 409, description = "The name is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A value outside the catalog (the range is named), or one no instance size holds (the bound is named)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_group(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath(org_id): AppPath<OrgId>,
    AppJson(body): AppJson<CreateGroup>,
) -> ApiResult<Created<GroupView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let row = groups::create(&state, &meta, &ctx, &user.principal.email, body).await?;
    let location = format!("/api/v1/orgs/{org_id}/parameter-groups/{}", row.id);
    let revision = row.revision;
    Ok(Created::new(row.into(), location).revision(revision))
}

/// A group with its `ETag`.
fn with_etag(row: GroupRow) -> Response {
    ([(header::ETAG, etag(row.revision))], axum::Json(GroupView::from(row))).into_response()
}

/// One parameter group. `ETag` is its revision, for `If-Match` on a change.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/parameter-groups/{group_id}", tag = "parameters",
    security(("session" = []), ("bearer" = ["stores:read"])),
    params(("org_id" = Uuid, Path), ("group_id" = Uuid, Path)),
    responses(
        (status = 200, body = GroupView, headers(("ETag" = String))),
        (status = 404, description = "No such group for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_group(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath((org_id, group_id)): AppPath<(OrgId, Uuid)>,
) -> ApiResult<Response> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresRead)?;
    Ok(with_etag(groups::get(&state, &ctx, group_id).await?))
}

/// Replaces a group's parameters. Stores using it change when the group is applied again; the
/// new values must fit some instance size, and the size of every store using the group. With
/// `If-Match`, only if the group is still at that revision (412 if not), so that a change made
/// on what was read does not undo another made meanwhile.
#[utoipa::path(
    put, path = "/api/v1/orgs/{org_id}/parameter-groups/{group_id}", tag = "parameters",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("group_id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "The ETag of the group as read")),
    request_body = UpdateGroup,
    responses(
        (status = 200, body = GroupView, headers(("ETag" = String))),
        (status = 404, description = "No such group for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "The group changed since it was read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A value outside the catalog, or one no instance size or a store using the group cannot hold (the bound is named)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn update_group(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    headers: HeaderMap,
    AppPath((org_id, group_id)): AppPath<(OrgId, Uuid)>,
    AppJson(body): AppJson<UpdateGroup>,
) -> ApiResult<Response> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let want = if_match(&headers);
    Ok(with_etag(groups::update(&state, &meta, &ctx, &user.principal.email, group_id, want, &body).await?))
}

/// Deletes a group no store uses.
#[utoipa::path(
    delete, path = "/api/v1/orgs/{org_id}/parameter-groups/{group_id}", tag = "parameters",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("group_id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such group for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A store uses it", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_group(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, group_id)): AppPath<(OrgId, Uuid)>,
) -> ApiResult<StatusCode> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    groups::delete(&state, &meta, &ctx, &user.principal.email, group_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Applies a group to a store: a job sets the parameters on every node (replicas first),
/// reloading, or restarting a node where a parameter needs it; its log says which. The store's
/// instance size must hold the group (422 names each parameter and the size's bound).
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/parameter-group", tag = "parameters",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    request_body = ApplyGroup,
    responses(
        (status = 202, body = JobView, headers(("Location" = String, description = "The job"))),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A job is in progress", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No such group, one for another vendor or version, or one the store's instance size cannot hold (the parameter and bound are named)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn apply_group(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
    AppJson(body): AppJson<ApplyGroup>,
) -> ApiResult<Accepted<JobView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let job = groups::apply(&state, &meta, &ctx, &user.principal.email, store_id, &body).await?;
    state.wake.notify_waiters();
    Ok(Accepted::job(job))
}

/// The values in force, read from the nodes themselves, with drift from the store's group.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/stores/{store_id}/parameters", tag = "parameters",
    security(("session" = []), ("bearer" = ["stores:read"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    responses(
        (status = 200, body = StoreParameters),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn store_parameters(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
) -> ApiResult<AppJson<StoreParameters>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresRead)?;
    Ok(AppJson(groups::in_force(&state, &ctx, store_id).await?))
}
