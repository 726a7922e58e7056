//! VPCs: private networks that stores are placed in, and peerings that join two of them. Making
//! and removing a network (or a peering's link) is a job, returned by the call that started it.
//!
//! A peering joins two VPCs of one cloud and one region whose blocks do not overlap. Between
//! VPCs of one organization it is made at once. When the peer VPC belongs to another
//! organization, the request waits (`pending_acceptance`) until that organization accepts or
//! rejects it; until then the requester learns nothing of the peer VPC, not even whether it
//! exists, so that VPC ids of other organizations cannot be probed.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, Transaction};
use time::OffsetDateTime;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::{Event, RequestMeta};
use crate::db;
use crate::db::vpcs::{PeeringRow, VpcRow};
use crate::domain::{Ctx, PeeringStatus, Scope, VpcStatus};
use crate::error::{ApiError, ApiResult, Problem, on_constraint};
use crate::http::extract::{ActiveUser, AppJson, AppPath};
use crate::http::views::JobView;
use crate::jobs::{self, step};
use crate::service::jobs::{Enqueue, enqueue};
use crate::service::peerings::{self, Deletion, answering, available, connect_steps, joinable, missing};
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
    pub id: Uuid,
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

fn vpc_location(org_id: Uuid, id: Uuid) -> HeaderValue {
    HeaderValue::from_str(&format!("/api/v1/orgs/{org_id}/vpcs/{id}")).expect("ascii")
}

async fn vpc_of(state: &AppState, ctx: &Ctx, vpc_id: Uuid) -> ApiResult<VpcRow> {
    db::vpcs::get(&state.db, ctx, vpc_id).await?.ok_or(ApiError::not_found("VPC"))
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
    AppPath(org_id): AppPath<Uuid>,
) -> ApiResult<AppJson<VpcList>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::VpcsRead)?;
    let rows = db::vpcs::list(&state.db, &ctx).await?;
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
        (status = 202, body = VpcAccepted, headers(("Location" = String))),
        (status = 409, description = "The name is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A block that is not private, not /16 to /28, has host bits set, or overlaps another VPC (named); a cloud or region outside the catalog; VPCs unavailable on this host (the reason given); or `quota_exceeded`: the organization's quota of VPCs (with its limit and usage)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_vpc(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath(org_id): AppPath<Uuid>,
    AppJson(body): AppJson<CreateVpc>,
) -> ApiResult<Response> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::VpcsWrite)?;
    let (vpc, job) = vpcs::create(&state, &meta, &ctx, &user.principal.email, &body).await?;
    let id = vpc.id;
    state.wake.notify_waiters();
    let mut res =
        (StatusCode::ACCEPTED, axum::Json(VpcAccepted { vpc: vpc.into(), job: job.into() })).into_response();
    res.headers_mut().insert(header::LOCATION, vpc_location(org_id, id));
    Ok(res)
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
    AppPath((org_id, vpc_id)): AppPath<(Uuid, Uuid)>,
) -> ApiResult<AppJson<VpcView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::VpcsRead)?;
    Ok(AppJson(vpc_of(&state, &ctx, vpc_id).await?.into()))
}

/// Starts a VPC's deletion: its network is removed by the job returned. 409 while it holds
/// stores or peerings (each named): delete those first.
#[utoipa::path(
    delete, path = "/api/v1/orgs/{org_id}/vpcs/{vpc_id}", tag = "vpcs",
    security(("session" = []), ("bearer" = ["vpcs:write"])),
    params(("org_id" = Uuid, Path), ("vpc_id" = Uuid, Path)),
    responses(
        (status = 202, body = JobView),
        (status = 404, description = "No such VPC for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The VPC holds stores or peerings (named), or its job is in progress", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_vpc(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, vpc_id)): AppPath<(Uuid, Uuid)>,
) -> ApiResult<(StatusCode, AppJson<JobView>)> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::VpcsWrite)?;
    let job = vpcs::delete(&state, &meta, &ctx, &user.principal.email, vpc_id).await?;
    state.wake.notify_waiters();
    Ok((StatusCode::ACCEPTED, AppJson(job.into())))
}

