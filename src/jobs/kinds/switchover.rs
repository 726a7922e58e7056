//! `switchover`: a planned change of primary, nothing lost. The old primary stops cleanly, the
//! candidate receives all it wrote, is promoted, the other replicas follow it, and the old
//! primary rejoins as a replica.

use serde::{Deserialize, Serialize};

use super::{JobKind, settle, unexpected};
use crate::db::ha::NewPromotion;
use crate::db::jobs::JobRow;
use crate::domain::NodeId;
use crate::domain::ha::PromotionKind;
use crate::jobs::steps::{self, ha};
use crate::jobs::{JobEnv, Step};

pub struct Switchover;

/// `{from, candidate}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchoverParams {
    /// The primary when the switchover was asked for.
    pub from: NodeId,
    pub candidate: NodeId,
}

impl JobKind for Switchover {
    const KIND: &'static str = "switchover";
    /// A scheduled one is cancelled before it starts; nothing had changed.
    const CANCELLABLE: bool = true;
    const STOPS_NODES: bool = true;
    type Params = SwitchoverParams;

    async fn run(env: &JobEnv, job: &JobRow, p: &SwitchoverParams, step: Step) -> anyhow::Result<()> {
        match step {
            Step::Demote(node) => ha::demote(env, job, node, p.candidate).await,
            Step::Promote(to) => {
                // Berth's start after a crash past the demotion starts the old primary again (the
                // tables still name it): it is demoted again first, never left running beside
                // the new one. Once the tables name the candidate, this does nothing.
                ha::demote(env, job, p.from, to).await?;
                let promotion = NewPromotion {
                    kind: PromotionKind::Switchover,
                    automatic: false,
                    from: Some(p.from),
                    to,
                    // The candidate had the shutdown checkpoint: everything.
                    lost_bytes_estimate: Some(0),
                    job_id: job.id,
                };
                ha::promote(env, job, promotion).await
            }
            Step::Repoint => ha::repoint(env, job).await,
            Step::Rejoin(node) => ha::rejoin(env, job, node).await,
            Step::FinishAvailable => steps::finish_available(env, job).await,
            other => Err(unexpected::<Self>(other)),
        }
    }

    /// An aborted switchover left the old primary the primary, running: the store settles from
    /// its nodes.
    async fn on_final_failure(env: &JobEnv, job: &JobRow) -> anyhow::Result<()> {
        let mut conn = env.db.acquire().await?;
        settle(&mut conn, job, env.clock.now()).await
    }
}
