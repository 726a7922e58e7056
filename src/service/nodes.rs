//! A store's nodes: adding a streaming replica, removing a node, restarting one. Each is a job
//! on a store whose status allows changing its nodes; the steps are planned by pure functions,
//! tested below.

use sqlx::{Postgres, Transaction};

use crate::app::AppState;
use crate::audit::{Event, RequestMeta};
use crate::db;
use crate::db::jobs::JobRow;
use crate::db::stores::{NodeRow, StoreRow};
use crate::domain::{Ctx, Error, NodeId, NodeRole, Result, StoreId, StoreOperation, StoreStatus};
use crate::jobs::{self, Step, kinds};
use crate::quota::{self, Quota};
use crate::service::jobs::{Enqueue, busy, enqueue};
use crate::service::stores::{self, StoreDetail};
use crate::service::vpcs;

/// A change of a store's nodes, started.
#[derive(Debug)]
pub struct NodeChanged {
    /// The store as read after the change (`modifying`, with its new node count).
    pub detail: StoreDetail,
    pub job: JobRow,
}

/// Locks a store that can take a node operation, or says why not; with its nodes.
pub async fn store_for_node_op(
    tx: &mut Transaction<'_, Postgres>,
    ctx: &Ctx,
    store_id: StoreId,
) -> Result<(StoreRow, Vec<NodeRow>)> {
    let store = db::stores::get_for_update(tx, ctx, store_id).await?.ok_or(Error::NotFound("store"))?;
    store.status.check(StoreOperation::ChangeNodes)?;
    let nodes = db::stores::nodes(&mut **tx, ctx.org_id, &[store_id]).await?;
    Ok((store, nodes))
}

/// Adds a streaming replica, within the catalog's bound on nodes and the organization's quota.
pub async fn add(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    store_id: StoreId,
) -> Result<NodeChanged> {
    let mut tx = state.db.begin().await?;
    let (store, nodes) = store_for_node_op(&mut tx, ctx, store_id).await?;
    let (_, max) = state.plane.catalog.node_range();
    check_room(nodes.len(), max)?;
    // Checked before taking a port, for a clear answer; the unique index decides races.
    if let Some(active) = db::jobs::active_for_store(&mut *tx, ctx.org_id, store_id).await? {
        return Err(busy(Some(&active)));
    }
    quota::reserve(&mut tx, &state.plane.quotas, ctx.org_id, &[(Quota::Nodes, 1)]).await?;
    let port = jobs::allocate_ports(&mut tx, state.plane.ports.clone(), 1).await?[0];
    let node = NodeId::new();
    let now = state.clock.now();
    db::stores::insert_node(&mut *tx, ctx.org_id, store_id, node, NodeRole::Replica, i32::from(port), now)
        .await?;
    if let Some(vpc_id) = store.vpc_id {
        vpcs::place_nodes(&mut tx, ctx, vpc_id, &[node]).await?;
    }
    let steps = add_steps(node);
    let job = enqueue(&mut tx, state, ctx, Enqueue::of::<kinds::AddNode>(store_id, steps)).await?;
    let change = NodeChange { action: "store.node_added", node, node_count: nodes.len() as i32 + 1 };
    finish_node_change(state, meta, ctx, actor, tx, &store, job, change).await
}

/// A store with `count` nodes can take another only below the catalog's `max`.
fn check_room(count: usize, max: u32) -> Result<()> {
    if count as u32 >= max {
        return Err(Error::conflict("too_many_nodes", format!("a store has at most {max} nodes")));
    }
    Ok(())
}

/// The steps of adding `node`: a replica copied from the primary.
pub fn add_steps(node: NodeId) -> Vec<Step> {
    vec![Step::CreateReplica(node), Step::FinishAvailable]
}

/// Removes a replica. The primary cannot be removed while replicas exist (remove them first, or
/// delete the store).
pub async fn remove(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    store_id: StoreId,
    node_id: NodeId,
) -> Result<NodeChanged> {
    let mut tx = state.db.begin().await?;
    let (store, nodes) = store_for_node_op(&mut tx, ctx, store_id).await?;
    check_removable(&nodes, node_id)?;
    let steps = remove_steps(node_id);
    let job = enqueue(&mut tx, state, ctx, Enqueue::of::<kinds::RemoveNode>(store_id, steps)).await?;
    let change =
        NodeChange { action: "store.node_removed", node: node_id, node_count: nodes.len() as i32 - 1 };
    finish_node_change(state, meta, ctx, actor, tx, &store, job, change).await
}

