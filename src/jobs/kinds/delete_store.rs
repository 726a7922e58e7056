//! `delete_store`: every node removed, the backups too when asked, then the store `deleted`.

use super::{JobKind, NoParams, store_status, unexpected};
use crate::db::jobs::JobRow;
use crate::domain::StoreStatus;
use crate::jobs::steps::{self, backups, nodes};
use crate::jobs::{JobEnv, Step};

pub struct DeleteStore;

impl JobKind for DeleteStore {
    const KIND: &'static str = "delete_store";
    /// Cancelled, the store settles back from its nodes, all still in place.
    const CANCELLABLE: bool = true;
    const STOPS_NODES: bool = true;
    type Params = NoParams;

    async fn run(env: &JobEnv, job: &JobRow, _: &NoParams, step: Step) -> anyhow::Result<()> {
        match step {
            Step::RemoveNode(node) => nodes::remove(env, job, node).await,
            Step::DeleteBackups => backups::delete_all(env, job).await,
            Step::FinishDeleted => steps::finish_deleted(env, job).await,
            other => Err(unexpected::<Self>(other)),
        }
    }

    /// The store is `failed`: part of it may be gone.
    async fn on_final_failure(env: &JobEnv, job: &JobRow) -> anyhow::Result<()> {
        store_status(env, job, StoreStatus::Failed).await
    }
}
