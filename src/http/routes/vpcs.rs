//! VPCs: private networks that stores are placed in, and peerings that join two of them. Making
//! and removing a network (or a peering's link) is a job, returned by the call that started it.
//!
//! A peering joins two VPCs of one cloud and one region whose blocks do not overlap. Between
//! VPCs of one organization it is made at once. When the peer VPC belongs to another
//! organization, the request waits (`pending_acceptance`) until that organization accepts or
//! rejects it; until then the requester learns nothing of the peer VPC, not even whether it
//! exists, so that VPC ids of other organizations cannot be probed.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::db::vpcs::VpcRow;
use crate::domain::{OrgId, PeeringId, PeeringStatus, Scope, VpcId, VpcStatus};
use crate::error::{ApiResult, Problem};
use crate::http::extract::{ActiveUser, AppJson, AppPath};
use crate::http::respond::{Accepted, Created};
use crate::http::views::JobView;
use crate::service::peerings::{self, CreatePeering, Peering};
use crate::service::vpcs::{self, CreateVpc};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_vpcs, create_vpc))
        .routes(routes!(get_vpc, delete_vpc))
        .routes(routes!(list_peerings, create_peering))
        .routes(routes!(get_peering, delete_peering))
        .routes(routes!(accept_peering))
        .routes(routes!(reject_peering))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VpcView {
    #[schema(value_type = Uuid)]
    pub id: VpcId,
    pub name: String,
    pub cloud: String,
    pub region: String,
    #[schema(example = "10.61.0.0/24")]
    pub cidr_ipv4_block: String,
    /// Never `deleted` here. Delete a `failed` VPC to clean it up.
    pub status: VpcStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<VpcRow> for VpcView {
    fn from(v: VpcRow) -> Self {
        Self {
            id: v.id,
            name: v.name,
            cloud: v.cloud,
            region: v.region,
            cidr_ipv4_block: v.cidr.to_string(),
            status: v.status,
            created_at: v.created_at,
            updated_at: v.updated_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VpcList {
    pub items: Vec<VpcView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VpcAccepted {
    pub vpc: VpcView,
    pub job: JobView,
}

fn vpc_location(org_id: OrgId, id: VpcId) -> String {
    format!("/api/v1/orgs/{org_id}/vpcs/{id}")
}

fn peering_location(org_id: OrgId, vpc_id: VpcId, id: PeeringId) -> String {
    format!("/api/v1/orgs/{org_id}/vpcs/{vpc_id}/peerings/{id}")
}

/// The organization's VPCs.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/vpcs", tag = "vpcs",
    security(("session" = []), ("bearer" = ["vpcs:read"])),
    params(("org_id" = Uuid, Path)),
    responses(
        (status = 200, body = VpcList),
    )
)]
async fn list_vpcs(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath(org_id): AppPath<OrgId>,
) -> ApiResult<AppJson<VpcList>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::VpcsRead)?;
    let rows = vpcs::list(&state, &ctx).await?;
    Ok(AppJson(VpcList { items: rows.into_iter().map(Into::into).collect() }))
}

/// Creates a VPC: 202 with the VPC (`creating`) and the job that makes its network. Where the
/// host cannot make networks (the deploy options say so per cloud), 422 says why.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/vpcs", tag = "vpcs",
    security(("session" = []), ("bearer" = ["vpcs:write"])),
    params(("org_id" = Uuid, Path)),
    request_body = CreateVpc,
    responses(
        (status = 202, body = VpcAccepted, headers(("Location" = String, description = "The VPC"))),
        (status = 409, description = "The name is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A block that is not private, not /16 to /28, has host bits set, or overlaps another VPC (named); a cloud or region outside the catalog; VPCs unavailable on this host (the reason given); or `quota_exceeded`: the organization's quota of VPCs (with its limit and usage)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_vpc(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath(org_id): AppPath<OrgId>,
    AppJson(body): AppJson<CreateVpc>,
) -> ApiResult<Accepted<VpcAccepted>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::VpcsWrite)?;
    let (vpc, job) = vpcs::create(&state, &meta, &ctx, &user.principal.email, &body).await?;
    state.wake.notify_waiters();
    let location = vpc_location(org_id, vpc.id);
    Ok(Accepted::new(VpcAccepted { vpc: vpc.into(), job: job.into() }, location))
}

/// One VPC.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/vpcs/{vpc_id}", tag = "vpcs",
    security(("session" = []), ("bearer" = ["vpcs:read"])),
    params(("org_id" = Uuid, Path), ("vpc_id" = Uuid, Path)),
    responses(
        (status = 200, body = VpcView),
        (status = 404, description = "No such VPC for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_vpc(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath((org_id, vpc_id)): AppPath<(OrgId, VpcId)>,
) -> ApiResult<AppJson<VpcView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::VpcsRead)?;
    Ok(AppJson(vpcs::get(&state, &ctx, vpc_id).await?.into()))
}

