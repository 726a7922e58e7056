//! `rolling_restart`: every node restarted with its configuration rewritten from the tables,
//! replicas first, so that a setting that needs a restart reaches a store's every node (Berth
//! starts one for stores whose nodes run without `wal_log_hints`, which `pg_rewind` needs).

use super::{JobKind, NoParams, unexpected};
use crate::db::jobs::JobRow;
use crate::jobs::steps::{self, nodes};
use crate::jobs::{JobEnv, Step};

pub struct RollingRestart;

impl JobKind for RollingRestart {
    const KIND: &'static str = "rolling_restart";
    /// Nothing has changed before its first step.
    const CANCELLABLE: bool = true;
    const STOPS_NODES: bool = true;
    type Params = NoParams;

    async fn run(env: &JobEnv, job: &JobRow, _: &NoParams, step: Step) -> anyhow::Result<()> {
        match step {
            Step::ReconfigureNode(node) => nodes::restart(env, job, node).await,
            Step::FinishAvailable => steps::finish_available(env, job).await,
            other => Err(unexpected::<Self>(other)),
        }
    }
}
