//! `add_node`: a replica made, then the store's status.

use sqlx::PgConnection;
use time::OffsetDateTime;

use super::{JobKind, NoParams, unexpected};
use crate::db;
use crate::db::jobs::JobRow;
use crate::jobs::steps::{self, nodes};
use crate::jobs::{JobEnv, Step};

pub struct AddNode;

impl JobKind for AddNode {
    const KIND: &'static str = "add_node";
    /// Cancelled, the new node's row goes and the store settles.
    const CANCELLABLE: bool = true;
    type Params = NoParams;

    async fn run(env: &JobEnv, job: &JobRow, _: &NoParams, step: Step) -> anyhow::Result<()> {
        match step {
            Step::CreateReplica(node) => nodes::replicate(env, job, node, false).await,
            Step::FinishAvailable => steps::finish_available(env, job).await,
            other => Err(unexpected::<Self>(other)),
        }
    }

    async fn undo_cancelled(tx: &mut PgConnection, job: &JobRow, now: OffsetDateTime) -> anyhow::Result<()> {
        let Some(store_id) = job.store_id else { return Ok(()) };
        for step in super::steps(job) {
            if let Step::CreateReplica(node) = step {
                db::stores::delete_node(&mut *tx, node).await?;
            }
        }
        db::stores::settle(&mut *tx, job.org_id, store_id, now).await?;
        Ok(())
    }
}
