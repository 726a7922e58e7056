//! `apply_parameters`: the store's parameter group written into every node, then the store's status.

use super::{JobKind, NoParams, unexpected};
use crate::db::jobs::JobRow;
use crate::jobs::steps::{self, nodes};
use crate::jobs::{JobEnv, Step};

pub struct ApplyParameters;

impl JobKind for ApplyParameters {
    const KIND: &'static str = "apply_parameters";
    /// Not cancellable: the request already changed the store's group.
    const CANCELLABLE: bool = false;
    const STOPS_NODES: bool = true;
    type Params = NoParams;

    async fn run(env: &JobEnv, job: &JobRow, _: &NoParams, step: Step) -> anyhow::Result<()> {
        match step {
            Step::ApplyParameters(node) => nodes::apply_parameters(env, job, node).await,
            Step::FinishAvailable => steps::finish_available(env, job).await,
            other => Err(unexpected::<Self>(other)),
        }
    }
}