/// Starts a VPC's deletion: its network is removed by the job returned. 409 while it holds
/// stores or peerings (each named): delete those first.
#[utoipa::path(
    delete, path = "/api/v1/orgs/{org_id}/vpcs/{vpc_id}", tag = "vpcs",
    security(("session" = []), ("bearer" = ["vpcs:write"])),
    params(("org_id" = Uuid, Path), ("vpc_id" = Uuid, Path)),
    responses(
        (status = 202, body = JobView, headers(("Location" = String, description = "The job"))),
        (status = 404, description = "No such VPC for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The VPC holds stores or peerings (named), or its job is in progress", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_vpc(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, vpc_id)): AppPath<(OrgId, VpcId)>,
) -> ApiResult<Accepted<JobView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::VpcsWrite)?;
    let job = vpcs::delete(&state, &meta, &ctx, &user.principal.email, vpc_id).await?;
    state.wake.notify_waiters();
    Ok(Accepted::job(job))
}

// ---- Peerings --------------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct PeeringView {
    #[schema(value_type = Uuid)]
    pub id: PeeringId,
    /// Never `deleted` here. `pending_acceptance`: the peer's organization has yet to accept;
    /// delete a `failed` peering to clean it up.
    pub status: PeeringStatus,
    /// The VPC that asked, and its organization.
    #[schema(value_type = Uuid)]
    pub vpc_id: VpcId,
    #[schema(value_type = Uuid)]
    pub org_id: OrgId,
    #[schema(example = "10.62.0.0/24")]
    pub cidr_ipv4_block: String,
    /// The VPC asked, and its organization.
    #[schema(value_type = Uuid)]
    pub peer_vpc_id: VpcId,
    #[schema(value_type = Uuid)]
    pub peer_org_id: OrgId,
    /// Shown to the asking side once the peer's organization has accepted (or at once, in one
    /// organization); always to the peer's side.
    #[schema(example = "10.61.0.0/24")]
    pub peer_cidr_ipv4_block: Option<String>,
    /// The peer is another organization's VPC: that organization accepts or rejects.
    pub cross_org: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PeeringList {
    pub items: Vec<PeeringView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PeeringAccepted {
    pub peering: PeeringView,
    /// The job that connects the two networks; none while the peer's organization has yet to accept.
    pub job: Option<JobView>,
}

impl From<Peering> for PeeringView {
    fn from(Peering { row: p, cidr, peer_cidr }: Peering) -> Self {
        Self {
            id: p.id,
            cross_org: p.needs_acceptance(),
            status: p.status,
            vpc_id: p.vpc_id,
            org_id: p.org_id,
            cidr_ipv4_block: cidr.to_string(),
            peer_vpc_id: p.peer_vpc_id,
            peer_org_id: p.peer_org_id,
            peer_cidr_ipv4_block: peer_cidr.map(|c| c.to_string()),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// The peerings of a VPC, on either side: those it asked for and those asked of it.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/vpcs/{vpc_id}/peerings", tag = "vpcs",
    security(("session" = []), ("bearer" = ["vpcs:read"])),
    params(("org_id" = Uuid, Path), ("vpc_id" = Uuid, Path)),
    responses(
        (status = 200, body = PeeringList),
        (status = 404, description = "No such VPC for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_peerings(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath((org_id, vpc_id)): AppPath<(OrgId, VpcId)>,
) -> ApiResult<AppJson<PeeringList>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::VpcsRead)?;
    let items = peerings::list(&state, &ctx, vpc_id).await?;
    Ok(AppJson(PeeringList { items: items.into_iter().map(Into::into).collect() }))
}

/// Asks to join this VPC to another. Within the organization: 202, the peering `provisioning`
/// and the job that connects the networks. With another organization's VPC (`peer_org_id`):
/// 201, the peering `pending_acceptance` until that organization accepts or rejects it, whether
/// or not such a VPC exists (so that nobody can probe another organization's VPCs).
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/vpcs/{vpc_id}/peerings", tag = "vpcs",
    security(("session" = []), ("bearer" = ["vpcs:write"])),
    params(("org_id" = Uuid, Path), ("vpc_id" = Uuid, Path)),
    request_body = CreatePeering,
    responses(
        (status = 201, description = "Asked of another organization", body = PeeringAccepted, headers(("Location" = String, description = "The peering"))),
        (status = 202, description = "Being connected", body = PeeringAccepted, headers(("Location" = String, description = "The peering"))),
        (status = 404, description = "No such VPC for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A VPC is not available, or the two are peered already", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No such peer VPC in this organization, the VPC itself, another cloud or region, or overlapping blocks (each named)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_peering(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, vpc_id)): AppPath<(OrgId, VpcId)>,
    AppJson(body): AppJson<CreatePeering>,
) -> ApiResult<Response> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::VpcsWrite)?;
    let (peering, job) = peerings::create(&state, &meta, &ctx, &user.principal.email, vpc_id, &body).await?;
    let location = peering_location(org_id, vpc_id, peering.row.id);
    let body = PeeringAccepted { peering: peering.into(), job: job.map(Into::into) };
    Ok(match body.job {
        Some(_) => {
            state.wake.notify_waiters();
            Accepted::new(body, location).into_response()
        }
        None => Created::new(body, location).into_response(),
    })
}

/// One peering of the VPC, seen from either side.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/vpcs/{vpc_id}/peerings/{peering_id}", tag = "vpcs",
    security(("session" = []), ("bearer" = ["vpcs:read"])),
    params(("org_id" = Uuid, Path), ("vpc_id" = Uuid, Path), ("peering_id" = Uuid, Path)),
    responses(
        (status = 200, body = PeeringView),
        (status = 404, description = "No such VPC or peering for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_peering(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath((org_id, vpc_id, peering_id)): AppPath<(OrgId, VpcId, PeeringId)>,
) -> ApiResult<AppJson<PeeringView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::VpcsRead)?;
    Ok(AppJson(peerings::get(&state, &ctx, vpc_id, peering_id).await?.into()))
}

