//! `repair_store`: the failed nodes made again (a replica copied again from the primary, a primary restarted), then the store's status.

use super::{JobKind, NoParams, unexpected};
use crate::db::jobs::JobRow;
use crate::jobs::steps::{self, nodes};
use crate::jobs::{JobEnv, Step};

pub struct RepairStore;

impl JobKind for RepairStore {
    const KIND: &'static str = "repair_store";
    /// Cancelled, the store settles; its nodes are untouched.
    const CANCELLABLE: bool = true;
    const STOPS_NODES: bool = true;
    type Params = NoParams;

    async fn run(env: &JobEnv, job: &JobRow, _: &NoParams, step: Step) -> anyhow::Result<()> {
        match step {
            Step::RebuildNode(node) => nodes::replicate(env, job, node, true).await,
            Step::Rejoin(node) => crate::jobs::steps::ha::rejoin(env, job, node).await,
            Step::FinishAvailable => steps::finish_available(env, job).await,
            other => Err(unexpected::<Self>(other)),
        }
    }
}
