//! Jobs: the durable record of every change to the data plane, with its steps and log.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::domain::{Ctx, JobId, OrgId, Scope, StoreId};
use crate::error::{ApiResult, Problem};
use crate::http::extract::{ActiveUser, AppJson, AppPath, AppQuery};
use crate::http::page::PageRequest;
use crate::http::views::{JobView, LogLine};
use crate::service::jobs::{self, Page};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(list_store_jobs))
        .routes(routes!(get_job))
        .routes(routes!(cancel_job))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// `next_cursor` of the previous page.
    #[param(
        pattern = r"^-?[0-9]{1,19}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    cursor: Option<String>,
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    /// Newest first.
    pub items: Vec<JobView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

async fn page(state: &AppState, ctx: &Ctx, store: Option<StoreId>, q: JobQuery) -> ApiResult<JobList> {
    let page = PageRequest::new(q.cursor.as_deref(), q.limit, 100)?;
    let rows = jobs::list(state, ctx, store, Page { after: page.after, fetch: page.fetch() }).await?;
    let (rows, next_cursor) = page.finish(rows, |j| (j.created_at, j.id.into()));
    Ok(JobList { items: rows.into_iter().map(Into::into).collect(), next_cursor })
}

/// The organization's jobs, newest first.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/jobs", tag = "jobs",
    security(("session" = []), ("bearer" = ["stores:read"])),
    params(("org_id" = Uuid, Path), JobQuery),
    responses(
        (status = 200, body = JobList),
    )
)]
async fn list_jobs(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath(org_id): AppPath<OrgId>,
    AppQuery(q): AppQuery<JobQuery>,
) -> ApiResult<AppJson<JobList>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresRead)?;
    Ok(AppJson(page(&state, &ctx, None, q).await?))
}

/// One store's jobs, newest first.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/stores/{store_id}/jobs", tag = "jobs",
    security(("session" = []), ("bearer" = ["stores:read"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), JobQuery),
    responses(
        (status = 200, body = JobList),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_store_jobs(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
    AppQuery(q): AppQuery<JobQuery>,
) -> ApiResult<AppJson<JobList>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresRead)?;
    Ok(AppJson(page(&state, &ctx, Some(store_id), q).await?))
}

/// One job, with its steps and log.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/jobs/{job_id}", tag = "jobs",
    security(("session" = []), ("bearer" = ["stores:read"])),
    params(("org_id" = Uuid, Path), ("job_id" = Uuid, Path)),
    responses(
        (status = 200, body = JobView),
        (status = 404, description = "No such job for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_job(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath((org_id, job_id)): AppPath<(OrgId, JobId)>,
) -> ApiResult<AppJson<JobView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresRead)?;
    let (job, log) = jobs::get(&state, &ctx, job_id).await?;
    let mut view = JobView::from(job);
    view.log =
        Some(log.into_iter().map(|l| LogLine { at: l.at, level: l.level, message: l.message }).collect());
    Ok(AppJson(view))
}

/// Cancels a job that has not started yet; what it was to change is left as it was. A job that
/// has begun, or whose first attempt failed (and so already acted on the host), runs to its
/// end (its steps are not safe to interrupt): 409.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/jobs/{job_id}/cancel", tag = "jobs",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("job_id" = Uuid, Path)),
    responses(
        (status = 200, body = JobView),
        (status = 404, description = "No such job for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The job has started or ended", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn cancel_job(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, job_id)): AppPath<(OrgId, JobId)>,
) -> ApiResult<AppJson<JobView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let job = jobs::cancel(&state, &meta, &ctx, &user.principal.email, job_id).await?;
    Ok(AppJson(job.into()))
}
