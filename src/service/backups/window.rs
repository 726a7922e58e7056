//! The window of moments a store can be restored to: from its oldest full backup to now (while
//! it runs) or its last archived WAL, with the spans that missing WAL makes unreachable.

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::db::backups::BackupRow;

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

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use time::macros::datetime;
    use uuid::Uuid;

    use super::window;
    use crate::backup::WalSegment;
    use crate::db::backups::BackupRow;
    use crate::domain::{BackupKind, BackupStatus};

    fn full(start_lsn: &str, finished: time::OffsetDateTime) -> BackupRow {
        BackupRow {
            id: crate::domain::BackupId::new(),
            org_id: crate::domain::OrgId(Uuid::nil()),
            store_id: crate::domain::StoreId(Uuid::nil()),
            kind: BackupKind::Full,
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
