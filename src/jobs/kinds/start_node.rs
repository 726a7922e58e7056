//! `start_node`: one node started with its duty from the tables, then the store's status.

use super::{JobKind, NoParams, unexpected};
use crate::db::jobs::JobRow;
use crate::jobs::steps::{self, nodes};
use crate::jobs::{JobEnv, Step};

pub struct StartNode;

impl JobKind for StartNode {
    const KIND: &'static str = "start_node";
    /// Cancelled, the store settles; the node is untouched.
    const CANCELLABLE: bool = true;
    type Params = NoParams;

    async fn run(env: &JobEnv, job: &JobRow, _: &NoParams, step: Step) -> anyhow::Result<()> {
        match step {
            Step::StartNode(node) => nodes::start(env, job, node).await,
            Step::FinishAvailable => steps::finish_available(env, job).await,
            other => Err(unexpected::<Self>(other)),
        }
    }
}