// ---- Peerings --------------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct PeeringView {
    pub id: Uuid,
    /// Never `deleted` here. `pending_acceptance`: the peer's organization has yet to accept;
    /// delete a `failed` peering to clean it up.
    pub status: PeeringStatus,
    /// The VPC that asked, and its organization.
    pub vpc_id: Uuid,
    pub org_id: Uuid,
    #[schema(example = "10.62.0.0/24")]
    pub cidr_ipv4_block: String,
    /// The VPC asked, and its organization.
    pub peer_vpc_id: Uuid,
    pub peer_org_id: Uuid,
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePeering {
    /// The VPC to join, of the same cloud and region, with a block that does not overlap.
    pub peer_vpc_id: Uuid,
    /// The peer VPC's organization, when it is another one (which must accept). Omitted: this one.
    pub peer_org_id: Option<Uuid>,
}

/// The view of a peering from `ctx`'s organization.
async fn peering_view(state: &AppState, ctx: &Ctx, p: PeeringRow) -> ApiResult<PeeringView> {
    let mine = db::vpcs::get_by_id(&state.db, p.org_id, p.vpc_id).await?.ok_or_else(|| missing(p.vpc_id))?;
    let peer_visible = !p.needs_acceptance() || p.status.is_linked() || ctx.org_id == p.peer_org_id;
    let peer = match peer_visible {
        true => db::vpcs::get_by_id(&state.db, p.peer_org_id, p.peer_vpc_id).await?,
        false => None,
    };
    Ok(PeeringView {
        id: p.id,
        cross_org: p.needs_acceptance(),
        status: p.status,
        vpc_id: p.vpc_id,
        org_id: p.org_id,
        cidr_ipv4_block: mine.cidr.to_string(),
        peer_vpc_id: p.peer_vpc_id,
        peer_org_id: p.peer_org_id,
        peer_cidr_ipv4_block: peer.map(|v| v.cidr.to_string()),
        created_at: p.created_at,
        updated_at: p.updated_at,
    })
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
    AppPath((org_id, vpc_id)): AppPath<(Uuid, Uuid)>,
) -> ApiResult<AppJson<PeeringList>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::VpcsRead)?;
    vpc_of(&state, &ctx, vpc_id).await?;
    let mut items = vec![];
    for p in db::vpcs::peerings_of(&state.db, &ctx, vpc_id).await? {
        items.push(peering_view(&state, &ctx, p).await?);
    }
    Ok(AppJson(PeeringList { items }))
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
        (status = 201, description = "Asked of another organization", body = PeeringAccepted, headers(("Location" = String))),
        (status = 202, description = "Being connected", body = PeeringAccepted, headers(("Location" = String))),
        (status = 404, description = "No such VPC for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A VPC is not available, or the two are peered already", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No such peer VPC in this organization, the VPC itself, another cloud or region, or overlapping blocks (each named)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_peering(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, vpc_id)): AppPath<(Uuid, Uuid)>,
    AppJson(body): AppJson<CreatePeering>,
) -> ApiResult<Response> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::VpcsWrite)?;
    let peer_org = body.peer_org_id.unwrap_or(org_id);
    let peer_vpc = body.peer_vpc_id;
    if peer_vpc == vpc_id {
        return Err(ApiError::field("peer_vpc_id", "a VPC cannot be peered with itself"));
    }
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let cross_org = peer_org != org_id;
    if cross_org {
        // Only this side is ours to check: nothing is read of the other until it accepts.
        let mine =
            db::vpcs::get_for_update(&mut tx, &ctx, vpc_id).await?.ok_or(ApiError::not_found("VPC"))?;
        available(&mine)?;
    } else {
        let pair = db::vpcs::lock_pair(&mut tx, (org_id, vpc_id), (org_id, peer_vpc)).await?;
        let mine = pair.iter().find(|v| v.id == vpc_id).ok_or(ApiError::not_found("VPC"))?;
        let peer = pair.iter().find(|v| v.id == peer_vpc).ok_or_else(|| {
            ApiError::field(
                "peer_vpc_id",
                format!(
                    "no VPC {peer_vpc} in this organization; to peer with another organization's VPC, give its peer_org_id"
                ),
            )
        })?;
        available(mine)?;
        available(peer)?;
        joinable(mine, peer)?;
    }
    let id = Uuid::now_v7();
    let status = if cross_org { PeeringStatus::PendingAcceptance } else { PeeringStatus::Provisioning };
    let new = db::vpcs::NewPeering {
        id,
        vpc_id,
        peer_org_id: peer_org,
        peer_vpc_id: peer_vpc,
        status,
        created_by: ctx.user_id,
        now,
    };
    db::vpcs::insert_peering(&mut *tx, &ctx, new).await.map_err(|e| {
        on_constraint(e, |c| {
            (c == "vpc_peerings_pair_key").then(|| {
                ApiError::conflict("peering_exists", "these two VPCs are peered already, or asked to be")
            })
        })
    })?;
    let job = match cross_org {
        true => None,
        false => Some(
            enqueue(&mut tx, &state, &ctx, Enqueue::network(jobs::CREATE_PEERING, connect_steps(id))).await?,
        ),
    };
    Event::new("vpc.peering_requested", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("vpc:{vpc_id}"))
        .detail("peering", id)
        .detail("peer_vpc_id", peer_vpc)
        .detail("peer_org_id", peer_org)
        .detail("job", job.as_ref().map(|j| j.id))
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    let status = if job.is_some() { StatusCode::ACCEPTED } else { StatusCode::CREATED };
    peering_response(&state, &ctx, vpc_id, id, status, job).await
}

