//! A store's nodes: adding a streaming replica, removing a node, restarting one. Each is a job
//! on a store whose status allows changing its nodes; the steps are planned by pure functions,
//! tested below.

use sqlx::{Postgres, Transaction};

use crate::app::AppState;
use crate::audit::{Event, RequestMeta};
use crate::db;
use crate::db::jobs::JobRow;
use crate::db::stores::{NodeRow, StoreRow};
use crate::domain::ha::EventKind;
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
    let op = NodeOp {
        action: "store.node_restarted",
        check: any_node,
        job: Enqueue::of::<kinds::RestartNode>(store_id, restart_steps(node_id)),
    };
    node_job(state, meta, ctx, actor, store_id, node_id, op).await
}

/// The steps of restarting `node`.
pub fn restart_steps(node: NodeId) -> Vec<Step> {
    vec![Step::RestartNode(node), Step::FinishAvailable]
}

/// A node taken out of service, brought back, or copied again: each a job on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Maintenance {
    /// A replica stopped; it stays stopped (through health checks and Berth's restarts) until
    /// it is started again. The primary is refused: switch over first.
    Stop,
    /// A node started with its duty from the tables (a replica as a standby of the current
    /// primary). A node already running is accepted too: its job finds nothing to do, as a
    /// repeated request should.
    Start,
    /// A replica's data discarded and copied again from the primary. The primary is refused.
    Reinitialize,
}

impl Maintenance {
    /// The audit action, what the node must be, and the job.
    fn op(self, store_id: StoreId, node: NodeId) -> NodeOp {
        let steps = self.steps(node);
        let (action, check, job): (_, fn(&NodeRow) -> Result<()>, _) = match self {
            Self::Stop => {
                ("store.node_stopped", replica_only, Enqueue::of::<kinds::StopNode>(store_id, steps))
            }
            Self::Start => ("store.node_started", any_node, Enqueue::of::<kinds::StartNode>(store_id, steps)),
            Self::Reinitialize => (
                "store.node_reinitialized",
                replica_only,
                Enqueue::of::<kinds::ReinitializeNode>(store_id, steps),
            ),
        };
        NodeOp { action, check, job }
    }

    /// The steps on `node`; a reinitialization is [`Step::RebuildNode`], as a repair rebuilds a
    /// replica.
    pub fn steps(self, node: NodeId) -> Vec<Step> {
        let step = match self {
            Self::Stop => Step::StopNode(node),
            Self::Start => Step::StartNode(node),
            Self::Reinitialize => Step::RebuildNode(node),
        };
        vec![step, Step::FinishAvailable]
    }
}

/// Starts `what` on one node of the store; returns the store as it then is, and the job.
pub async fn maintain(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    store_id: StoreId,
    node_id: NodeId,
    what: Maintenance,
) -> Result<NodeChanged> {
    let job = node_job(state, meta, ctx, actor, store_id, node_id, what.op(store_id, node_id)).await?;
    Ok(NodeChanged { detail: stores::get(state, ctx, store_id).await?, job })
}

/// A job on one node of a store: the audit action it records, what the node must be to take
/// it, and the job.
struct NodeOp {
    action: &'static str,
    check: fn(&NodeRow) -> Result<()>,
    job: Enqueue<'static>,
}

/// Enqueues `op` on `node_id`, one of the store's nodes (404 otherwise) that `op.check` admits,
/// on a store whose status allows changing its nodes; audited.
async fn node_job(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    store_id: StoreId,
    node_id: NodeId,
    op: NodeOp,
) -> Result<JobRow> {
    let mut tx = state.db.begin().await?;
    let (_, nodes) = store_for_node_op(&mut tx, ctx, store_id).await?;
    let node = nodes.iter().find(|n| n.id == node_id).ok_or(Error::NotFound("node"))?;
    (op.check)(node)?;
    let job = enqueue(&mut tx, state, ctx, op.job).await?;
    Event::new(op.action, meta)
        .in_ctx(ctx, actor)
        .target(format!("store:{store_id}"))
        .detail("node", node_id)
        .detail("job", job.id)
        .record_in(&mut tx, state.clock.now())
        .await?;
    tx.commit().await?;
    state.wake.notify_waiters();
    Ok(job)
}

/// Any node of the store.
fn any_node(_: &NodeRow) -> Result<()> {
    Ok(())
}

/// A replica: stopping or re-copying the primary would leave the store without one.
fn replica_only(node: &NodeRow) -> Result<()> {
    if node.role == NodeRole::Primary {
        return Err(Error::conflict(
            "node_is_primary",
            "the node is the store's primary; switch over to a replica first, then act on this node as a replica",
        ));
    }
    Ok(())
}

/// Turns a node's maintenance flag on or off: a maintained node is never a failover or
/// switchover candidate and raises no alerts. Only the control database changes (no job); the
/// store's revision moves on, since its view changed. Setting the flag it already has changes
/// nothing and records nothing.
pub async fn set_maintenance(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    store_id: StoreId,
    node_id: NodeId,
    on: bool,
) -> Result<StoreDetail> {
    let mut tx = state.db.begin().await?;
    let store = db::stores::get_for_update(&mut tx, ctx, store_id).await?.ok_or(Error::NotFound("store"))?;
    let nodes = db::stores::nodes(&mut *tx, ctx.org_id, &[store_id]).await?;
    let node = nodes.iter().find(|n| n.id == node_id).ok_or(Error::NotFound("node"))?;
    if node.maintenance != on {
        let now = state.clock.now();
        db::ha::set_maintenance(&mut *tx, ctx.org_id, node_id, on, now).await?;
        db::stores::update(&mut *tx, ctx, store_id, store.revision, db::stores::Patch::default(), now)
            .await?;
        let (kind, message) = if on {
            (EventKind::MaintenanceOn, format!("node {node_id} in maintenance, by {actor}"))
        } else {
            (EventKind::MaintenanceOff, format!("node {node_id} out of maintenance, by {actor}"))
        };
        let event =
            db::ha::NewEvent { node_id: Some(node_id), kind, message: &message, actor_id: Some(ctx.user_id) };
        db::ha::insert_event(&mut *tx, ctx.org_id, store_id, &event, now).await?;
        Event::new("store.node_maintenance", meta)
            .in_ctx(ctx, actor)
            .target(format!("store:{store_id}"))
            .detail("node", node_id)
            .detail("maintenance", on)
            .record_in(&mut tx, now)
            .await?;
    }
    tx.commit().await?;
    stores::get(state, ctx, store_id).await
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
        assert_eq!(Maintenance::Stop.steps(id), vec![Step::StopNode(id), finish]);
        assert_eq!(Maintenance::Start.steps(id), vec![Step::StartNode(id), finish]);
        assert_eq!(Maintenance::Reinitialize.steps(id), vec![Step::RebuildNode(id), finish]);
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

    #[test]
    fn only_a_replica_may_be_stopped_or_reinitialized() {
        let (primary, replica) = (node("primary", NodeState::Running), node("replica", NodeState::Stopped));
        assert!(replica_only(&replica).is_ok());
        let refused = replica_only(&primary);
        assert!(
            matches!(refused, Err(Error::Conflict { code: "node_is_primary", detail }) if detail.contains("switch over"))
        );
        assert!(any_node(&primary).is_ok() && any_node(&replica).is_ok());
    }
}
