//! `backup`: one backup taken, from a replica or the primary.

use serde::{Deserialize, Serialize};

use super::{JobKind, unexpected};
use crate::db::jobs::JobRow;
use crate::jobs::steps::backups;
use crate::jobs::{JobEnv, Step};

pub struct Backup;

/// `{"source": "replica"}` or `{"source": "primary"}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupParams {
    #[serde(default)]
    pub source: BackupSource,
}

/// Which node a backup is taken from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupSource {
    /// A replica when one runs, to spare the primary; else the primary.
    #[default]
    Replica,
    /// Only the primary.
    Primary,
}

impl BackupSource {
    /// A source as the API and the schedules spell it: `primary`, or anything else for a replica.
    pub fn from_text(text: &str) -> Self {
        if text == "primary" { Self::Primary } else { Self::Replica }
    }
}

impl JobKind for Backup {
    const KIND: &'static str = "backup";
    /// Not cancellable: the request already wrote the backup's row, `running`.
    const CANCELLABLE: bool = false;
    type Params = BackupParams;

    async fn run(env: &JobEnv, job: &JobRow, params: &BackupParams, step: Step) -> anyhow::Result<()> {
        match step {
            Step::TakeBackup(backup) => {
                backups::take(env, job, backup, params.source == BackupSource::Primary).await
            }
            other => Err(unexpected::<Self>(other)),
        }
    }

    /// The backup is `failed` and its archive removed; the store is left as it was.
    async fn on_final_failure(env: &JobEnv, job: &JobRow) -> anyhow::Result<()> {
        for step in super::steps(job) {
            if let Step::TakeBackup(backup) = step {
                backups::fail(env, job, backup).await?;
            }
        }
        Ok(())
    }
}
