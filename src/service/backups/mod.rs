//! Backups: taking one (a manual backup's kind, source and the store's state), reading,
//! verifying, downloading and deleting them, restoring a store in place, its schedule; the
//! backups restores and forks start from (the one named or the newest before a moment, and only
//! with an archive that matches its checksum); and the window of moments a store can be
//! restored to.

mod window;

pub use window::{Gap, RestoreWindow, window};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::{Event, RequestMeta};
use crate::db;
use crate::db::backup_schedules::ScheduleRow;
use crate::db::backups::BackupRow;
use crate::db::jobs::JobRow;
use crate::db::stores::StoreRow;
use crate::domain::{
    BackupId, BackupKind, BackupStatus, Ctx, Error, NodeRole, NodeState, Result, StoreId, StoreOperation,
    StoreStatus,
};
use crate::jobs::kinds::{self, RestoreParams};
use crate::jobs::schedule::{NewBackup, Started};
use crate::jobs::{self, Step};
use crate::service::jobs::{Enqueue, busy, enqueue};

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBackup {
    /// `full`: a physical base backup, restorable in place, to a point in time, or into a new
    /// store; `logical`: a `pg_dump` of every database, restorable in place or into a new store
    /// of any version.
    #[schema(example = "full", pattern = "^(full|logical)$")]
    pub kind: String,
    /// `replica` (a replica when one runs, else the primary) or `primary`. Default: the
    /// schedule's `source`.
    #[schema(pattern = "^(primary|replica)$")]
    pub source: Option<String>,
}

/// What a backup is: `full` or `logical`.
pub fn kind(s: &str) -> Result<BackupKind> {
    match s {
        "full" => Ok(BackupKind::Full),
        "logical" => Ok(BackupKind::Logical),
        _ => Err(Error::field("kind", "must be full or logical")),
    }
}

/// A store of the context's organization that is not deleted.
pub async fn store_of(state: &AppState, ctx: &Ctx, store_id: StoreId) -> Result<StoreRow> {
    db::stores::get(&state.db, ctx, store_id).await?.ok_or(Error::NotFound("store"))
}

/// A store of the context's organization, deleted or not: backups outlive their store, so that
/// a mistaken delete can be undone.
pub async fn store_even_deleted(state: &AppState, ctx: &Ctx, store_id: StoreId) -> Result<StoreRow> {
    db::stores::get_by_id(&state.db, ctx.org_id, store_id).await?.ok_or(Error::NotFound("store"))
}

/// Takes a backup now, of a store whose status allows it, from the source asked for or the
/// schedule's; refused while the organization's backups fill its quota. Returns the backup
/// (`running`) and its job.
pub async fn create(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    store_id: StoreId,
    cmd: &CreateBackup,
) -> Result<(BackupRow, JobRow)> {
    let backup_kind = kind(&cmd.kind)?;
    if let Some(s) = &cmd.source {
        source(s)?;
    }
    let mut tx = state.db.begin().await?;
    let store = db::stores::get_for_update(&mut tx, ctx, store_id).await?.ok_or(Error::NotFound("store"))?;
    store.status.check(StoreOperation::TakeBackup)?;
    let source = match &cmd.source {
        Some(s) => s.clone(),
        None => db::backup_schedules::get(&mut *tx, ctx, store_id)
            .await?
            .map_or_else(|| "replica".to_owned(), |s| s.source),
    };
    let now = state.clock.now();
    let backup = NewBackup {
        org_id: ctx.org_id,
        store_id,
        kind: backup_kind,
        trigger: "manual",
        source: &source,
        created_by: Some(ctx.user_id),
        now,
    };
    let (id, job) = match jobs::schedule::start_backup(&mut tx, &state.plane.quotas, backup).await? {
        Started::Backup { backup_id, job } => (backup_id, *job),
        Started::Busy(active) => return Err(busy(active.as_deref())),
        Started::OverQuota(over) => return Err(Error::QuotaExceeded(over)),
    };
    Event::new("backup.started", meta)
        .in_ctx(ctx, actor)
        .target(format!("store:{store_id}"))
        .detail("backup", id)
        .detail("kind", &cmd.kind)
        .record_in(&mut tx, now)
        .await?;
    let backup = db::backups::get(&mut *tx, ctx, store_id, id).await?.ok_or(Error::NotFound("backup"))?;
    tx.commit().await?;
    Ok((backup, job))
}

/// A page of the store's backups (deleted or not), newest first, after `after`.
pub async fn list(
    state: &AppState,
    ctx: &Ctx,
    store_id: StoreId,
    after: Option<(OffsetDateTime, Uuid)>,
    fetch: i64,
) -> Result<Vec<BackupRow>> {
    Ok(db::backups::list(&state.db, ctx, store_id, after, fetch).await?)
}

