//! `reinitialize_node`: one replica's data discarded and copied again from the primary, then
//! the store's status.

use super::{JobKind, NoParams, unexpected};
use crate::db::jobs::JobRow;
use crate::jobs::steps::{self, nodes};
use crate::jobs::{JobEnv, Step};

pub struct ReinitializeNode;

impl JobKind for ReinitializeNode {
    const KIND: &'static str = "reinitialize_node";
    /// Cancelled, the store settles; the node is untouched.
    const CANCELLABLE: bool = true;
    type Params = NoParams;

    async fn run(env: &JobEnv, job: &JobRow, _: &NoParams, step: Step) -> anyhow::Result<()> {
        match step {
            Step::RebuildNode(node) => nodes::replicate(env, job, node, true).await,
            Step::FinishAvailable => steps::finish_available(env, job).await,
            other => Err(unexpected::<Self>(other)),
        }
    }
}
