//! What each step does, one function per [`Step`](super::Step) (the network's are in
//! [`super::network`]). Every step is idempotent: the worker may run it again after a crash.
//! The kinds in [`super::kinds`] say which of them a job runs, with which params.

pub mod backups;
pub mod ha;
pub mod nodes;

use anyhow::Context;

use super::JobEnv;
use crate::db;
use crate::db::jobs::JobRow;
use crate::domain::{NodeId, NodeState, StoreId, StoreStatus};
use crate::provision::NodeSpec;

fn store_of(job: &JobRow) -> anyhow::Result<StoreId> {
    job.store_id.context("job has no store")
}

/// The driver's spec of a node of the job's store, now; none once the node is gone.
async fn spec_of(env: &JobEnv, job: &JobRow, node: NodeId) -> anyhow::Result<Option<NodeSpec>> {
    env.plane.node_spec(&env.db, job.org_id, store_of(job)?, node, env.clock.now()).await
}

/// Like [`spec_of`], for a node the step needs.
async fn need_spec(env: &JobEnv, job: &JobRow, node: NodeId) -> anyhow::Result<NodeSpec> {
    spec_of(env, job, node).await?.context("the node is gone")
}

/// Writes the access in force now into a node just made (or restored): a firewall rule or
/// peering that changed meanwhile found no server to write into, or wrote into data since
/// replaced, and the step's spec was read before.
async fn latest_access(env: &JobEnv, job: &JobRow, node: NodeId) -> anyhow::Result<()> {
    env.plane.driver.apply_access(&need_spec(env, job, node).await?).await
}

/// The node serves: its latest access written, its row `running`.
async fn serving(env: &JobEnv, job: &JobRow, node: NodeId) -> anyhow::Result<()> {
    latest_access(env, job, node).await?;
    db::stores::set_node_state(&env.db, node, NodeState::Running, env.clock.now()).await?;
    Ok(())
}

/// [`Step::FinishAvailable`](super::Step::FinishAvailable).
pub async fn finish_available(env: &JobEnv, job: &JobRow) -> anyhow::Result<()> {
    let store_id = store_of(job)?;
    let nodes = db::stores::nodes(&env.db, job.org_id, &[store_id]).await?;
    let status = StoreStatus::settled(nodes.iter().all(|n| n.state == NodeState::Running));
    db::stores::set_status(&env.db, job.org_id, store_id, status, env.clock.now()).await?;
    Ok(())
}

/// [`Step::FinishDeleted`](super::Step::FinishDeleted).
pub async fn finish_deleted(env: &JobEnv, job: &JobRow) -> anyhow::Result<()> {
    let store_id = store_of(job)?;
    db::stores::set_status(&env.db, job.org_id, store_id, StoreStatus::Deleted, env.clock.now()).await?;
    Ok(())
}
