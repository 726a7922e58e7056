//! A store's statistics, as sampled from its nodes by the collector.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::domain::{NodeId, OrgId, Scope, StoreId};
use crate::error::{ApiResult, Problem};
use crate::http::extract::{ActiveUser, AppJson, AppPath, AppQuery};
use crate::service::stats::{self, SeriesRequest};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(series)).routes(routes!(summary))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SeriesQuery {
    /// One of: connections, xact_commit, xact_rollback, tup_fetched, tup_inserted, tup_updated,
    /// tup_deleted, db_size_bytes, cache_hit_ratio, replication_lag_bytes. Counters are
    /// cumulative since the node started.
    #[param(
        pattern = "^(connections|xact_commit|xact_rollback|tup_fetched|tup_inserted|tup_updated|tup_deleted|db_size_bytes|cache_hit_ratio|replication_lag_bytes)$"
    )]
    metric: String,
    /// Start (RFC 3339); default an hour before `to`.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    from: Option<OffsetDateTime>,
    /// End (RFC 3339); default now.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[param(value_type = Option<String>, format = DateTime)]
    to: Option<OffsetDateTime>,
    /// Bucket width in seconds (default 60; at most 1,000 buckets).
    #[param(minimum = 1)]
    step: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SeriesPoint {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub avg: Option<f64>,
    pub max: Option<f64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeSeries {
    #[schema(value_type = Uuid)]
    pub node_id: NodeId,
    pub points: Vec<SeriesPoint>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Series {
    pub metric: String,
    pub step: i64,
    pub items: Vec<NodeSeries>,
}

/// One metric per node, aggregated to `step`-second buckets (average and maximum).
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/stores/{store_id}/stats", tag = "stats",
    security(("session" = []), ("bearer" = ["stores:read"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), SeriesQuery),
    responses(
        (status = 200, body = Series),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown metric, or a bad range or step", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn series(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
    AppQuery(q): AppQuery<SeriesQuery>,
) -> ApiResult<AppJson<Series>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresRead)?;
    let request = SeriesRequest { metric: &q.metric, from: q.from, to: q.to, step: q.step };
    let (by_node, step) = stats::series(&state, &ctx, store_id, &request).await?;
    let items = by_node
        .into_iter()
        .map(|(node_id, points)| NodeSeries {
            node_id,
            points: points
                .into_iter()
                .map(|p| SeriesPoint { at: p.bucket, avg: p.avg, max: p.max })
                .collect(),
        })
        .collect();
    Ok(AppJson(Series { metric: q.metric, step, items }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeSummary {
    #[schema(value_type = Uuid)]
    pub node_id: NodeId,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub connections: i64,
    pub xact_commit: i64,
    pub xact_rollback: i64,
    pub tup_fetched: i64,
    pub tup_inserted: i64,
    pub tup_updated: i64,
    pub tup_deleted: i64,
    pub db_size_bytes: i64,
    pub cache_hit_ratio: Option<f64>,
    pub replication_lag_bytes: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Summary {
    pub items: Vec<NodeSummary>,
}

/// The latest sample of every node.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/stores/{store_id}/stats/summary", tag = "stats",
    security(("session" = []), ("bearer" = ["stores:read"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    responses(
        (status = 200, body = Summary),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn summary(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
) -> ApiResult<AppJson<Summary>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresRead)?;
    let items = stats::summary(&state, &ctx, store_id)
        .await?
        .into_iter()
        .map(|l| NodeSummary {
            node_id: l.node_id,
            at: l.at,
            connections: l.connections,
            xact_commit: l.xact_commit,
            xact_rollback: l.xact_rollback,
            tup_fetched: l.tup_fetched,
            tup_inserted: l.tup_inserted,
            tup_updated: l.tup_updated,
            tup_deleted: l.tup_deleted,
            db_size_bytes: l.db_size_bytes,
            cache_hit_ratio: l.cache_hit_ratio,
            replication_lag_bytes: l.replication_lag_bytes,
        })
        .collect();
    Ok(AppJson(Summary { items }))
}
