//! High availability: switchovers, failovers, the topology, the history of promotions, the
//! store's events, and pausing the failover monitor. The rules are `service::ha`; the monitor's
//! own failovers are `jobs::monitor`.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::db::ha::{EventRow, PromotionRow};
use crate::db::stores::NodeRow;
use crate::domain::ha::{EventKind, HaPhase, PromotionKind};
use crate::domain::{JobId, NodeId, NodeRole, NodeState, OrgId, Scope, StoreId, UserId};
use crate::error::{ApiResult, Problem};
use crate::http::extract::{ActiveUser, AppJson, AppPath, AppQuery};
use crate::http::page::PageRequest;
use crate::http::respond::Accepted;
use crate::http::views::{HaView, JobView};
use crate::provision::Lsn;
use crate::service::ha::{self, FailoverRequest, SwitchoverRequest, Topology};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(switchover, cancel_switchover))
        .routes(routes!(failover))
        .routes(routes!(topology))
        .routes(routes!(history))
        .routes(routes!(events))
        .routes(routes!(pause))
        .routes(routes!(resume))
}

/// One node as the last check saw it.
#[derive(Debug, Serialize, ToSchema)]
pub struct TopologyNode {
    #[schema(value_type = Uuid)]
    pub id: NodeId,
    pub role: NodeRole,
    pub state: NodeState,
    pub host: String,
    pub port: i32,
    /// The timeline it writes on (the primary) or replays.
    pub timeline: Option<i32>,
    /// The primary: where it has written to; a replica: the WAL it has received and flushed
    /// (`X/Y`).
    pub received_lsn: Option<String>,
    /// A replica: the WAL it has replayed.
    pub replayed_lsn: Option<String>,
    /// A replica: bytes of WAL the primary had written that it had not received (flushed), in
    /// one snapshot of the primary's, at the last check: about what a failover to it would lose.
    pub lag_bytes: Option<i64>,
    /// A replica: seconds its replay lags, as the primary measures it (0 when caught up).
    pub lag_seconds: Option<f64>,
    /// A replica: it streams from the primary.
    pub streaming: Option<bool>,
    /// A replica, as the primary sees it: `async`, `sync`, `quorum` or `potential`.
    pub sync_state: Option<String>,
    /// Stopped by a failover or switchover and not to run read-write until it rejoins.
    pub fenced: bool,
    /// Excluded from candidacy and from alerts.
    pub maintenance: bool,
    /// When the failover monitor last asked it.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_check: Option<OffsetDateTime>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TopologyView {
    #[schema(value_type = Uuid)]
    pub store_id: StoreId,
    pub phase: HaPhase,
    /// The timeline the store's primary writes on.
    pub timeline: i32,
    #[schema(value_type = Option<Uuid>)]
    pub primary_node_id: Option<NodeId>,
    /// The primary first.
    pub nodes: Vec<TopologyNode>,
    pub ha: HaView,
}

fn lsn_text(v: Option<i64>) -> Option<String> {
    v.and_then(|v| u64::try_from(v).ok()).map(|v| Lsn(v).to_string())
}

