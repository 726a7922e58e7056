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
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::{Event, RequestMeta};
use crate::db;
use crate::db::backups::BackupRow;
use crate::domain::{Ctx, Scope};
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{ActiveUser, AppJson, AppPath, AppQuery};
use crate::http::routes::jobs::JobView;
use crate::http::routes::stores::{decode_cursor, enqueue};
use crate::jobs::{self, step};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_backups, create_backup))
        .routes(routes!(get_backup, delete_backup))
        .routes(routes!(download_backup))
        .routes(routes!(verify_backup))
        .routes(routes!(restore_store))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BackupView {
    pub id: Uuid,
    pub store_id: Uuid,
    /// `full`: a physical base backup (tar, gzip).
    pub kind: String,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// The node it was read from.
    pub node_id: Option<Uuid>,
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

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBackup {
    /// `full` (a physical base backup). Logical dumps are not offered yet.
    #[schema(example = "full")]
    pub kind: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BackupAccepted {
    pub backup: BackupView,
    pub job: JobView,
}

/// Takes a full backup now: 202 with the backup (`running`) and its job.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/backups", tag = "backups",
    security(("session" = []), ("bearer" = ["backups:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    request_body = CreateBackup,
    responses(
        (status = 202, body = BackupAccepted),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not allowed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A job is in progress, or the store is not running", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Unknown kind", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn create_backup(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(Uuid, Uuid)>,
    AppJson(body): AppJson<CreateBackup>,
) -> ApiResult<(StatusCode, AppJson<BackupAccepted>)> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::BackupsWrite)?;
    if body.kind != "full" {
        return Err(ApiError::field("kind", "must be full (logical backups are not offered yet)"));
    }
    let mut tx = state.db.begin().await?;
    let store =
        db::stores::get_for_update(&mut tx, &ctx, store_id).await?.ok_or(ApiError::NotFound("store"))?;
    if !matches!(store.status.as_str(), "available" | "degraded" | "modifying") {
        return Err(ApiError::conflict("store_busy", format!("the store is {}", store.status)));
    }
    let id = Uuid::now_v7();
    let now = state.clock.now();
    db::backups::insert(&mut *tx, &ctx, id, store_id, "full", now).await?;
    let job =
        enqueue(&mut tx, &state, &ctx, store_id, jobs::BACKUP, vec![step::on(step::TAKE_BACKUP, id)]).await?;
    Event::new("backup.started", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("store:{store_id}"))
        .detail("backup", id)
        .record_in(&mut tx, now)
        .await?;
    let backup = db::backups::get(&mut *tx, &ctx, store_id, id).await?.ok_or(ApiError::NotFound("backup"))?;
    tx.commit().await?;
    state.wake.notify_waiters();
    Ok((StatusCode::ACCEPTED, AppJson(BackupAccepted { backup: backup.into(), job: job.into() })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BackupQuery {
    cursor: Option<String>,
    /// 1 to 100 (default 50).
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BackupList {
    /// Newest first.
    pub items: Vec<BackupView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

async fn store_of(state: &AppState, ctx: &Ctx, store_id: Uuid) -> ApiResult<db::stores::StoreRow> {
    db::stores::get(&state.db, ctx, store_id).await?.ok_or(ApiError::NotFound("store"))
}

/// The store's backups, newest first.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/stores/{store_id}/backups", tag = "backups",
    security(("session" = []), ("bearer" = ["backups:read"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), BackupQuery),
    responses(
        (status = 200, body = BackupList),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not allowed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_backups(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(Uuid, Uuid)>,
    AppQuery(q): AppQuery<BackupQuery>,
) -> ApiResult<AppJson<BackupList>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::BackupsRead)?;
    store_of(&state, &ctx, store_id).await?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::field("limit", "must be 1 to 100"));
    }
    let before = q.cursor.as_deref().map(decode_cursor).transpose()?;
    let mut rows = db::backups::list(&state.db, &ctx, store_id, before, limit + 1).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|b| format!("{}_{}", b.created_at.unix_timestamp_nanos(), b.id))
    } else {
        None
    };
    Ok(AppJson(BackupList { items: rows.into_iter().map(Into::into).collect(), next_cursor }))
}

/// One backup.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/stores/{store_id}/backups/{backup_id}", tag = "backups",
    security(("session" = []), ("bearer" = ["backups:read"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), ("backup_id" = Uuid, Path)),
    responses(
        (status = 200, body = BackupView),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not allowed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such backup for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_backup(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath((org_id, store_id, backup_id)): AppPath<(Uuid, Uuid, Uuid)>,
) -> ApiResult<AppJson<BackupView>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::BackupsRead)?;
    let b =
        db::backups::get(&state.db, &ctx, store_id, backup_id).await?.ok_or(ApiError::NotFound("backup"))?;
    Ok(AppJson(b.into()))
}

/// Deletes a backup and its archive.
#[utoipa::path(
    delete, path = "/api/v1/orgs/{org_id}/stores/{store_id}/backups/{backup_id}", tag = "backups",
    security(("session" = []), ("bearer" = ["backups:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), ("backup_id" = Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not allowed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such backup for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The backup is still running", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_backup(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id, backup_id)): AppPath<(Uuid, Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::BackupsWrite)?;
    let b =
        db::backups::get(&state.db, &ctx, store_id, backup_id).await?.ok_or(ApiError::NotFound("backup"))?;
    if b.status == "running" {
        return Err(ApiError::conflict("backup_running", "the backup is still running"));
    }
    let mut tx = state.db.begin().await?;
    db::backups::delete(&mut *tx, &ctx, store_id, backup_id).await?;
    Event::new("backup.deleted", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("store:{store_id}"))
        .detail("backup", backup_id)
        .record_in(&mut tx, state.clock.now())
        .await?;
    tx.commit().await?;
    if let Some(key) = &b.location {
        state.plane.backups.delete(key).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn archive_of(
    state: &AppState,
    ctx: &Ctx,
    store_id: Uuid,
    backup_id: Uuid,
) -> ApiResult<(BackupRow, std::path::PathBuf)> {
    let b =
        db::backups::get(&state.db, ctx, store_id, backup_id).await?.ok_or(ApiError::NotFound("backup"))?;
    if b.status != "succeeded" {
        return Err(ApiError::conflict("backup_not_ready", format!("the backup is {}", b.status)));
    }
    let key = b.location.clone().ok_or_else(|| anyhow::anyhow!("a succeeded backup without an archive"))?;
    Ok((b, state.plane.backups.path(&key)?))
}

/// Streams the archive (`application/gzip`), with its SHA-256 in `X-Checksum-SHA256`.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/stores/{store_id}/backups/{backup_id}/download", tag = "backups",
    security(("session" = []), ("bearer" = ["backups:read"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), ("backup_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The archive", content_type = "application/gzip", body = Vec<u8>, headers(("X-Checksum-SHA256" = String))),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not allowed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such backup for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The backup has not succeeded", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn download_backup(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id, backup_id)): AppPath<(Uuid, Uuid, Uuid)>,
) -> ApiResult<Response> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::BackupsRead)?;
    let (b, path) = archive_of(&state, &ctx, store_id, backup_id).await?;
    let file =
        tokio::fs::File::open(&path).await.map_err(|e| anyhow::anyhow!("opening {}: {e}", path.display()))?;
    Event::new("backup.downloaded", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("store:{store_id}"))
        .detail("backup", backup_id)
        .record(&state.db, state.clock.now())
        .await?;
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

#[derive(Debug, Serialize, ToSchema)]
pub struct Verification {
    /// The archive on disk matches the checksum taken when it was made.
    pub valid: bool,
    pub expected_sha256: Option<String>,
    pub actual_sha256: Option<String>,
    pub size_bytes: Option<u64>,
}

/// Re-reads the archive and checks it against its checksum.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/backups/{backup_id}/verify", tag = "backups",
    security(("session" = []), ("bearer" = ["backups:read"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), ("backup_id" = Uuid, Path)),
    responses(
        (status = 200, body = Verification),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not allowed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such backup for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The backup has not succeeded", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn verify_backup(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath((org_id, store_id, backup_id)): AppPath<(Uuid, Uuid, Uuid)>,
) -> ApiResult<AppJson<Verification>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::BackupsRead)?;
    let (b, path) = archive_of(&state, &ctx, store_id, backup_id).await?;
    let (size, actual) = match crate::backup::checksum(&path).await {
        Ok((s, a)) => (Some(s), Some(a)),
        Err(_) => (None, None),
    };
    Ok(AppJson(Verification {
        valid: actual.is_some() && actual == b.sha256,
        expected_sha256: b.sha256,
        actual_sha256: actual,
        size_bytes: size,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// Restore this backup, to the moment it finished.
    pub backup_id: Option<Uuid>,
    /// Restore to this moment (RFC 3339), from the newest backup before it and the archived WAL.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub point_in_time: Option<OffsetDateTime>,
    /// The store's name, to confirm: a restore replaces its data.
    pub confirm: String,
}

/// Restores the store in place: the primary gets the backup's data and replays archived WAL to
/// the chosen moment, then the replicas are rebuilt from it. The store is `restoring`, then
/// `available`. The data replaced is kept until the restore succeeds.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/restore", tag = "backups",
    security(("session" = []), ("bearer" = ["backups:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    request_body = RestoreRequest,
    responses(
        (status = 202, body = JobView),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not allowed", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A job is in progress, or the archive is corrupt", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No confirmation, no backup before that time, or a time in the future", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn restore_store(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(Uuid, Uuid)>,
    AppJson(body): AppJson<RestoreRequest>,
) -> ApiResult<(StatusCode, AppJson<JobView>)> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::BackupsWrite)?;
    let store = store_of(&state, &ctx, store_id).await?;
    if body.confirm != store.name {
        return Err(ApiError::field("confirm", "must be the store's name: a restore replaces its data"));
    }
    let now = state.clock.now();
    let backup = match (body.backup_id, body.point_in_time) {
        (Some(id), None) => db::backups::get(&state.db, &ctx, store_id, id)
            .await?
            .filter(|b| b.status == "succeeded")
            .ok_or_else(|| ApiError::field("backup_id", "no succeeded backup of this store has that id"))?,
        (None, Some(t)) => {
            if t > now {
                return Err(ApiError::field("point_in_time", "is in the future"));
            }
            db::backups::latest_full_before(&state.db, &ctx, store_id, t).await?.ok_or_else(|| {
                ApiError::field("point_in_time", "no backup of this store finished before that time")
            })?
        }
        _ => return Err(ApiError::field("backup_id", "give backup_id or point_in_time, one of them")),
    };
    let (_, path) = archive_of(&state, &ctx, store_id, backup.id).await?;
    let (_, actual) = crate::backup::checksum(&path)
        .await
        .map_err(|e| ApiError::conflict("backup_corrupt", format!("{e:#}")))?;
    if Some(&actual) != backup.sha256.as_ref() {
        return Err(ApiError::conflict(
            "backup_corrupt",
            format!(
                "the archive of backup {} does not match its checksum; restore another backup",
                backup.id
            ),
        ));
    }
    let mut tx = state.db.begin().await?;
    let store =
        db::stores::get_for_update(&mut tx, &ctx, store_id).await?.ok_or(ApiError::NotFound("store"))?;
    let mut nodes = db::stores::nodes(&mut *tx, ctx.org_id, &[store_id]).await?;
    nodes.sort_by_key(|n| n.role != "primary");
    let mut steps = vec![];
    for n in &nodes {
        let name = if n.role == "primary" { step::RESTORE_NODE } else { step::REBUILD_NODE };
        steps.push(step::on(name, n.id));
    }
    steps.push(step::FINISH_AVAILABLE.into());
    let job_id = Uuid::now_v7();
    let params = serde_json::json!({
        "backup_id": backup.id,
        "point_in_time": body.point_in_time.map(|t| t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()),
    });
    db::jobs::insert(
        &mut *tx,
        &ctx,
        db::jobs::NewJob {
            id: job_id,
            store_id: Some(store_id),
            kind: jobs::RESTORE,
            params,
            steps: &steps,
            created_by: Some(ctx.user_id),
            now,
        },
    )
    .await
    .map_err(|e| {
        crate::error::on_constraint(e, |c| {
            (c == "jobs_one_active_per_store").then(|| {
                ApiError::conflict(
                    "job_in_progress",
                    "a job is in progress on this store; wait for it to finish",
                )
            })
        })
    })?;
    db::stores::set_status(&mut *tx, ctx.org_id, store_id, "restoring", now).await?;
    Event::new("store.restore_started", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("store:{}", store.id))
        .detail("backup", backup.id)
        .detail("point_in_time", body.point_in_time.map(|t| t.unix_timestamp()))
        .record_in(&mut tx, now)
        .await?;
    let job = db::jobs::get(&mut *tx, &ctx, job_id).await?.ok_or(ApiError::NotFound("job"))?;
    tx.commit().await?;
    state.wake.notify_waiters();
    Ok((StatusCode::ACCEPTED, AppJson(job.into())))
}
