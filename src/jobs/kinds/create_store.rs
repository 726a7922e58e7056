//! `create_store`: a store's nodes made (its primary empty, or forked from another store's
//! backup), then its status.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use time::OffsetDateTime;

use super::{JobKind, store_status, unexpected};
use crate::db;
use crate::db::jobs::JobRow;
use crate::domain::{BackupId, StoreId, StoreStatus};
use crate::jobs::steps::{self, backups, nodes};
use crate::jobs::{JobEnv, Step};

pub struct CreateStore;

/// `{}`, or `{"restore_from": {...}}` for a store forked from a backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateStoreParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_from: Option<RestoreFrom>,
}

/// The backup a store is forked from, and how far to replay its WAL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreFrom {
    /// The store the backup is of.
    pub store_id: StoreId,
    pub backup_id: BackupId,
    /// RFC 3339; `null` for the end of the backup.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub point_in_time: Option<OffsetDateTime>,
}

impl JobKind for CreateStore {
    const KIND: &'static str = "create_store";
    /// Cancelled, the store is deleted with its nodes' rows: nothing was made on the host yet.
    const CANCELLABLE: bool = true;
    const STOPS_NODES: bool = true;
    type Params = CreateStoreParams;

    async fn run(env: &JobEnv, job: &JobRow, params: &CreateStoreParams, step: Step) -> anyhow::Result<()> {
        match step {
            Step::CreatePrimary(node) => nodes::create_primary(env, job, node).await,
            Step::ForkPrimary(node) => {
                let from = params.restore_from.as_ref().context("job names no backup")?;
                backups::fork_primary(env, job, node, from.backup_id, from.point_in_time).await
            }
            Step::CreateReplica(node) => nodes::replicate(env, job, node, false).await,
            Step::FinishAvailable => steps::finish_available(env, job).await,
            other => Err(unexpected::<Self>(other)),
        }
    }

    async fn undo_cancelled(tx: &mut PgConnection, job: &JobRow, now: OffsetDateTime) -> anyhow::Result<()> {
        let Some(store_id) = job.store_id else { return Ok(()) };
        db::stores::delete_nodes_of(&mut *tx, job.org_id, store_id).await?;
        db::stores::set_status(&mut *tx, job.org_id, store_id, StoreStatus::Deleted, now).await?;
        Ok(())
    }

    /// The store is `failed`: what was made of it can only be deleted.
    async fn on_final_failure(env: &JobEnv, job: &JobRow) -> anyhow::Result<()> {
        store_status(env, job, StoreStatus::Failed).await
    }
}