/// `node_id` is one of `nodes` and not the primary.
fn check_removable(nodes: &[NodeRow], node_id: NodeId) -> Result<()> {
    let node = nodes.iter().find(|n| n.id == node_id).ok_or(Error::NotFound("node"))?;
    if node.role == NodeRole::Primary {
        let detail = if nodes.len() > 1 {
            "the primary cannot be removed while the store has replicas; remove the replicas first"
        } else {
            "the primary is the store's last node; delete the store instead"
        };
        return Err(Error::conflict("primary_node", detail));
    }
    Ok(())
}

/// The steps of removing `node`.
pub fn remove_steps(node: NodeId) -> Vec<Step> {
    vec![Step::RemoveNode(node), Step::FinishAvailable]
}

struct NodeChange {
    action: &'static str,
    node: NodeId,
    node_count: i32,
}

/// The common end of adding or removing a node: the store is `modifying` with its new node
/// count, the change is audited and committed, and the store is read again.
#[allow(clippy::too_many_arguments)]
async fn finish_node_change(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    mut tx: Transaction<'_, Postgres>,
    store: &StoreRow,
    job: JobRow,
    change: NodeChange,
) -> Result<NodeChanged> {
    let now = state.clock.now();
    let patch = db::stores::Patch {
        name: None,
        tags: None,
        deletion_protection: None,
        instance_size: None,
        volume_size_gb: None,
        node_count: Some(change.node_count),
        status: Some(StoreStatus::Modifying),
    };
    db::stores::update(&mut *tx, ctx, store.id, store.revision, patch, now).await?;
    Event::new(change.action, meta)
        .in_ctx(ctx, actor)
        .target(format!("store:{}", store.id))
        .detail("node", change.node)
        .detail("job", job.id)
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    state.wake.notify_waiters();
    let detail = stores::get(state, ctx, store.id).await?;
    Ok(NodeChanged { detail, job })
}

/// Restarts one node of the store.
pub async fn restart(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    store_id: StoreId,
    node_id: NodeId,
) -> Result<JobRow> {
    let mut tx = state.db.begin().await?;
    let (_, nodes) = store_for_node_op(&mut tx, ctx, store_id).await?;
    nodes.iter().find(|n| n.id == node_id).ok_or(Error::NotFound("node"))?;
    let steps = restart_steps(node_id);
    let job = enqueue(&mut tx, state, ctx, Enqueue::of::<kinds::RestartNode>(store_id, steps)).await?;
    Event::new("store.node_restarted", meta)
        .in_ctx(ctx, actor)
        .target(format!("store:{store_id}"))
        .detail("node", node_id)
        .record_in(&mut tx, state.clock.now())
        .await?;
    tx.commit().await?;
    state.wake.notify_waiters();
    Ok(job)
}

/// The steps of restarting `node`.
pub fn restart_steps(node: NodeId) -> Vec<Step> {
    vec![Step::RestartNode(node), Step::FinishAvailable]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::NodeState;
    use crate::service::stores::tests::node;

    #[test]
    fn each_node_operation_is_one_step_on_its_node_then_the_finish() {
        let id = NodeId::new();
        let finish = Step::FinishAvailable;
        assert_eq!(add_steps(id), vec![Step::CreateReplica(id), finish]);
        assert_eq!(remove_steps(id), vec![Step::RemoveNode(id), finish]);
        assert_eq!(restart_steps(id), vec![Step::RestartNode(id), finish]);
    }

    #[test]
    fn a_store_takes_nodes_up_to_the_catalogs_bound() {
        assert!(check_room(4, 5).is_ok());
        assert!(matches!(check_room(5, 5), Err(Error::Conflict { code: "too_many_nodes", .. })));
    }

    #[test]
    fn a_replica_can_be_removed_but_not_the_primary() {
        let nodes = vec![node("primary", NodeState::Running), node("replica", NodeState::Running)];
        assert!(check_removable(&nodes, nodes[1].id).is_ok());
        let refused = check_removable(&nodes, nodes[0].id);
        assert!(
            matches!(refused, Err(Error::Conflict { code: "primary_node", detail }) if detail.contains("remove the replicas first"))
        );
        let alone = &nodes[..1];
        let refused = check_removable(alone, alone[0].id);
        assert!(
            matches!(refused, Err(Error::Conflict { code: "primary_node", detail }) if detail.contains("delete the store instead"))
        );
        assert!(matches!(check_removable(&nodes, NodeId::new()), Err(Error::NotFound("node"))));
    }
}
