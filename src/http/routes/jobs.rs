//! Jobs: the durable record of every change to the data plane, with its steps and log.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::{Event, RequestMeta};
use crate::db;
use crate::db::jobs::JobRow;
use crate::domain::{JobStatus, Scope};
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{ActiveUser, AppJson, AppPath, AppQuery};
use crate::http::routes::stores::decode_cursor;
use crate::jobs;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_jobs))
        .routes(routes!(list_store_jobs))
        .routes(routes!(get_job))
        .routes(routes!(cancel_job))
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StepView {
    pub name: String,
    pub state: StepState,
}

/// Where one step of a job stands: read from the job's status and the index of its next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    Done,
    Running,
    Pending,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogLine {
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub level: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobView {
    pub id: Uuid,
    /// `create_store`, `delete_store`, `add_node`, `remove_node`, `restart_node`,
    /// `repair_store`, `resize_store`.
    pub kind: String,
    pub status: JobStatus,
    pub store_id: Option<Uuid>,
    /// Steps done, as a percentage of all steps.
    pub progress: u8,
    pub steps: Vec<StepView>,
    pub attempts: i32,
    pub max_attempts: i32,
    /// Why the last attempt failed (and, for a failed job, why it gave up).
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub started_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
    /// Only on `GET .../jobs/{job_id}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<Vec<LogLine>>,
}

impl From<JobRow> for JobView {
    fn from(j: JobRow) -> Self {
        let done = usize::try_from(j.step).unwrap_or(0);
        let total = j.steps.len().max(1);
        let steps = j
            .steps
            .iter()
            .enumerate()
            .map(|(i, name)| StepView {
                name: name.clone(),
                state: if i < done {
                    StepState::Done
                } else if i == done && j.status == JobStatus::Running {
                    StepState::Running
                } else {
                    StepState::Pending
                },
            })
            .collect();
        let progress = if j.status == JobStatus::Succeeded { 100 } else { (done * 100 / total) as u8 };
        Self {
            id: j.id,
            kind: j.kind,
            status: j.status,
            store_id: j.store_id,
            progress,
            steps,
            attempts: j.attempts,
            max_attempts: j.max_attempts,
            error: j.error,
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
            log: None,
        }
    }
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

async fn page(
    state: &AppState,
    ctx: &crate::domain::Ctx,
    store: Option<Uuid>,
    q: JobQuery,
) -> ApiResult<JobList> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::field("limit", "must be 1 to 100"));
    }
    let before = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let mut rows = db::jobs::list(&state.db, ctx, store, before, limit + 1).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|j| format!("{}_{}", j.created_at.unix_timestamp_nanos(), j.id))
    } else {
        None
    };
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
    AppPath(org_id): AppPath<Uuid>,
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
    AppPath((org_id, store_id)): AppPath<(Uuid, Uuid)>,
    AppQuery(q): AppQuery<JobQuery>,
) -> ApiResult<AppJson<JobList>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresRead)?;
    db::stores::get(&state.db, &ctx, store_id).await?.ok_or(ApiError::not_found("store"))?;
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
    AppPath((org_id, job_id)): AppPath<(Uuid, Uuid)>,
) -> ApiResult<AppJson<JobView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresRead)?;
    let job = db::jobs::get(&state.db, &ctx, job_id).await?.ok_or(ApiError::not_found("job"))?;
    let log = db::jobs::logs(&state.db, &ctx, job_id).await?;
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
    AppPath((org_id, job_id)): AppPath<(Uuid, Uuid)>,
) -> ApiResult<AppJson<JobView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let found = db::jobs::get(&mut *tx, &ctx, job_id).await?.ok_or(ApiError::not_found("job"))?;
    if !jobs::cancellable(&found.kind) {
        return Err(ApiError::conflict(
            "not_cancellable",
            format!("a {} job cannot be cancelled", found.kind),
        ));
    }
    let Some(job) = db::jobs::cancel_queued(&mut *tx, &ctx, job_id, now).await? else {
        let job = db::jobs::get(&mut *tx, &ctx, job_id).await?.ok_or(ApiError::not_found("job"))?;
        let why = if job.status == JobStatus::Queued && job.attempts > 0 {
            // Its failed attempt may have made servers or folders that only its retry finishes
            // or its own failure handling removes: cancelling now would leave them orphaned.
            format!(
                "the job's attempt {} already acted on the host and failed; it will be retried \
                 (see its error), and cannot be cancelled half-done",
                job.attempts
            )
        } else {
            format!(
                "the job is {} at step {}; only a job that has not started can be cancelled",
                job.status, job.step
            )
        };
        return Err(ApiError::conflict("not_cancellable", why));
    };
    jobs::undo_cancelled(&mut tx, &job, now).await?;
    Event::new("job.cancelled", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("job:{job_id}"))
        .detail("kind", &job.kind)
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    Ok(AppJson(job.into()))
}
