//! `restore`: a store's primary restored from one of its backups (its replicas made again from
//! it, for a physical one), then its status.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{JobKind, unexpected};
use crate::db::jobs::JobRow;
use crate::domain::BackupId;
use crate::jobs::steps::{self, backups, nodes};
use crate::jobs::{JobEnv, Step};

pub struct Restore;

/// `{"backup_id": ..., "point_in_time": null | "<RFC 3339>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreParams {
    pub backup_id: BackupId,
    /// `null` for the end of the backup.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub point_in_time: Option<OffsetDateTime>,
}

impl JobKind for Restore {
    const KIND: &'static str = "restore";
    /// Not cancellable: the request already set the store `restoring`.
    const CANCELLABLE: bool = false;
    const STOPS_NODES: bool = true;
    type Params = RestoreParams;

    async fn run(env: &JobEnv, job: &JobRow, params: &RestoreParams, step: Step) -> anyhow::Result<()> {
        match step {
            Step::RestoreNode(node) => {
                backups::restore_node(env, job, node, params.backup_id, params.point_in_time).await
            }
            Step::RebuildNode(node) => nodes::replicate(env, job, node, true).await,
            Step::FinishAvailable => steps::finish_available(env, job).await,
            other => Err(unexpected::<Self>(other)),
        }
    }
}
