//! `stop_node`: one replica stopped and left stopped, then the store's status.

use super::{JobKind, NoParams, unexpected};
use crate::db::jobs::JobRow;
use crate::jobs::steps::{self, nodes};
use crate::jobs::{JobEnv, Step};

pub struct StopNode;

impl JobKind for StopNode {
    const KIND: &'static str = "stop_node";
    /// Cancelled, the store settles; the node is untouched.
    const CANCELLABLE: bool = true;
    type Params = NoParams;

    async fn run(env: &JobEnv, job: &JobRow, _: &NoParams, step: Step) -> anyhow::Result<()> {
        match step {
            Step::StopNode(node) => nodes::stop(env, job, node).await,
            Step::FinishAvailable => steps::finish_available(env, job).await,
            other => Err(unexpected::<Self>(other)),
        }
    }

    /// The node's row says what its server does (a stop that never happened leaves it
    /// running), and the store's status follows from its nodes'.
    async fn on_final_failure(env: &JobEnv, job: &JobRow) -> anyhow::Result<()> {
        for step in super::steps(job) {
            if let Step::StopNode(node) = step {
                nodes::stop_failed(env, job, node).await?;
            }
        }
        steps::finish_available(env, job).await
    }
}
