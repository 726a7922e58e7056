//! Backups as restores and forks find them: the one named or the newest before a moment, and
//! only with an archive that matches its checksum; and the window of moments a store can be
//! restored to.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::{Event, RequestMeta};
use crate::db;
use crate::db::backup_schedules::ScheduleRow;
use crate::db::backups::BackupRow;
use crate::domain::{BackupStatus, Ctx, Error, Result};

/// A succeeded backup of the store, and where its archive can be read.
pub async fn archive_of(
    state: &AppState,
    ctx: &Ctx,
    store_id: Uuid,
    backup_id: Uuid,
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
    store_id: Uuid,
    backup_id: Option<Uuid>,
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

#[derive(Debug, Serialize, ToSchema)]
pub struct Gap {
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RestoreWindow {
    /// The earliest moment a point-in-time restore can reach: when the oldest full backup
    /// finished. None without a full backup.
    #[serde(with = "time::serde::rfc3339::option")]
    pub earliest: Option<OffsetDateTime>,
    /// The latest: now while the store runs (a restore first archives what it has written),
    /// else the last archived WAL.
    #[serde(with = "time::serde::rfc3339::option")]
    pub latest: Option<OffsetDateTime>,
    /// Spans inside the window that cannot be reached: WAL is missing there and no backup
    /// starts inside them.
    pub gaps: Vec<Gap>,
    /// Archived WAL segments kept for the store.
    pub wal_segments: usize,
}

/// The restore window of a store with these full backups (oldest first) and archived WAL; `now`
/// when its primary runs.
pub fn window(
    fulls: &[BackupRow],
    segments: &[crate::backup::WalSegment],
    now: Option<OffsetDateTime>,
) -> RestoreWindow {
    let wal_segments = segments.len();
    let Some(first) = fulls.first() else {
        return RestoreWindow { earliest: None, latest: None, gaps: vec![], wal_segments };
    };
    let starts: Vec<(u64, OffsetDateTime)> = fulls
        .iter()
        .filter_map(|b| Some((b.start_lsn.as_deref().and_then(crate::backup::lsn_segment)?, b.finished_at?)))
        .collect();
    let archived: Vec<(u64, OffsetDateTime)> =
        segments.iter().filter_map(|s| Some((s.number()?, OffsetDateTime::from(s.archived_at)))).collect();
    let mut gaps = vec![];
    // Where replay stops for good: a hole in the WAL with no backup after it.
    let mut cut = None;
    for pair in archived.windows(2) {
        let ((a, at_a), (b, _)) = (pair[0], pair[1]);
        if b <= a + 1 || a < starts.first().map_or(0, |s| s.0) {
            continue;
        }
        // Segments a+1 .. b-1 are missing: replay stops at `at_a` until a backup that starts
        // after the hole.
        match starts.iter().find(|(s, _)| *s >= b) {
            Some((_, resumed)) => gaps.push(Gap { from: at_a, to: *resumed }),
            None => {
                cut = Some(at_a);
                break;
            }
        }
    }
    let newest_backup = fulls.last().and_then(|b| b.finished_at);
    let latest = match (cut, now, archived.last()) {
        (Some(cut), _, _) => Some(cut),
        (None, Some(now), _) => Some(now),
        (None, None, Some((_, t))) => newest_backup.map_or(Some(*t), |b| Some(b.max(*t))),
        (None, None, None) => newest_backup,
    };
    RestoreWindow { earliest: first.finished_at, latest, gaps, wal_segments }
}

#[derive(Debug, Deserialize, ToSchema)]
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
    store_id: Uuid,
    cmd: &PutSchedule,
) -> Result<ScheduleRow> {
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
    use std::time::{Duration, SystemTime};

    use time::macros::datetime;
    use uuid::Uuid;

    use super::{BackupRow, BackupStatus, window};
    use crate::backup::WalSegment;

    fn full(start_lsn: &str, finished: time::OffsetDateTime) -> BackupRow {
        BackupRow {
            id: Uuid::now_v7(),
            org_id: Uuid::nil(),
            store_id: Uuid::nil(),
            kind: "full".into(),
            status: BackupStatus::Succeeded,
            node_id: None,
            size_bytes: None,
            sha256: None,
            location: None,
            start_lsn: Some(start_lsn.into()),
            end_lsn: None,
            error: None,
            created_at: finished,
            finished_at: Some(finished),
            trigger: "manual".into(),
        }
    }

    fn segment(n: u64, at: time::OffsetDateTime) -> WalSegment {
        let archived_at = SystemTime::UNIX_EPOCH + Duration::from_secs(at.unix_timestamp() as u64);
        WalSegment { name: format!("00000001{:08X}{:08X}", n >> 8, n & 0xff), archived_at }
    }

    #[test]
    fn a_hole_in_the_wal_is_a_gap_until_the_next_backup_and_the_end_without_one() {
        let t = |m: i64| datetime!(2026-11-25 10:00 UTC) + time::Duration::minutes(m);
        let fulls = [full("0/2000028", t(1)), full("0/6000028", t(10))];
        let wal: Vec<_> = [(2, 2), (3, 3), (6, 9), (7, 12)].iter().map(|&(n, m)| segment(n, t(m))).collect();
        let w = window(&fulls, &wal, None);
        assert_eq!(w.earliest, Some(t(1)));
        assert_eq!(w.gaps.len(), 1);
        assert_eq!((w.gaps[0].from, w.gaps[0].to), (t(3), t(10)));
        assert_eq!(w.latest, Some(t(12)), "the last archived segment");
        assert_eq!(window(&fulls, &wal, Some(t(20))).latest, Some(t(20)), "a running store: now");

        // No backup after the hole: the window ends where the WAL breaks.
        let w = window(&fulls[..1], &wal, Some(t(20)));
        assert!(w.gaps.is_empty());
        assert_eq!(w.latest, Some(t(3)));
        assert_eq!(window(&[], &wal, None).earliest, None);
    }
}
