//! The backup scheduler, run by every worker process: it starts the backups that are due and
//! prunes the ones retention lets go. Due schedules are claimed with `for update skip locked`
//! and their next due time moves in the transaction that enqueues the backup, so a due backup
//! starts exactly once however many Berth instances run. Time comes from the injected clock.

use std::time::Duration;

use anyhow::Context;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use time::OffsetDateTime;

use super::kinds::{Backup, BackupParams, BackupSource};
use super::{Enqueue, JobEnv, NotEnqueued, Step, enqueue};
use crate::db;
use crate::db::jobs::JobRow;
use crate::domain::{BackupId, BackupKind, OrgId, StoreId, StoreStatus, UserId};
use crate::quota::{self, QuotaExceeded, Quotas};

/// A schedule as the API shows it before anyone changes it: daily at 03:00 UTC, seven kept.
pub const DEFAULT_FULL_CRON: &str = "0 3 * * *";
pub const DEFAULT_RETENTION_COUNT: i32 = 7;
pub const DEFAULT_RETENTION_DAYS: i32 = 7;
/// Schedules looked at per tick; the rest wait for the next one.
const BATCH: i64 = 50;
/// `BERTH_BACKUP_MIN_INTERVAL` unless set.
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::from_secs(3600);
/// How far ahead the gaps of a schedule are checked: a year holds every combination of days of
/// the month and of the week that a five-field expression can name, but for leap days.
const GAP_HORIZON: time::Duration = time::Duration::days(366);
/// And at most this many fire times: more than a year of hourly backups, so that only an
/// operator's minimum under an hour can cut the check short, after weeks of short gaps.
const GAP_MAX_TIMES: usize = 9000;

/// A five-field cron expression (minute hour day-of-month month day-of-week, in UTC), or why
/// it is not one.
pub fn parse_cron(text: &str) -> Result<Cron, String> {
    let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
    let cron =
        parser.parse(text).map_err(|e| format!("{text:?} is not a five-field cron expression: {e}"))?;
    // A pattern that never fires (30 February) is refused rather than silently never run.
    next_after(&cron, OffsetDateTime::UNIX_EPOCH).ok_or_else(|| format!("{text:?} never fires"))?;
    Ok(cron)
}

/// A backup schedule's cron expression: five fields that fire at least `min` apart, checked on
/// every gap between its fire times in the year after `now`; or why it is not one.
pub fn parse_schedule(text: &str, now: OffsetDateTime, min: Duration) -> Result<Cron, String> {
    let cron = parse_cron(text)?;
    let end = now + GAP_HORIZON;
    let Some(mut prev) = next_after(&cron, now) else { return Ok(cron) };
    for _ in 0..GAP_MAX_TIMES {
        let Some(next) = next_after(&cron, prev).filter(|n| *n <= end) else { break };
        let gap = Duration::try_from(next - prev).unwrap_or_default();
        if gap < min {
            let at = |t: OffsetDateTime| {
                t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
            };
            return Err(format!(
                "{text:?} fires at {} and again {} later; scheduled backups must be at least {} apart",
                at(prev),
                humantime::format_duration(gap),
                humantime::format_duration(min)
            ));
        }
        prev = next;
    }
    Ok(cron)
}

/// The first time the expression fires strictly after `t`.
pub fn next_after(cron: &Cron, t: OffsetDateTime) -> Option<OffsetDateTime> {
    let start = chrono::DateTime::<chrono::Utc>::from_timestamp(t.unix_timestamp(), t.nanosecond())?;
    let next = cron.find_next_occurrence(&start, false).ok()?;
    OffsetDateTime::from_unix_timestamp(next.timestamp()).ok()
}

fn next_of(text: Option<&str>, now: OffsetDateTime) -> Option<OffsetDateTime> {
    text.and_then(|t| parse_cron(t).ok()).and_then(|c| next_after(&c, now))
}

/// The next due times of a schedule with these expressions, from `now`.
pub fn next_times(
    full_cron: &str,
    logical_cron: Option<&str>,
    now: OffsetDateTime,
) -> (Option<OffsetDateTime>, Option<OffsetDateTime>) {
    (next_of(Some(full_cron), now), next_of(logical_cron, now))
}

