//! The steps that take backups, restore them, and remove them.

use anyhow::Context;
use time::OffsetDateTime;

use super::{need_spec, serving, store_of};
use crate::db;
use crate::db::jobs::JobRow;
use crate::domain::{BackupId, BackupKind, BackupStatus, NodeId, NodeRole, NodeState};
use crate::jobs::JobEnv;
use crate::provision::RestoreTarget;

/// [`Step::TakeBackup`](crate::jobs::Step::TakeBackup): from a replica when one runs, to spare
/// the primary, unless `primary_only`.
pub async fn take(env: &JobEnv, job: &JobRow, backup_id: BackupId, primary_only: bool) -> anyhow::Result<()> {
    let store_id = store_of(job)?;
    let backup =
        db::backups::get_by_id(&env.db, job.org_id, backup_id).await?.context("the backup is gone")?;
    if backup.status == BackupStatus::Succeeded {
        // Taken and recorded by an attempt that died before the job was marked done: a
        // new copy would gain nothing, and a failure to take one must not cost this one.
        return Ok(());
    }
    let nodes = db::stores::nodes(&env.db, job.org_id, &[store_id]).await?;
    let source = nodes
        .iter()
        .filter(|n| n.state == NodeState::Running && (!primary_only || n.role == NodeRole::Primary))
        .min_by_key(|n| n.role == NodeRole::Primary)
        .context("no running node to back up")?;
    let spec = need_spec(env, job, source.id).await?;
    let backups = &env.plane.backups;
    let key = backups.key(store_id, backup_id);
    let path = backups.writable(&key).await?;
    let taken = match backup.kind {
        BackupKind::Logical => {
            env.plane.driver.logical_backup(&spec, &path).await?;
            None
        }
        BackupKind::Full => Some(env.plane.driver.base_backup(&spec, &path).await?),
    };
    backups.commit(&key).await?;
    let (size, sha256) = crate::backup::checksum(&backups.readable(&key).await?).await?;
    let finished = db::backups::Finished {
        node_id: source.id,
        size_bytes: size as i64,
        sha256: &sha256,
        location: &key,
        start_lsn: taken.as_ref().map(|t| t.start_lsn.as_str()),
        end_lsn: taken.as_ref().map(|t| t.end_lsn.as_str()),
        now: env.clock.now(),
    };
    db::backups::succeed(&env.db, job.org_id, backup_id, finished).await?;
    Ok(())
}

/// What a backup job that failed for good leaves: its backup `failed`, and its archive removed
/// unless the backup was recorded as taken (by an attempt that died before the job was marked
/// done).
pub async fn fail(env: &JobEnv, job: &JobRow, backup_id: BackupId) -> anyhow::Result<()> {
    let reason = job.error.as_deref().unwrap_or("the backup failed");
    db::backups::fail(&env.db, job.org_id, backup_id, reason, env.clock.now()).await?;
    let backup = db::backups::get_by_id(&env.db, job.org_id, backup_id).await?;
    if backup.is_none_or(|b| b.status != BackupStatus::Succeeded) {
        let key = env.plane.backups.key(job.store_id.unwrap_or_default(), backup_id);
        env.plane.backups.delete(&key).await?;
    }
    Ok(())
}

/// [`Step::RestoreNode`](crate::jobs::Step::RestoreNode): the backup, replayed to
/// `point_in_time` (or to its end).
pub async fn restore_node(
    env: &JobEnv,
    job: &JobRow,
    node: NodeId,
    backup_id: BackupId,
    point_in_time: Option<OffsetDateTime>,
) -> anyhow::Result<()> {
    let spec = need_spec(env, job, node).await?;
    let (backup, path) = verified_archive(env, job, backup_id).await?;
    if backup.kind == BackupKind::Logical {
        env.plane.driver.logical_restore(&spec, &path).await?;
    } else {
        let wal = env.plane.backups.wal_dir(store_of(job)?);
        env.plane.driver.restore(&spec, &path, &wal, target(point_in_time)).await?;
    }
    serving(env, job, node).await
}

/// [`Step::ForkPrimary`](crate::jobs::Step::ForkPrimary): another store's backup, replayed to
/// `point_in_time` (or to its end).
pub async fn fork_primary(
    env: &JobEnv,
    job: &JobRow,
    node: NodeId,
    backup_id: BackupId,
    point_in_time: Option<OffsetDateTime>,
) -> anyhow::Result<()> {
    let spec = need_spec(env, job, node).await?;
    let (backup, path) = verified_archive(env, job, backup_id).await?;
    let driver = env.plane.driver.as_ref();
    if backup.kind == BackupKind::Logical {
        driver.create_primary(&spec).await?;
        driver.logical_restore(&spec, &path).await?;
    } else {
        let target = target(point_in_time);
        if target != RestoreTarget::EndOfBackup {
            // The source still running: what it wrote until now is archived to replay.
            let source = db::stores::nodes(&env.db, job.org_id, &[backup.store_id]).await?;
            if let Some(p) =
                source.iter().find(|n| n.role == NodeRole::Primary && n.state == NodeState::Running)
            {
                let at = env.clock.now();
                if let Some(s) = env.plane.node_spec(&env.db, job.org_id, backup.store_id, p.id, at).await? {
                    driver.archive_current_wal(&s).await?;
                }
            }
        }
        let wal = env.plane.backups.wal_dir(backup.store_id);
        driver.restore(&spec, &path, &wal, target).await?;
        // The copy carries the source's roles: this store's own passwords replace them.
        driver.create_primary(&spec).await?;
    }
    serving(env, job, node).await
}

/// [`Step::DeleteBackups`](crate::jobs::Step::DeleteBackups).
pub async fn delete_all(env: &JobEnv, job: &JobRow) -> anyhow::Result<()> {
    let store_id = store_of(job)?;
    let keys = db::backups::delete_all_of_store(&env.db, job.org_id, store_id).await?;
    for key in keys {
        env.plane.backups.delete(&key).await?;
    }
    env.plane.backups.remove_store(store_id).await?;
    db::backup_schedules::delete(&env.db, job.org_id, store_id).await?;
    Ok(())
}

/// The archive of a backup, checked against its checksum.
async fn verified_archive(
    env: &JobEnv,
    job: &JobRow,
    backup_id: BackupId,
) -> anyhow::Result<(db::backups::BackupRow, std::path::PathBuf)> {
    let backup =
        db::backups::get_by_id(&env.db, job.org_id, backup_id).await?.context("the backup is gone")?;
    let key = backup.location.as_deref().context("the backup has no archive")?;
    let path = env.plane.backups.readable(key).await?;
    let (_, sha256) = crate::backup::checksum(&path).await?;
    anyhow::ensure!(
        Some(&sha256) == backup.sha256.as_ref(),
        "the archive of backup {backup_id} does not match its checksum: it is corrupt; restore another"
    );
    Ok((backup, path))
}

/// A point in time, or the end of the backup.
fn target(point_in_time: Option<OffsetDateTime>) -> RestoreTarget {
    point_in_time.map_or(RestoreTarget::EndOfBackup, RestoreTarget::Time)
}