async fn peering_response(
    state: &AppState,
    ctx: &Ctx,
    vpc_id: Uuid,
    id: Uuid,
    status: StatusCode,
    job: Option<db::jobs::JobRow>,
) -> ApiResult<Response> {
    if job.is_some() {
        state.wake.notify_waiters();
    }
    let row = db::vpcs::peering(&state.db, ctx, vpc_id, id).await?.ok_or(ApiError::not_found("peering"))?;
    let peering = peering_view(state, ctx, row).await?;
    let body = PeeringAccepted { peering, job: job.map(Into::into) };
    let mut res = (status, axum::Json(body)).into_response();
    let location = format!("/api/v1/orgs/{}/vpcs/{vpc_id}/peerings/{id}", ctx.org_id);
    res.headers_mut().insert(header::LOCATION, HeaderValue::from_str(&location).expect("ascii"));
    Ok(res)
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
    AppPath((org_id, vpc_id, peering_id)): AppPath<(Uuid, Uuid, Uuid)>,
) -> ApiResult<AppJson<PeeringView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::VpcsRead)?;
    vpc_of(&state, &ctx, vpc_id).await?;
    let row = db::vpcs::peering(&state.db, &ctx, vpc_id, peering_id)
        .await?
        .ok_or(ApiError::not_found("peering"))?;
    Ok(AppJson(peering_view(&state, &ctx, row).await?))
}

/// The start of every change to a peering: the caller's context, allowed to write, and the
/// peering of one of its VPCs (seen from that VPC) locked in a transaction.
async fn peering_write(
    state: &AppState,
    user: &ActiveUser,
    org_id: Uuid,
    vpc_id: Uuid,
    peering_id: Uuid,
) -> ApiResult<(Ctx, Transaction<'static, Postgres>, PeeringRow)> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::VpcsWrite)?;
    let mut tx = state.db.begin().await?;
    db::vpcs::get(&mut *tx, &ctx, vpc_id).await?.ok_or(ApiError::not_found("VPC"))?;
    let p = db::vpcs::peering_for_update(&mut tx, &ctx, vpc_id, peering_id)
        .await?
        .ok_or(ApiError::not_found("peering"))?;
    Ok((ctx, tx, p))
}