/// A backup to start.
#[derive(Debug, Clone, Copy)]
pub struct NewBackup<'a> {
    pub org_id: OrgId,
    pub store_id: StoreId,
    /// `full` or `logical`.
    pub kind: BackupKind,
    /// `manual` or `schedule`.
    pub trigger: &'a str,
    /// `replica` or `primary`.
    pub source: &'a str,
    pub created_by: Option<UserId>,
    pub now: OffsetDateTime,
}

/// What [`start_backup`] did.
#[derive(Debug)]
pub enum Started {
    /// The backup's id and its job, as enqueued.
    Backup { backup_id: BackupId, job: Box<JobRow> },
    /// The store has a job in progress: this one (none if it ended meanwhile).
    Busy(Option<Box<JobRow>>),
    /// The organization keeps as many bytes of backups as its quota allows.
    OverQuota(QuotaExceeded),
}

/// A backup and the job that takes it, enqueued in the caller's transaction, unless the store
/// has a job in progress or the organization's backups fill its quota (nothing is written then).
pub async fn start_backup(
    tx: &mut sqlx::PgConnection,
    quotas: &Quotas,
    b: NewBackup<'_>,
) -> anyhow::Result<Started> {
    use sqlx::Connection;
    let (org_id, now) = (b.org_id, b.now);
    if let Err(over) = quota::admit_backup(&mut *tx, quotas, org_id).await? {
        return Ok(Started::OverQuota(over));
    }
    let mut sp = tx.begin().await?;
    let backup_id = BackupId::new();
    db::backups::insert(&mut *sp, org_id, backup_id, b.store_id, b.kind, b.trigger, now).await?;
    let params = BackupParams { source: BackupSource::from_text(b.source) };
    let job = Enqueue::typed::<Backup>(b.store_id, params, vec![Step::TakeBackup(backup_id)]);
    match enqueue(&mut sp, org_id, b.created_by, now, job).await {
        Ok(job) => {
            sp.commit().await?;
            Ok(Started::Backup { backup_id, job: Box::new(job) })
        }
        Err(NotEnqueued::Blocked(active)) => {
            sp.rollback().await?;
            Ok(Started::Busy(active))
        }
        Err(NotEnqueued::Db(e)) => Err(e.into()),
    }
}

/// What one tick did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    pub started: usize,
    pub pruned: usize,
}

/// Starts every due backup, then prunes expired ones.
pub async fn tick(env: &JobEnv) -> anyhow::Result<Tick> {
    let started = start_due(env).await?;
    let pruned = prune(env).await?;
    Ok(Tick { started, pruned })
}

async fn start_due(env: &JobEnv) -> anyhow::Result<usize> {
    let now = env.clock.now();
    let mut tx = env.db.begin().await?;
    let due = db::backup_schedules::claim_due(&mut *tx, now, BATCH).await?;
    let mut started = 0;
    for s in due {
        let (mut next_full, mut next_logical) = (s.next_full_at, s.next_logical_at);
        // A due time is only moved on once its backup is enqueued: a store busy with another
        // job gets it at a later tick.
        for (kind, cron, next) in [
            (BackupKind::Full, Some(s.full_cron.as_str()), &mut next_full),
            (BackupKind::Logical, s.logical_cron.as_deref(), &mut next_logical),
        ] {
            let Some(cron) = cron else {
                *next = None;
                continue;
            };
            match *next {
                None => *next = next_of(Some(cron), now),
                Some(at) if at <= now => {
                    let backup = NewBackup {
                        org_id: s.org_id,
                        store_id: s.store_id,
                        kind,
                        trigger: "schedule",
                        source: &s.source,
                        created_by: None,
                        now,
                    };
                    match start_backup(&mut tx, &env.plane.quotas, backup).await? {
                        Started::Backup { .. } => {
                            started += 1;
                            *next = next_of(Some(cron), now);
                        }
                        Started::Busy(_) => {}
                        // Skipped, not retried at every tick: retention or a person frees room.
                        Started::OverQuota(over) => {
                            tracing::warn!(store_id = %s.store_id, kind = %kind, "scheduled backup skipped: {over}");
                            *next = next_of(Some(cron), now);
                        }
                    }
                }
                Some(_) => {}
            }
        }
        db::backup_schedules::set_next(&mut *tx, s.org_id, s.store_id, next_full, next_logical).await?;
    }
    tx.commit().await?;
    Ok(started)
}