/// Accepts a peering another organization asked of this VPC: 202, the peering `provisioning`
/// and the job that connects the networks.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/vpcs/{vpc_id}/peerings/{peering_id}/accept", tag = "vpcs",
    security(("session" = []), ("bearer" = ["vpcs:write"])),
    params(("org_id" = Uuid, Path), ("vpc_id" = Uuid, Path), ("peering_id" = Uuid, Path)),
    responses(
        (status = 202, body = PeeringAccepted, headers(("Location" = String, description = "The peering"))),
        (status = 403, description = "Not allowed, or this side asked", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such VPC or peering for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not pending acceptance, or a VPC is not available", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Another cloud or region, or overlapping blocks (each named)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn accept_peering(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, vpc_id, peering_id)): AppPath<(OrgId, VpcId, PeeringId)>,
) -> ApiResult<Accepted<PeeringAccepted>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::VpcsWrite)?;
    let (peering, job) =
        peerings::accept(&state, &meta, &ctx, &user.principal.email, vpc_id, peering_id).await?;
    state.wake.notify_waiters();
    let location = peering_location(org_id, vpc_id, peering_id);
    Ok(Accepted::new(PeeringAccepted { peering: peering.into(), job: Some(job.into()) }, location))
}

/// Rejects a peering another organization asked of this VPC. Nothing is connected; the asking
/// side sees it `rejected`.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/vpcs/{vpc_id}/peerings/{peering_id}/reject", tag = "vpcs",
    security(("session" = []), ("bearer" = ["vpcs:write"])),
    params(("org_id" = Uuid, Path), ("vpc_id" = Uuid, Path), ("peering_id" = Uuid, Path)),
    responses(
        (status = 200, body = PeeringView),
        (status = 403, description = "Not allowed, or this side asked", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such VPC or peering for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not pending acceptance", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn reject_peering(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, vpc_id, peering_id)): AppPath<(OrgId, VpcId, PeeringId)>,
) -> ApiResult<AppJson<PeeringView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::VpcsWrite)?;
    let peering = peerings::reject(&state, &meta, &ctx, &user.principal.email, vpc_id, peering_id).await?;
    Ok(AppJson(peering.into()))
}

/// Deletes a peering, from either side. One that is connected (or failed half-way) is taken
/// apart by a job: 202 with it; the private stores of both VPCs stop admitting the other block
/// first. One never connected (pending or rejected) is gone at once: 204.
#[utoipa::path(
    delete, path = "/api/v1/orgs/{org_id}/vpcs/{vpc_id}/peerings/{peering_id}", tag = "vpcs",
    security(("session" = []), ("bearer" = ["vpcs:write"])),
    params(("org_id" = Uuid, Path), ("vpc_id" = Uuid, Path), ("peering_id" = Uuid, Path)),
    responses(
        (status = 202, description = "Being disconnected", body = JobView, headers(("Location" = String, description = "The job"))),
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such VPC or peering for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Its job is in progress", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_peering(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, vpc_id, peering_id)): AppPath<(OrgId, VpcId, PeeringId)>,
) -> ApiResult<Response> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::VpcsWrite)?;
    Ok(match peerings::delete(&state, &meta, &ctx, &user.principal.email, vpc_id, peering_id).await? {
        Some(job) => {
            state.wake.notify_waiters();
            Accepted::job(job).into_response()
        }
        None => StatusCode::NO_CONTENT.into_response(),
    })
}
