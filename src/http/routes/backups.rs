//! Backups: real archives with checksums, downloadable and verifiable, and restores in place
//! from a backup or to a point in time.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::audit::RequestMeta;
use crate::db::backup_schedules::ScheduleRow;
use crate::db::backups::BackupRow;
use crate::domain::{BackupId, BackupKind, BackupStatus, NodeId, OrgId, Scope, StoreId};
use crate::error::{ApiResult, Problem};
use crate::http::extract::{ActiveUser, AppJson, AppPath, AppQuery};
use crate::http::page::PageRequest;
use crate::http::respond::Accepted;
use crate::http::views::JobView;
use crate::service::backups::{
    self, CreateBackup, PutSchedule, RestoreRequest, RestoreWindow, Retention, Verification,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_backups, create_backup))
        .routes(routes!(get_backup, delete_backup))
        .routes(routes!(download_backup))
        .routes(routes!(verify_backup))
        .routes(routes!(restore_store))
        .routes(routes!(get_schedule, put_schedule))
        .routes(routes!(restore_window))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BackupView {
    #[schema(value_type = Uuid)]
    pub id: BackupId,
    #[schema(value_type = Uuid)]
    pub store_id: StoreId,
    /// `full`: a physical base backup (tar, gzip); `logical`: a `pg_dump` of every database.
    pub kind: BackupKind,
    /// `manual`, or `schedule` when the scheduler started it.
    pub trigger: String,
    pub status: BackupStatus,
    /// The node it was read from.
    #[schema(value_type = Option<Uuid>)]
    pub node_id: Option<NodeId>,
    pub size_bytes: Option<i64>,
    /// Hex SHA-256 of the archive.
    pub sha256: Option<String>,
    /// The WAL it covers.
    pub start_lsn: Option<String>,
    pub end_lsn: Option<String>,
    pub error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub finished_at: Option<OffsetDateTime>,
}

