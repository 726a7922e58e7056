//! `restart_node`: one node stopped and started, then the store's status.

use super::{JobKind, NoParams, unexpected};
use crate::db::jobs::JobRow;
use crate::jobs::steps::{self, nodes};
use crate::jobs::{JobEnv, Step};

pub struct RestartNode;

impl JobKind for RestartNode {
    const KIND: &'static str = "restart_node";
    /// Cancelled, the store settles; the node is untouched.
    const CANCELLABLE: bool = true;
    const STOPS_NODES: bool = true;
    type Params = NoParams;

    async fn run(env: &JobEnv, job: &JobRow, _: &NoParams, step: Step) -> anyhow::Result<()> {
        match step {
            Step::RestartNode(node) => nodes::restart(env, job, node).await,
            Step::FinishAvailable => steps::finish_available(env, job).await,
            other => Err(unexpected::<Self>(other)),
        }
    }
}
