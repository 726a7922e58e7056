//! A store's nodes in maintenance: stopping, starting and reinitializing one (each a job), and
//! its maintenance flag (the control database only). The operations are `service::nodes`;
//! adding, removing and restarting nodes are with the stores.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::domain::{NodeId, OrgId, Scope, StoreId};
use crate::error::{ApiResult, Problem};
use crate::http::extract::{ActiveUser, AppJson, AppPath};
use crate::http::respond::{Accepted, etag, job_location};
use crate::http::views::{StoreAccepted, StoreView, view};
use crate::service::nodes::{self, Maintenance};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(stop_node))
        .routes(routes!(start_node))
        .routes(routes!(reinitialize_node))
        .routes(routes!(update_node))
}

/// Starts `what` on the node: 202 with the store as the request left it and the job, located
/// at the job.
async fn maintain(
    state: &AppState,
    meta: &RequestMeta,
    user: &ActiveUser,
    (org_id, store_id, node_id): (OrgId, StoreId, NodeId),
    what: Maintenance,
) -> ApiResult<Accepted<StoreAccepted>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let change = nodes::maintain(state, meta, &ctx, &user.principal.email, store_id, node_id, what).await?;
    let location = job_location(&change.job);
    let body = StoreAccepted { store: view(change.detail), job: change.job.into(), credentials: None };
    Ok(Accepted::new(body, location))
}

/// Stops a replica. It stays `stopped` (through health checks and Berth's own restarts) until
/// it is started again; the store is `degraded` meanwhile. The primary cannot be stopped:
/// switch over to a replica first.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/nodes/{node_id}/stop", tag = "stores",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), ("node_id" = Uuid, Path)),
    responses(
        (status = 202, body = StoreAccepted, headers(("Location" = String, description = "The job"))),
        (status = 404, description = "No such store or node for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`node_is_primary`: the node is the primary (switch over first); `job_in_progress`: a job is in progress; `store_busy`: the store's status allows no change of its nodes", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn stop_node(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath(ids): AppPath<(OrgId, StoreId, NodeId)>,
) -> ApiResult<Accepted<StoreAccepted>> {
    maintain(&state, &meta, &user, ids, Maintenance::Stop).await
}

/// Starts a node (stopped, or failed) with its duty from the control database: a replica
/// starts as a standby of the current primary. A node that already runs is accepted too; its
/// job finds nothing to do.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/nodes/{node_id}/start", tag = "stores",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), ("node_id" = Uuid, Path)),
    responses(
        (status = 202, body = StoreAccepted, headers(("Location" = String, description = "The job"))),
        (status = 404, description = "No such store or node for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`job_in_progress`: a job is in progress; `store_busy`: the store's status allows no change of its nodes", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn start_node(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath(ids): AppPath<(OrgId, StoreId, NodeId)>,
) -> ApiResult<Accepted<StoreAccepted>> {
    maintain(&state, &meta, &user, ids, Maintenance::Start).await
}

/// Reinitializes a replica: its data is discarded and copied again from the primary, and it
/// streams from there. The primary cannot be reinitialized.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/nodes/{node_id}/reinitialize", tag = "stores",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), ("node_id" = Uuid, Path)),
    responses(
        (status = 202, body = StoreAccepted, headers(("Location" = String, description = "The job"))),
        (status = 404, description = "No such store or node for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`node_is_primary`: the node is the primary; `job_in_progress`: a job is in progress; `store_busy`: the store's status allows no change of its nodes", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn reinitialize_node(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath(ids): AppPath<(OrgId, StoreId, NodeId)>,
) -> ApiResult<Accepted<StoreAccepted>> {
    maintain(&state, &meta, &user, ids, Maintenance::Reinitialize).await
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateNode {
    /// A node in maintenance is never chosen by a switchover or failover and raises no alerts;
    /// it keeps running (stop it for that).
    pub maintenance: bool,
}

/// Changes a node: its maintenance flag, at once (no job). Recorded as a store event and in the
/// audit trail; setting the flag it already has changes nothing.
#[utoipa::path(
    patch, path = "/api/v1/orgs/{org_id}/stores/{store_id}/nodes/{node_id}", tag = "stores",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), ("node_id" = Uuid, Path)),
    request_body = UpdateNode,
    responses(
        (status = 200, description = "Changed", body = StoreView, headers(("ETag" = String))),
        (status = 404, description = "No such store or node for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid or unknown field", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn update_node(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id, node_id)): AppPath<(OrgId, StoreId, NodeId)>,
    AppJson(body): AppJson<UpdateNode>,
) -> ApiResult<Response> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let actor = &user.principal.email;
    let detail =
        nodes::set_maintenance(&state, &meta, &ctx, actor, store_id, node_id, body.maintenance).await?;
    let revision = detail.store.revision;
    Ok(([(header::ETAG, etag(revision))], axum::Json(view(detail))).into_response())
}
