//! Backups as restores and forks find them: the one named or the newest before a moment, and
//! only with an archive that matches its checksum.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::app::AppState;
use crate::db;
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
