//! `resize_store`: every node restarted with its new size (and its volume grown), then the store's status.

use super::{JobKind, NoParams, unexpected};
use crate::db::jobs::JobRow;
use crate::jobs::steps::{self, nodes};
use crate::jobs::{JobEnv, Step};

pub struct ResizeStore;

impl JobKind for ResizeStore {
    const KIND: &'static str = "resize_store";
    /// Not cancellable: the request already wrote the store's new size.
    const CANCELLABLE: bool = false;
    const STOPS_NODES: bool = true;
    type Params = NoParams;

    async fn run(env: &JobEnv, job: &JobRow, _: &NoParams, step: Step) -> anyhow::Result<()> {
        match step {
            Step::ReconfigureNode(node) => nodes::restart(env, job, node).await,
            Step::GrowVolume(node) => nodes::grow_volume(env, job, node).await,
            Step::FinishAvailable => steps::finish_available(env, job).await,
            other => Err(unexpected::<Self>(other)),
        }
    }
}