pub async fn get(state: &AppState, ctx: &Ctx, store_id: StoreId, backup_id: BackupId) -> Result<BackupRow> {
    db::backups::get(&state.db, ctx, store_id, backup_id).await?.ok_or(Error::NotFound("backup"))
}

/// Deletes a backup that is not running, and then its archive.
pub async fn delete(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    store_id: StoreId,
    backup_id: BackupId,
) -> Result<()> {
    let b = get(state, ctx, store_id, backup_id).await?;
    if b.status == BackupStatus::Running {
        return Err(Error::conflict("backup_running", "the backup is still running"));
    }
    let mut tx = state.db.begin().await?;
    db::backups::delete(&mut *tx, ctx, store_id, backup_id).await?;
    Event::new("backup.deleted", meta)
        .in_ctx(ctx, actor)
        .target(format!("store:{store_id}"))
        .detail("backup", backup_id)
        .record_in(&mut tx, state.clock.now())
        .await?;
    tx.commit().await?;
    if let Some(key) = &b.location {
        state.plane.backups.delete(key).await?;
    }
    Ok(())
}

/// A succeeded backup's archive, opened for the caller to read, the download in the audit trail.
pub async fn download(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    store_id: StoreId,
    backup_id: BackupId,
) -> Result<(BackupRow, tokio::fs::File)> {
    let (b, path) = archive_of(state, ctx, store_id, backup_id).await?;
    let file =
        tokio::fs::File::open(&path).await.map_err(|e| anyhow::anyhow!("opening {}: {e}", path.display()))?;
    Event::new("backup.downloaded", meta)
        .in_ctx(ctx, actor)
        .target(format!("store:{store_id}"))
        .detail("backup", backup_id)
        .record(&state.db, state.clock.now())
        .await?;
    Ok((b, file))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Verification {
    /// The archive on disk matches the checksum taken when it was made.
    pub valid: bool,
    pub expected_sha256: Option<String>,
    pub actual_sha256: Option<String>,
    pub size_bytes: Option<u64>,
}

/// Reads a succeeded backup's whole archive again and compares it with its checksum.
pub async fn verify(
    state: &AppState,
    ctx: &Ctx,
    store_id: StoreId,
    backup_id: BackupId,
) -> Result<Verification> {
    let (b, path) = archive_of(state, ctx, store_id, backup_id).await?;
    let (size, actual) = match crate::backup::checksum(&path).await {
        Ok((s, a)) => (Some(s), Some(a)),
        Err(_) => (None, None),
    };
    Ok(Verification {
        valid: actual.is_some() && actual == b.sha256,
        expected_sha256: b.sha256,
        actual_sha256: actual,
        size_bytes: size,
    })
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// Restore this backup, to the moment it finished.
    #[schema(value_type = Option<Uuid>)]
    pub backup_id: Option<BackupId>,
    /// Restore to this moment (RFC 3339), from the newest backup before it and the archived WAL.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub point_in_time: Option<OffsetDateTime>,
    /// The store's name, to confirm: a restore replaces its data.
    pub confirm: String,
}

/// What a restore from a backup of `kind` does on each node, primary first: the primary is
/// restored; a physical restore replaces its history, so the replicas are made again from it,
/// while they stream what a logical restore writes.
pub fn restore_steps(nodes: &mut [db::stores::NodeRow], kind: BackupKind) -> Vec<Step> {
    nodes.sort_by_key(|n| n.role != NodeRole::Primary);
    let mut steps = vec![];
    for n in nodes.iter() {
        match (n.role, kind) {
            (NodeRole::Primary, _) => steps.push(Step::RestoreNode(n.id)),
            (_, BackupKind::Logical) => {}
            _ => steps.push(Step::RebuildNode(n.id)),
        }
    }
    steps.push(Step::FinishAvailable);
    steps
}

/// Restores a store in place, confirmed by its name, from a backup or to a point in time within
/// its window: the store is `restoring` until the job ends.
pub async fn restore(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    store_id: StoreId,
    cmd: &RestoreRequest,
) -> Result<JobRow> {
    let store = store_of(state, ctx, store_id).await?;
    if cmd.confirm != store.name {
        return Err(Error::field("confirm", "must be the store's name: a restore replaces its data"));
    }
    // Before reading the archive (its checksum is a read of all of it); again under the lock.
    store.status.check(StoreOperation::Restore)?;
    let now = state.clock.now();
    let backup = resolve_backup(state, ctx, store_id, cmd.backup_id, cmd.point_in_time, "").await?;
    let mut tx = state.db.begin().await?;
    let store = db::stores::get_for_update(&mut tx, ctx, store_id).await?.ok_or(Error::NotFound("store"))?;
    store.status.check(StoreOperation::Restore)?;
    let mut nodes = db::stores::nodes(&mut *tx, ctx.org_id, &[store_id]).await?;
    let steps = restore_steps(&mut nodes, backup.kind);
    let params = RestoreParams { backup_id: backup.id, point_in_time: cmd.point_in_time };
    let job = enqueue(&mut tx, state, ctx, Enqueue::typed::<kinds::Restore>(store_id, params, steps)).await?;
    db::stores::set_status(&mut *tx, ctx.org_id, store_id, StoreStatus::Restoring, now).await?;
    Event::new("store.restore_started", meta)
        .in_ctx(ctx, actor)
        .target(format!("store:{}", store.id))
        .detail("backup", backup.id)
        .detail("point_in_time", cmd.point_in_time.map(|t| t.unix_timestamp()))
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    Ok(job)
}

/// The store's backup schedule (a store, not deleted, always has one).
pub async fn schedule(state: &AppState, ctx: &Ctx, store_id: StoreId) -> Result<ScheduleRow> {
    db::backup_schedules::get(&state.db, ctx, store_id).await?.ok_or(Error::NotFound("store"))
}

/// The restore window of a store (deleted or not), from its full backups and archived WAL, up
/// to now while its primary runs.
pub async fn restore_window(state: &AppState, ctx: &Ctx, store_id: StoreId) -> Result<RestoreWindow> {
    let store = store_even_deleted(state, ctx, store_id).await?;
    let fulls = db::backups::succeeded_full(&state.db, ctx, store_id).await?;
    let segments = state.plane.backups.wal_segments(store_id).await?;
    let nodes = db::stores::nodes(&state.db, ctx.org_id, &[store_id]).await?;
    let running = store.status != StoreStatus::Deleted
        && nodes.iter().any(|n| n.role == NodeRole::Primary && n.state == NodeState::Running);
    Ok(window(&fulls, &segments, running.then(|| state.clock.now())))
}

/// A succeeded backup of the store, and where its archive can be read.
pub async fn archive_of(
    state: &AppState,
    ctx: &Ctx,
    store_id: StoreId,
    backup_id: BackupId,
) -> Result<(BackupRow, std::path::PathBuf)> {
    let b = db::backups::get(&state.db, ctx, store_id, backup_id).await?.ok_or(Error::NotFound("backup"))?;
    if b.status != BackupStatus::Succeeded {
        return Err(Error::conflict("backup_not_ready", format!("the backup is {}", b.status)));
    }
    let key = b.location.clone().ok_or_else(|| anyhow::anyhow!("a succeeded backup without an archive"))?;
    let path = state.plane.backups.readable(&key).await?;
    Ok((b, path))
}

/// The backup a restore of `store_id` starts from: the one named, or the newest full backup
/// before `point_in_time`; refused when its archive does not match its checksum. `field` prefixes
/// the names of the fields in errors (`restore_from.`).
pub async fn resolve_backup(
    state: &AppState,
    ctx: &Ctx,
    store_id: StoreId,
    backup_id: Option<BackupId>,
    point_in_time: Option<OffsetDateTime>,
    field: &str,
) -> Result<BackupRow> {
    let backup = match (backup_id, point_in_time) {
        (Some(id), None) => db::backups::get(&state.db, ctx, store_id, id)
            .await?
            .filter(|b| b.status == BackupStatus::Succeeded)
            .ok_or_else(|| {
                Error::field(format!("{field}backup_id"), "no succeeded backup of this store has that id")
            })?,
        (None, Some(t)) => {
            if t > state.clock.now() {
                return Err(Error::field(format!("{field}point_in_time"), "is in the future"));
            }
            db::backups::latest_full_before(&state.db, ctx, store_id, t).await?.ok_or_else(|| {
                Error::field(
                    format!("{field}point_in_time"),
                    "no full backup of this store finished before that time",
                )
            })?
        }
        _ => {
            return Err(Error::field(
                format!("{field}backup_id"),
                "give backup_id or point_in_time, one of them",
            ));
        }
    };
    let (_, path) = archive_of(state, ctx, store_id, backup.id).await?;
    let (_, actual) = crate::backup::checksum(&path)
        .await
        .map_err(|e| Error::conflict("backup_corrupt", format!("{e:#}")))?;
    if Some(&actual) != backup.sha256.as_ref() {
        return Err(Error::conflict(
            "backup_corrupt",
            format!(
                "the archive of backup {} does not match its checksum; restore another backup",
                backup.id
            ),
        ));
    }
    Ok(backup)
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSchedule {
    #[schema(example = "0 3 * * *")]
    pub full_cron: String,
    #[serde(default)]
    pub logical_cron: Option<String>,
    pub retention: Retention,
    /// `replica` (default) or `primary`.
    #[serde(default)]
    #[schema(pattern = "^(primary|replica)$")]
    pub source: Option<String>,
    #[serde(default)]
    pub paused: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// Keep this many newest backups of each kind (1 to 1000); none: no limit by count. A
    /// schedule needs `count`, `days` or both.
    #[schema(minimum = 1, maximum = 1000)]
    pub count: Option<i32>,
    /// Keep backups this many days (1 to 3650); none: no limit by age.
    #[schema(minimum = 1, maximum = 3650)]
    pub days: Option<i32>,
}

impl Retention {
    /// A schedule lets old backups go: by count, by age, or both, each within its bounds.
    pub fn check(&self) -> Result<()> {
        if self.count.is_none() && self.days.is_none() {
            return Err(Error::field(
                "retention",
                "needs count, days or both: a schedule must let old backups go",
            ));
        }
        if self.count.is_some_and(|c| !(1..=1000).contains(&c)) {
            return Err(Error::field("retention.count", "must be 1 to 1000"));
        }
        if self.days.is_some_and(|d| !(1..=3650).contains(&d)) {
            return Err(Error::field("retention.days", "must be 1 to 3650"));
        }
        Ok(())
    }
}

/// Where a backup is taken from: `primary` or `replica`.
pub fn source(s: &str) -> Result<&str> {
    match s {
        "primary" | "replica" => Ok(s),
        _ => Err(Error::field("source", "must be primary or replica")),
    }
}

/// Replaces a store's backup schedule and retention, checked: cron expressions no more often than
/// the operator's minimum interval, a retention that lets old backups go, a known source.
pub async fn put_schedule(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    store_id: StoreId,
    cmd: &PutSchedule,
) -> Result<ScheduleRow> {
    store_of(state, ctx, store_id).await?;
    let now = state.clock.now();
    let min = state.plane.backup_min_interval;
    crate::jobs::schedule::parse_schedule(&cmd.full_cron, now, min)
        .map_err(|e| Error::field("full_cron", e))?;
    if let Some(c) = &cmd.logical_cron {
        crate::jobs::schedule::parse_schedule(c, now, min).map_err(|e| Error::field("logical_cron", e))?;
    }
    cmd.retention.check()?;
    let source = source(cmd.source.as_deref().unwrap_or("replica"))?;
    let (next_full_at, next_logical_at) =
        crate::jobs::schedule::next_times(&cmd.full_cron, cmd.logical_cron.as_deref(), now);
    let settings = db::backup_schedules::Settings {
        full_cron: &cmd.full_cron,
        logical_cron: cmd.logical_cron.as_deref(),
        retention_count: cmd.retention.count,
        retention_days: cmd.retention.days,
        source,
        paused: cmd.paused,
        next_full_at,
        next_logical_at,
    };
    let mut tx = state.db.begin().await?;
    let s = db::backup_schedules::update(&mut *tx, ctx, store_id, &settings, now)
        .await?
        .ok_or(Error::NotFound("store"))?;
    Event::new("backup_schedule.updated", meta)
        .in_ctx(ctx, actor)
        .target(format!("store:{store_id}"))
        .detail("full_cron", &cmd.full_cron)
        .detail("logical_cron", &cmd.logical_cron)
        .detail("paused", cmd.paused)
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use crate::domain::BackupKind;

    use super::{kind, restore_steps, source};
    use crate::db::stores::NodeRow;
    use crate::domain::NodeState;
    use crate::jobs::Step;

    #[test]
    fn a_backup_is_full_or_logical_from_the_primary_or_a_replica() {
        assert_eq!(kind("full").unwrap(), BackupKind::Full);
        assert_eq!(kind("logical").unwrap(), BackupKind::Logical);
        assert!(kind("incremental").is_err());
        assert!(kind("Full").is_err());
        assert_eq!(source("primary").unwrap(), "primary");
        assert_eq!(source("replica").unwrap(), "replica");
        assert!(source("standby").is_err());
    }

    fn node(role: &str) -> NodeRow {
        crate::service::stores::tests::node(role, NodeState::Running)
    }

    #[test]
    fn a_restore_starts_with_the_primary_and_rebuilds_replicas_only_when_physical() {
        let mut nodes = vec![node("replica"), node("primary"), node("replica")];
        let ids: Vec<_> = nodes.iter().map(|n| n.id).collect();
        let full = restore_steps(&mut nodes, BackupKind::Full);
        assert_eq!(
            full,
            [
                Step::RestoreNode(ids[1]),
                Step::RebuildNode(ids[0]),
                Step::RebuildNode(ids[2]),
                Step::FinishAvailable,
            ]
        );
        let logical = restore_steps(&mut nodes, BackupKind::Logical);
        assert_eq!(logical, [Step::RestoreNode(ids[1]), Step::FinishAvailable]);
    }
}