impl From<BackupRow> for BackupView {
    fn from(b: BackupRow) -> Self {
        Self {
            id: b.id,
            store_id: b.store_id,
            kind: b.kind,
            trigger: b.trigger,
            status: b.status,
            node_id: b.node_id,
            size_bytes: b.size_bytes,
            sha256: b.sha256,
            start_lsn: b.start_lsn,
            end_lsn: b.end_lsn,
            error: b.error,
            started_at: b.created_at,
            finished_at: b.finished_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BackupAccepted {
    pub backup: BackupView,
    pub job: JobView,
}

/// Takes a full backup now: 202 with the backup (`running`) and its job. Refused while the
/// organization's kept backups are at or over its quota of backup bytes.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/backups", tag = "backups",
    security(("session" = []), ("bearer" = ["backups:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    request_body = CreateBackup,
    responses(
        (status = 202, body = BackupAccepted, headers(("Location" = String, description = "The backup"))),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A job is in progress, or the store is not running", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown kind or source; or `quota_exceeded`: the organization's backups fill its quota of backup bytes", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_backup(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
    AppJson(body): AppJson<CreateBackup>,
) -> ApiResult<Accepted<BackupAccepted>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::BackupsWrite)?;
    let (backup, job) = backups::create(&state, &meta, &ctx, &user.principal.email, store_id, &body).await?;
    state.wake.notify_waiters();
    let location = format!("/api/v1/orgs/{org_id}/stores/{store_id}/backups/{}", backup.id);
    Ok(Accepted::new(BackupAccepted { backup: backup.into(), job: job.into() }, location))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BackupQuery {
    /// `next_cursor` of the previous page.
    #[param(
        pattern = r"^-?[0-9]{1,19}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    cursor: Option<String>,
    /// 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BackupList {
    /// Newest first.
    pub items: Vec<BackupView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The store's backups, newest first.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/stores/{store_id}/backups", tag = "backups",
    security(("session" = []), ("bearer" = ["backups:read"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), BackupQuery),
    responses(
        (status = 200, body = BackupList),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_backups(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
    AppQuery(q): AppQuery<BackupQuery>,
) -> ApiResult<AppJson<BackupList>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::BackupsRead)?;
    backups::store_even_deleted(&state, &ctx, store_id).await?;
    let page = PageRequest::new(q.cursor.as_deref(), q.limit, 100)?;
    let rows = backups::list(&state, &ctx, store_id, page.after, page.fetch()).await?;
    let (rows, next_cursor) = page.finish(rows, |b| (b.created_at, b.id.into()));
    Ok(AppJson(BackupList { items: rows.into_iter().map(Into::into).collect(), next_cursor }))
}

/// One backup.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/stores/{store_id}/backups/{backup_id}", tag = "backups",
    security(("session" = []), ("bearer" = ["backups:read"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), ("backup_id" = Uuid, Path)),
    responses(
        (status = 200, body = BackupView),
        (status = 404, description = "No such backup for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_backup(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath((org_id, store_id, backup_id)): AppPath<(OrgId, StoreId, BackupId)>,
) -> ApiResult<AppJson<BackupView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::BackupsRead)?;
    Ok(AppJson(backups::get(&state, &ctx, store_id, backup_id).await?.into()))
}

/// Deletes a backup and its archive.
#[utoipa::path(
    delete, path = "/api/v1/orgs/{org_id}/stores/{store_id}/backups/{backup_id}", tag = "backups",
    security(("session" = []), ("bearer" = ["backups:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), ("backup_id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such backup for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The backup is still running", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_backup(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id, backup_id)): AppPath<(OrgId, StoreId, BackupId)>,
) -> ApiResult<StatusCode> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::BackupsWrite)?;
    backups::delete(&state, &meta, &ctx, &user.principal.email, store_id, backup_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Streams the archive (`application/gzip`), with its SHA-256 in `X-Checksum-SHA256`. The
/// archive holds all the store's data and its users' password verifiers: it needs
/// `backups:download` (members and above), and every download is in the audit trail.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/stores/{store_id}/backups/{backup_id}/download", tag = "backups",
    security(("session" = []), ("bearer" = ["backups:download"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), ("backup_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The archive", content_type = "application/gzip", body = Vec<u8>, headers(("X-Checksum-SHA256" = String))),
        (status = 404, description = "No such backup for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The backup has not succeeded", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn download_backup(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id, backup_id)): AppPath<(OrgId, StoreId, BackupId)>,
) -> ApiResult<Response> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::BackupsDownload)?;
    let (b, file) =
        backups::download(&state, &meta, &ctx, &user.principal.email, store_id, backup_id).await?;
    let mut res = Body::from_stream(tokio_util::io::ReaderStream::new(file)).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/gzip"));
    if let Some(size) = b.size_bytes {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    }
    if let Some(sum) = b.sha256.as_deref().and_then(|s| HeaderValue::from_str(s).ok()) {
        h.insert("x-checksum-sha256", sum);
    }
    let disposition = format!("attachment; filename=\"backup-{backup_id}.tar.gz\"");
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&disposition).expect("ascii"));
    Ok(res)
}

/// Re-reads the archive and checks it against its checksum. It reads the whole archive from
/// disk, so it needs `backups:write`, like the other operations that cost the host work.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/backups/{backup_id}/verify", tag = "backups",
    security(("session" = []), ("bearer" = ["backups:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), ("backup_id" = Uuid, Path)),
    responses(
        (status = 200, body = Verification),
        (status = 404, description = "No such backup for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The backup has not succeeded", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn verify_backup(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath((org_id, store_id, backup_id)): AppPath<(OrgId, StoreId, BackupId)>,
) -> ApiResult<AppJson<Verification>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::BackupsWrite)?;
    Ok(AppJson(backups::verify(&state, &ctx, store_id, backup_id).await?))
}

/// Restores the store in place. From a full backup or to a point in time, the primary gets the
/// backup's data and replays archived WAL to the chosen moment, then the replicas are rebuilt
/// from it; the data replaced is kept until the restore succeeds. From a logical backup, each
/// database in it is made afresh from its dump. The store is `restoring`, then `available`.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/restore", tag = "backups",
    security(("session" = []), ("bearer" = ["backups:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    request_body = RestoreRequest,
    responses(
        (status = 202, body = JobView, headers(("Location" = String, description = "The job"))),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A job is in progress, the store is not available or degraded (`store_busy`), or the archive is corrupt", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No confirmation, no backup before that time, or a time in the future", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn restore_store(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
    AppJson(body): AppJson<RestoreRequest>,
) -> ApiResult<Accepted<JobView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::BackupsWrite)?;
    let job = backups::restore(&state, &meta, &ctx, &user.principal.email, store_id, &body).await?;
    state.wake.notify_waiters();
    Ok(Accepted::job(job))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleView {
    /// Full backups: a five-field cron expression (minute hour day-of-month month day-of-week),
    /// in UTC.
    #[schema(example = "0 3 * * *")]
    pub full_cron: String,
    /// Logical backups, likewise; none when absent.
    pub logical_cron: Option<String>,
    /// A backup goes when `count` newer backups of its kind exist or when it is older than
    /// `days`; the newest good full backup of a store stays while the store exists. Expired
    /// backups are pruned with the archived WAL no remaining backup needs.
    pub retention: Retention,
    /// Where backups are read from: `replica` (a replica when one runs) or `primary`.
    pub source: String,
    pub paused: bool,
    /// When the scheduler starts the next ones (none while it works the time out).
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_full_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_logical_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<ScheduleRow> for ScheduleView {
    fn from(s: ScheduleRow) -> Self {
        Self {
            full_cron: s.full_cron,
            logical_cron: s.logical_cron,
            retention: Retention { count: s.retention_count, days: s.retention_days },
            source: s.source,
            paused: s.paused,
            next_full_at: s.next_full_at,
            next_logical_at: s.next_logical_at,
            updated_at: s.updated_at,
        }
    }
}

/// The store's backup schedule and retention.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/stores/{store_id}/backup-schedule", tag = "backups",
    security(("session" = []), ("bearer" = ["backups:read"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    responses(
        (status = 200, body = ScheduleView),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_schedule(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
) -> ApiResult<AppJson<ScheduleView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::BackupsRead)?;
    Ok(AppJson(backups::schedule(&state, &ctx, store_id).await?.into()))
}

/// Replaces the store's backup schedule. The scheduler inside the workers starts due backups
/// (once, however many Berth instances run) and prunes those retention lets go. Each cron
/// expression must leave at least `BERTH_BACKUP_MIN_INTERVAL` (by default an hour) between two
/// backups, and a retention is required. A scheduled backup is skipped while the
/// organization's backups fill its quota.
#[utoipa::path(
    put, path = "/api/v1/orgs/{org_id}/stores/{store_id}/backup-schedule", tag = "backups",
    security(("session" = []), ("bearer" = ["backups:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    request_body = PutSchedule,
    responses(
        (status = 200, body = ScheduleView),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A cron expression that is not one or fires more often than the operator's minimum interval (the detail says why), a retention missing or out of range, or an unknown source", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn put_schedule(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
    AppJson(body): AppJson<PutSchedule>,
) -> ApiResult<AppJson<ScheduleView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::BackupsWrite)?;
    let s = backups::put_schedule(&state, &meta, &ctx, &user.principal.email, store_id, &body).await?;
    Ok(AppJson(s.into()))
}

/// The moments the store can be restored to, from its backups and its archived WAL.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/stores/{store_id}/restore-window", tag = "backups",
    security(("session" = []), ("bearer" = ["backups:read"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    responses(
        (status = 200, body = RestoreWindow),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn restore_window(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(OrgId, StoreId)>,
) -> ApiResult<AppJson<RestoreWindow>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::BackupsRead)?;
    Ok(AppJson(backups::restore_window(&state, &ctx, store_id).await?))
}
