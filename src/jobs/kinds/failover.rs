//! `failover`: a replica promoted because the primary is gone (or forced out). The old primary
//! is fenced first, always: no replica is promoted while it might still take writes.

use serde::{Deserialize, Serialize};

use super::{JobKind, store_status, unexpected};
use crate::db::jobs::JobRow;
use crate::domain::{NodeId, StoreStatus};
use crate::jobs::steps::{self, ha};
use crate::jobs::{JobEnv, Step};

pub struct Failover;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailoverParams {
    /// The primary that is gone.
    pub from: NodeId,
    /// The replica asked for; none: the most advanced eligible one.
    pub candidate: Option<NodeId>,
    /// Started by the monitor rather than a person.
    pub automatic: bool,
    /// Asked for with `force`: the primary may have been healthy, and a synchronous store's
    /// replicas need not all answer.
    pub force: bool,
}

impl JobKind for Failover {
    const KIND: &'static str = "failover";
    /// Under way at once; a store without its primary is not left waiting for a cancel.
    const CANCELLABLE: bool = false;
    const STOPS_NODES: bool = true;
    type Params = FailoverParams;

    async fn run(env: &JobEnv, job: &JobRow, p: &FailoverParams, step: Step) -> anyhow::Result<()> {
        match step {
            Step::Fence(node) => ha::fence(env, job, node).await,
            Step::Elect(_) => ha::elect(env, job, p).await,
            Step::Repoint => ha::repoint(env, job).await,
            Step::Rejoin(node) => ha::rejoin(env, job, node).await,
            Step::FinishAvailable => steps::finish_available(env, job).await,
            other => Err(unexpected::<Self>(other)),
        }
    }

    async fn on_final_failure(env: &JobEnv, job: &JobRow) -> anyhow::Result<()> {
        store_status(env, job, StoreStatus::Degraded).await
    }
}