/// Removes the backups retention lets go (rows first, then their archives), then the archived
/// WAL that no remaining backup needs.
async fn prune(env: &JobEnv) -> anyhow::Result<usize> {
    let now = env.clock.now();
    let mut pruned = 0;
    for s in db::backup_schedules::with_retention(&env.db).await? {
        let before = s.retention_days.map(|d| now - time::Duration::days(i64::from(d)));
        let expired = db::backups::expired(&env.db, s.org_id, s.store_id, s.retention_count, before).await?;
        for b in &expired {
            if db::backups::delete_by_id(&env.db, s.org_id, b.id).await? {
                if let Some(key) = &b.location {
                    env.plane.backups.delete(key).await?;
                }
                pruned += 1;
            }
        }
        if !expired.is_empty() {
            tracing::info!(store_id = %s.store_id, pruned = expired.len(), "pruned backups past retention");
        }
        match db::backups::oldest_full_start(&env.db, s.org_id, s.store_id).await? {
            Some(lsn) => {
                let n = env.plane.backups.prune_wal(s.store_id, &lsn).await?;
                if n > 0 {
                    tracing::info!(store_id = %s.store_id, segments = n, "pruned archived WAL");
                }
            }
            None => {
                // A deleted store whose last backup has gone: its WAL can restore nothing.
                let gone = db::stores::get_by_id(&env.db, s.org_id, s.store_id)
                    .await?
                    .is_none_or(|st| st.status == StoreStatus::Deleted);
                if gone && db::backups::count_of_store(&env.db, s.org_id, s.store_id).await? == 0 {
                    env.plane.backups.remove_store(s.store_id).await.context("removing the store's WAL")?;
                    db::backup_schedules::delete(&env.db, s.org_id, s.store_id).await?;
                }
            }
        }
    }
    Ok(pruned)
}

/// Ticks every `every` until the process ends.
pub async fn scheduler_loop(env: JobEnv, every: Duration) {
    loop {
        if let Err(e) = tick(&env).await {
            tracing::warn!(error = %format!("{e:#}"), "backup scheduler");
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::{next_after, parse_cron, parse_schedule};

    #[test]
    fn cron_expressions_fire_when_they_say() {
        let daily = parse_cron("0 3 * * *").unwrap();
        assert_eq!(
            next_after(&daily, datetime!(2026-11-25 02:59:30 UTC)),
            Some(datetime!(2026-11-25 03:00 UTC))
        );
        assert_eq!(
            next_after(&daily, datetime!(2026-11-25 03:00 UTC)),
            Some(datetime!(2026-11-26 03:00 UTC))
        );
        let every_minute = parse_cron("* * * * *").unwrap();
        assert_eq!(
            next_after(&every_minute, datetime!(2026-11-25 10:00:01 UTC)),
            Some(datetime!(2026-11-25 10:01 UTC))
        );
    }

    #[test]
    fn a_schedule_fires_at_least_the_minimum_apart_over_the_year() {
        let now = datetime!(2026-12-02 10:00 UTC);
        let hour = std::time::Duration::from_secs(3600);
        for ok in ["0 * * * *", "0 3 * * *", "0 3 * * 1", "0 0 1 * *", "30 1,3 * * *"] {
            assert!(parse_schedule(ok, now, hour).is_ok(), "{ok}");
        }
        for (bad, gap) in [
            ("* * * * *", "1m"),
            ("*/30 * * * *", "30m"),
            ("0,59 3 * * *", "59m"),
            // Only on the first of the month, two weeks ahead.
            ("0,10 0 1 * *", "10m"),
        ] {
            let e = parse_schedule(bad, now, hour).unwrap_err();
            assert!(e.contains(&format!("again {gap} later")) && e.contains("at least 1h"), "{bad}: {e}");
        }
        assert!(parse_schedule("*/30 * * * *", now, std::time::Duration::from_secs(1800)).is_ok());
        assert!(parse_schedule("61 * * * *", now, hour).unwrap_err().contains("five-field"));
    }

    #[test]
    fn bad_cron_expressions_say_why() {
        for bad in ["", "* * *", "61 * * * *", "0 0 * * * *", "0 0 30 2 *", "every day"] {
            let e = parse_cron(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }
}