fn topology_view(t: Topology) -> TopologyView {
    let Topology { detail, phase } = t;
    let primary = detail.nodes.iter().find(|n| n.role == NodeRole::Primary && !n.fenced);
    let written = primary.and_then(|p| p.received_lsn);
    let node = |n: &NodeRow| TopologyNode {
        id: n.id,
        role: n.role,
        state: n.state,
        host: n.host.clone(),
        port: n.port,
        timeline: n.timeline,
        received_lsn: lsn_text(n.received_lsn),
        replayed_lsn: lsn_text(n.replayed_lsn),
        lag_bytes: (n.role == NodeRole::Replica)
            .then(|| written.zip(n.received_lsn).map(|(w, r)| (w - r).max(0)))
            .flatten(),
        lag_seconds: n.lag_seconds,
        streaming: n.streaming,
        sync_state: n.sync_state.clone(),
        fenced: n.fenced,
        maintenance: n.maintenance,
        last_check: n.checked_at,
    };
    let mut nodes: Vec<&NodeRow> = detail.nodes.iter().collect();
    nodes.sort_by_key(|n| n.role != NodeRole::Primary || n.fenced);
    TopologyView {
        store_id: detail.store.id,
        phase,
        timeline: detail.store.timeline,
        primary_node_id: primary.map(|p| p.id),
        nodes: nodes.into_iter().map(node).collect(),
        ha: HaView::of(&detail.store),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PromotionView {
    #[schema(value_type = Uuid)]
    pub id: uuid::Uuid,
    pub kind: PromotionKind,
    /// Started by the failover monitor rather than a person.
    pub automatic: bool,
    /// The timeline the promoted node writes on, once it reported it.
    pub timeline: Option<i32>,
    /// Where the new timeline forked off the old one (`X/Y`).
    pub switch_lsn: Option<String>,
    #[schema(value_type = Option<Uuid>)]
    pub from_node_id: Option<NodeId>,
    #[schema(value_type = Uuid)]
    pub to_node_id: NodeId,
    /// Bytes of WAL the old primary had written when last seen (up to a probe interval before it
    /// went) that the promoted node had not received: a lower bound, as what it wrote after that
    /// look is not known; 0 for a switchover, which loses nothing.
    pub estimated_bytes_lost: Option<i64>,
    #[schema(value_type = Option<Uuid>)]
    pub job_id: Option<JobId>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl From<PromotionRow> for PromotionView {
    fn from(p: PromotionRow) -> Self {
        Self {
            id: p.id,
            kind: p.kind,
            automatic: p.automatic,
            timeline: p.timeline,
            switch_lsn: lsn_text(p.switch_lsn),
            from_node_id: p.from_node_id,
            to_node_id: p.to_node_id,
            estimated_bytes_lost: p.lost_bytes_estimate,
            job_id: p.job_id,
            at: p.at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryList {
    /// Newest first.
    pub items: Vec<PromotionView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoreEventView {
    #[schema(value_type = Uuid)]
    pub id: uuid::Uuid,
    pub kind: EventKind,
    pub message: String,
    #[schema(value_type = Option<Uuid>)]
    pub node_id: Option<NodeId>,
    /// The person who caused it, if one did (their action is in the audit trail too).
    #[schema(value_type = Option<Uuid>)]
    pub actor_id: Option<UserId>,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl From<EventRow> for StoreEventView {
    fn from(e: EventRow) -> Self {
        Self {
            id: e.id,
            kind: e.kind,
            message: e.message,
            node_id: e.node_id,
            actor_id: e.actor_id,
            at: e.at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventList {
    /// Newest first.
    pub items: Vec<StoreEventView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HaPageQuery {
    /// `next_cursor` of the previous page.
    #[param(
        pattern = r"^-?[0-9]{1,19}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    cursor: Option<String>,
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

/// Switches the primary over to a replica, now or at `scheduled_at`: the primary stops cleanly,
/// the candidate receives everything it wrote, is promoted, the other replicas follow it and
/// the old primary rejoins as a replica. Nothing is lost; writes are refused for the moment
/// between the stop and the promotion. Without a candidate, the most advanced streaming
/// replica is chosen.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/switchover", tag = "ha",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    request_body = SwitchoverRequest,
    responses(
        (status = 202, body = JobView, headers(("Location" = String, description = "The job"))),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Refused, with its `code`: `candidate_unknown`, `candidate_is_primary`, `candidate_in_maintenance`, `candidate_not_streaming`, `candidate_timeline`, `candidate_lagging`, `no_candidate`, `no_replicas`, `no_primary`, `primary_down`, `job_in_progress`, or the store's status", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "A node cannot be asked now", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn switchover(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
    AppJson(cmd): AppJson<SwitchoverRequest>,
) -> ApiResult<Accepted<JobView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    Ok(Accepted::job(ha::switchover(&state, &meta, &ctx, &user.principal.email, store_id, &cmd).await?))
}

/// Cancels the store's scheduled switchover, one that has not started.
#[utoipa::path(
    delete, path = "/api/v1/orgs/{org_id}/stores/{store_id}/switchover", tag = "ha",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The cancelled job", body = JobView),
        (status = 404, description = "No such store for the caller, or no switchover pending", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The switchover has started", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn cancel_switchover(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
) -> ApiResult<AppJson<JobView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let job = ha::cancel_switchover(&state, &meta, &ctx, &user.principal.email, store_id).await?;
    Ok(AppJson(job.into()))
}

/// Promotes a replica because the primary is gone: the old primary is fenced first (stopped,
/// killed if it will not stop), the candidate promoted, the other replicas repointed, and the
/// old primary brought back as a replica (`pg_rewind`, or a fresh copy). Refused while the
/// primary answers, unless `force`. It does not wait for the store's other jobs.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/failover", tag = "ha",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    request_body = FailoverRequest,
    responses(
        (status = 202, body = JobView, headers(("Location" = String, description = "The job"))),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Refused, with its `code`: `primary_healthy`, `candidate_unknown`, `candidate_is_primary`, `candidate_not_streaming`, `no_primary`, `job_in_progress` (a failover is under way), or the store's status", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "A node cannot be asked now", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn failover(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
    AppJson(cmd): AppJson<FailoverRequest>,
) -> ApiResult<Accepted<JobView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    Ok(Accepted::job(ha::failover(&state, &meta, &ctx, &user.principal.email, store_id, &cmd).await?))
}

/// The primary and each replica as the failover monitor last saw them (every probe interval,
/// a second by default), and the store's HA phase.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/stores/{store_id}/topology", tag = "ha",
    security(("session" = []), ("bearer" = ["stores:read"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    responses(
        (status = 200, body = TopologyView),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn topology(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
) -> ApiResult<AppJson<TopologyView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresRead)?;
    Ok(AppJson(topology_view(ha::topology(&state, &ctx, store_id).await?)))
}

/// Every promotion of a replica, newest first: switchovers and failovers.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/stores/{store_id}/history", tag = "ha",
    security(("session" = []), ("bearer" = ["stores:read"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), HaPageQuery),
    responses(
        (status = 200, body = HistoryList),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn history(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
    AppQuery(q): AppQuery<HaPageQuery>,
) -> ApiResult<AppJson<HistoryList>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresRead)?;
    let page = PageRequest::new(q.cursor.as_deref(), q.limit, 100)?;
    let rows = ha::history(&state, &ctx, store_id, page.after, page.fetch()).await?;
    let (rows, next_cursor) = page.finish(rows, |p| (p.at, p.id));
    Ok(AppJson(HistoryList { items: rows.into_iter().map(Into::into).collect(), next_cursor }))
}

/// What happened to the store, newest first: nodes down and up, failovers, switchovers,
/// fencing, lag over the failover limit, pauses, maintenance.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/stores/{store_id}/events", tag = "ha",
    security(("session" = []), ("bearer" = ["stores:read"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), HaPageQuery),
    responses(
        (status = 200, body = EventList),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn events(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
    AppQuery(q): AppQuery<HaPageQuery>,
) -> ApiResult<AppJson<EventList>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresRead)?;
    let page = PageRequest::new(q.cursor.as_deref(), q.limit, 100)?;
    let rows = ha::events(&state, &ctx, store_id, page.after, page.fetch()).await?;
    let (rows, next_cursor) = page.finish(rows, |e| (e.at, e.id));
    Ok(AppJson(EventList { items: rows.into_iter().map(Into::into).collect(), next_cursor }))
}

/// Pauses the failover monitor for the store: a primary that dies is reported, not failed over.
/// It changes only the control database (no job). Idempotent.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/ha/pause", tag = "ha",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    responses(
        (status = 200, body = TopologyView),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn pause(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath(ids): AppPath<(OrgId, StoreId)>,
) -> ApiResult<AppJson<TopologyView>> {
    set_paused(state, meta, user, ids, true).await
}

/// Resumes the failover monitor for the store (also after the failover limit paused it).
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/ha/resume", tag = "ha",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    responses(
        (status = 200, body = TopologyView),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn resume(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath(ids): AppPath<(OrgId, StoreId)>,
) -> ApiResult<AppJson<TopologyView>> {
    set_paused(state, meta, user, ids, false).await
}

async fn set_paused(
    state: AppState,
    meta: RequestMeta,
    user: ActiveUser,
    (org_id, store_id): (OrgId, StoreId),
    paused: bool,
) -> ApiResult<AppJson<TopologyView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let t = ha::set_paused(&state, &meta, &ctx, &user.principal.email, store_id, paused).await?;
    Ok(AppJson(topology_view(t)))
}