/// Accepts a peering another organization asked of this VPC: 202, the peering `provisioning`
/// and the job that connects the networks.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/vpcs/{vpc_id}/peerings/{peering_id}/accept", tag = "vpcs",
    security(("session" = []), ("bearer" = ["vpcs:write"])),
    params(("org_id" = Uuid, Path), ("vpc_id" = Uuid, Path), ("peering_id" = Uuid, Path)),
    responses(
        (status = 202, body = PeeringAccepted),
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
    AppPath((org_id, vpc_id, peering_id)): AppPath<(Uuid, Uuid, Uuid)>,
) -> ApiResult<Response> {
    let (ctx, mut tx, p) = peering_write(&state, &user, org_id, vpc_id, peering_id).await?;
    answering(&ctx, vpc_id, &p)?;
    let pair = db::vpcs::lock_pair(&mut tx, (p.org_id, p.vpc_id), (org_id, vpc_id)).await?;
    let asking = pair.iter().find(|v| v.id == p.vpc_id).ok_or_else(|| missing(p.vpc_id))?;
    let mine = pair.iter().find(|v| v.id == vpc_id).ok_or(ApiError::not_found("VPC"))?;
    available(asking)?;
    available(mine)?;
    joinable(asking, mine)?;
    let now = state.clock.now();
    db::vpcs::set_peering_status(&mut *tx, org_id, peering_id, PeeringStatus::Provisioning, now).await?;
    let job =
        enqueue(&mut tx, &state, &ctx, Enqueue::network(jobs::CREATE_PEERING, connect_steps(peering_id)))
            .await?;
    Event::new("vpc.peering_accepted", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("vpc:{vpc_id}"))
        .detail("peering", peering_id)
        .detail("requested_by_org", p.org_id)
        .detail("job", job.id)
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    peering_response(&state, &ctx, vpc_id, peering_id, StatusCode::ACCEPTED, Some(job)).await
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
    AppPath((org_id, vpc_id, peering_id)): AppPath<(Uuid, Uuid, Uuid)>,
) -> ApiResult<AppJson<PeeringView>> {
    let (ctx, mut tx, p) = peering_write(&state, &user, org_id, vpc_id, peering_id).await?;
    answering(&ctx, vpc_id, &p)?;
    let now = state.clock.now();
    db::vpcs::set_peering_status(&mut *tx, org_id, peering_id, PeeringStatus::Rejected, now).await?;
    Event::new("vpc.peering_rejected", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("vpc:{vpc_id}"))
        .detail("peering", peering_id)
        .detail("requested_by_org", p.org_id)
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    let row = db::vpcs::peering(&state.db, &ctx, vpc_id, peering_id)
        .await?
        .ok_or(ApiError::not_found("peering"))?;
    Ok(AppJson(peering_view(&state, &ctx, row).await?))
}

/// Deletes a peering, from either side. One that is connected (or failed half-way) is taken
/// apart by a job: 202 with it; the private stores of both VPCs stop admitting the other block
/// first. One never connected (pending or rejected) is gone at once: 204.
#[utoipa::path(
    delete, path = "/api/v1/orgs/{org_id}/vpcs/{vpc_id}/peerings/{peering_id}", tag = "vpcs",
    security(("session" = []), ("bearer" = ["vpcs:write"])),
    params(("org_id" = Uuid, Path), ("vpc_id" = Uuid, Path), ("peering_id" = Uuid, Path)),
    responses(
        (status = 202, description = "Being disconnected", body = JobView),
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such VPC or peering for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Its job is in progress", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_peering(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, vpc_id, peering_id)): AppPath<(Uuid, Uuid, Uuid)>,
) -> ApiResult<Response> {
    let (ctx, mut tx, p) = peering_write(&state, &user, org_id, vpc_id, peering_id).await?;
    let now = state.clock.now();
    let job = match peerings::deletion(&p)? {
        Deletion::Forget => {
            db::vpcs::set_peering_status(&mut *tx, org_id, peering_id, PeeringStatus::Deleted, now).await?;
            None
        }
        Deletion::Disconnect => {
            db::vpcs::set_peering_status(&mut *tx, org_id, peering_id, PeeringStatus::Deleting, now).await?;
            let steps = vec![
                step::on(step::APPLY_PEERING_ACCESS, peering_id),
                step::on(step::DISCONNECT_PEERING, peering_id),
            ];
            Some(enqueue(&mut tx, &state, &ctx, Enqueue::network(jobs::DELETE_PEERING, steps)).await?)
        }
    };
    Event::new("vpc.peering_deleted", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("vpc:{vpc_id}"))
        .detail("peering", peering_id)
        .detail("job", job.as_ref().map(|j| j.id))
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    Ok(match job {
        Some(job) => {
            state.wake.notify_waiters();
            (StatusCode::ACCEPTED, axum::Json(JobView::from(job))).into_response()
        }
        None => StatusCode::NO_CONTENT.into_response(),
    })
}
