//! A store's high availability: switchovers (now or scheduled, and their cancellation),
//! failovers asked for by a person, pausing and resuming the monitor, and reading the topology,
//! the promotions and the events. The monitor's own failovers start in `jobs::monitor`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::{Event, RequestMeta};
use crate::db;
use crate::db::ha::{EventRow, NewEvent, PromotionRow};
use crate::db::jobs::JobRow;
use crate::db::stores::NodeRow;
use crate::domain::ha::{Candidate, EventKind, HaPhase, NoCandidate, choose_candidate};
use crate::domain::{Ctx, Error, NodeId, NodeRole, NodeState, Result, StoreId, StoreOperation};
use crate::jobs::kinds::{self, FailoverParams, JobKind, SwitchoverParams};
use crate::jobs::{NotEnqueued, ha};
use crate::provision::Replication;
use crate::service::jobs::busy;
use crate::service::stores::{self, StoreDetail};

/// `POST .../switchover`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchoverRequest {
    /// The replica to promote; without one, the most advanced streaming replica.
    #[schema(value_type = Option<Uuid>)]
    pub candidate_node_id: Option<NodeId>,
    /// When to switch over (RFC 3339); now if absent or past. A scheduled switchover is a
    /// queued job until then, cancelled with `DELETE .../switchover`; the candidate is checked
    /// again when it runs.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub scheduled_at: Option<OffsetDateTime>,
}

/// `POST .../failover`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FailoverRequest {
    /// The replica to promote.
    #[schema(value_type = Uuid)]
    pub candidate_node_id: NodeId,
    /// Fail over even though the primary answers (it is fenced: stopped, killed if need be),
    /// or though a synchronous store's replicas do not all answer.
    #[serde(default)]
    pub force: bool,
}

/// A store's HA as it is now: its nodes as last checked, its phase, its settings.
#[derive(Debug)]
pub struct Topology {
    pub detail: StoreDetail,
    pub phase: HaPhase,
}

/// The phase of a store's HA, from its nodes as last checked and its job in progress.
pub fn phase(detail: &StoreDetail) -> HaPhase {
    match detail.job.as_ref().map(|j| j.kind.as_str()) {
        Some(kinds::Failover::KIND) => return HaPhase::FailingOver,
        Some(kinds::Switchover::KIND)
            if detail.job.as_ref().is_some_and(|j| j.status != crate::domain::JobStatus::Queued) =>
        {
            return HaPhase::Switchover;
        }
        _ => {}
    }
    if detail.store.ha_paused_at.is_some() {
        return HaPhase::Paused;
    }
    let live = detail.nodes.iter().filter(|n| n.state != NodeState::Removing);
    let healthy = live.clone().filter(|n| !n.maintenance).all(|n| {
        n.state == NodeState::Running
            && !n.fenced
            && (n.role == NodeRole::Primary || n.streaming.unwrap_or(true))
    });
    let one_primary = detail.nodes.iter().filter(|n| n.role == NodeRole::Primary && !n.fenced).count() == 1;
    if healthy && one_primary { HaPhase::Healthy } else { HaPhase::Degraded }
}

pub async fn topology(state: &AppState, ctx: &Ctx, store_id: StoreId) -> Result<Topology> {
    let detail = stores::get(state, ctx, store_id).await?;
    Ok(Topology { phase: phase(&detail), detail })
}

/// The store's promotions, newest first (404 for a store not of the organization).
pub async fn history(
    state: &AppState,
    ctx: &Ctx,
    store_id: StoreId,
    before: Option<(OffsetDateTime, Uuid)>,
    fetch: i64,
) -> Result<Vec<PromotionRow>> {
    db::stores::get(&state.db, ctx, store_id).await?.ok_or(Error::NotFound("store"))?;
    Ok(db::ha::promotions(&state.db, ctx.org_id, store_id, before, fetch).await?)
}

/// The store's events, newest first.
pub async fn events(
    state: &AppState,
    ctx: &Ctx,
    store_id: StoreId,
    before: Option<(OffsetDateTime, Uuid)>,
    fetch: i64,
) -> Result<Vec<EventRow>> {
    db::stores::get(&state.db, ctx, store_id).await?.ok_or(Error::NotFound("store"))?;
    Ok(db::ha::events(&state.db, ctx.org_id, store_id, before, fetch).await?)
}

/// What a node says of its replication, asked now; `None` when it does not answer.
async fn probe(state: &AppState, node: &NodeRow) -> Result<Option<Replication>> {
    let spec = state.plane.probe_spec(node)?;
    Ok(state.plane.driver.replication(&spec).await?)
}

fn conflict(r: ha::Refusal) -> Error {
    Error::conflict(r.code, r.detail)
}

/// The store's primary, or 409.
fn primary_of(nodes: &[NodeRow]) -> Result<&NodeRow> {
    nodes
        .iter()
        .find(|n| n.role == NodeRole::Primary && !n.fenced)
        .ok_or_else(|| Error::conflict("no_primary", "the store has no primary: repair it, or fail over"))
}

/// The replica `id` of the store, or why it cannot be a candidate.
fn candidate_row(nodes: &[NodeRow], id: NodeId) -> Result<&NodeRow> {
    let node = nodes
        .iter()
        .find(|n| n.id == id)
        .ok_or_else(|| Error::conflict("candidate_unknown", format!("the store has no node {id}")))?;
    if node.role == NodeRole::Primary {
        return Err(Error::conflict("candidate_is_primary", "the candidate is the primary already"));
    }
    if node.maintenance {
        return Err(Error::conflict(
            "candidate_in_maintenance",
            "the candidate is in maintenance: take it out first",
        ));
    }
    if node.fenced || node.state != NodeState::Running {
        return Err(Error::conflict(
            "candidate_not_streaming",
            format!("the candidate is {}, not streaming", node.state),
        ));
    }
    Ok(node)
}

/// Starts (or schedules) a switchover: refused unless the candidate — the one asked for, or the
/// most advanced streaming replica — streams from the primary, on its timeline, within the
/// store's lag limit, and no other job is in progress.
pub async fn switchover(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    store_id: StoreId,
    cmd: &SwitchoverRequest,
) -> Result<JobRow> {
    let now = state.clock.now();
    // A time already past is now.
    let scheduled_at = cmd.scheduled_at.filter(|at| *at > now);
    let mut tx = state.db.begin().await?;
    let store = db::stores::get_for_update(&mut tx, ctx, store_id).await?.ok_or(Error::NotFound("store"))?;
    store.status.check(StoreOperation::Switchover)?;
    let nodes = db::stores::nodes(&mut *tx, ctx.org_id, &[store_id]).await?;
    let primary = primary_of(&nodes)?;
    if !nodes.iter().any(|n| n.role == NodeRole::Replica) {
        return Err(Error::conflict(
            "no_replicas",
            "the store has no replica to switch over to: add a node first",
        ));
    }
    if let Some(active) = db::jobs::active_for_store(&mut *tx, ctx.org_id, store_id).await? {
        return Err(busy(Some(&active)));
    }
    let port = u16::try_from(primary.port).unwrap_or(0);
    let max_lag = store.max_lag_on_failover_bytes;
    let candidate = match cmd.candidate_node_id {
        Some(id) => {
            let node = candidate_row(&nodes, id)?;
            if scheduled_at.is_none() {
                let (p, c) = (probe(state, primary).await?, probe(state, node).await?);
                if let Some(r) = ha::switchover_refusal(p.as_ref(), c.as_ref(), port, max_lag) {
                    return Err(conflict(r));
                }
            }
            id
        }
        None => most_advanced(state, &nodes, primary, max_lag).await?,
    };
    let params = SwitchoverParams { from: primary.id, candidate };
    let job =
        ha::enqueue_switchover(&mut tx, ctx.org_id, store_id, params, Some(ctx.user_id), scheduled_at, now)
            .await
            .map_err(not_enqueued)?;
    Event::new("store.switchover", meta)
        .in_ctx(ctx, actor)
        .target(format!("store:{store_id}"))
        .detail("job", job.id)
        .detail("from", primary.id)
        .detail("candidate", candidate)
        .detail("scheduled_at", scheduled_at.map(|t| t.to_string()))
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    state.wake.notify_waiters();
    Ok(job)
}

/// The streaming replica with the most WAL received, within the lag limit.
async fn most_advanced(
    state: &AppState,
    nodes: &[NodeRow],
    primary: &NodeRow,
    max_lag: i64,
) -> Result<NodeId> {
    let p = probe(state, primary).await?;
    let port = u16::try_from(primary.port).unwrap_or(0);
    let mut candidates = Vec::new();
    let mut last_refusal = None;
    for n in nodes.iter().filter(|n| n.role == NodeRole::Replica) {
        let c = if candidate_row(nodes, n.id).is_ok() { probe(state, n).await? } else { None };
        // Every check but the lag, which the choice weighs.
        let refused = ha::switchover_refusal(p.as_ref(), c.as_ref(), port, i64::MAX);
        let lsn = |l: Option<crate::provision::Lsn>| l.map_or(0, |l| l.0);
        candidates.push(Candidate {
            node_id: n.id,
            eligible: refused.is_none() && candidate_row(nodes, n.id).is_ok(),
            received: c.as_ref().map_or(0, |c| lsn(c.received.or(c.replayed))),
            replayed: c.as_ref().map_or(0, |c| lsn(c.replayed)),
        });
        last_refusal = refused.or(last_refusal);
    }
    let written = p.as_ref().and_then(|p| p.received).map(|l| l.0);
    choose_candidate(&candidates, written, u64::try_from(max_lag).unwrap_or(0)).map_err(|e| match e {
        NoCandidate::NoneEligible => last_refusal.map_or_else(
            || Error::conflict("no_candidate", "no replica streams from the primary"),
            |r| Error::conflict("no_candidate", format!("no replica can take over: {}", r.detail)),
        ),
        NoCandidate::TooFarBehind { node_id, lag_bytes } => Error::conflict(
            "candidate_lagging",
            format!("the most advanced replica, {node_id}, is {lag_bytes} bytes behind, more than max_lag_on_failover_bytes ({max_lag})"),
        ),
    })
}

fn not_enqueued(e: NotEnqueued) -> Error {
    match e {
        NotEnqueued::Blocked(active) => busy(active.as_deref()),
        NotEnqueued::Db(e) => e.into(),
    }
}

/// Cancels the store's scheduled switchover (one not started yet).
pub async fn cancel_switchover(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    store_id: StoreId,
) -> Result<JobRow> {
    db::stores::get(&state.db, ctx, store_id).await?.ok_or(Error::NotFound("store"))?;
    let active = db::jobs::active_for_store(&state.db, ctx.org_id, store_id).await?;
    let job = active.filter(|j| j.kind == kinds::Switchover::KIND).ok_or(Error::NotFound("switchover"))?;
    crate::service::jobs::cancel(state, meta, ctx, actor, job.id).await
}

/// Starts a failover to `candidate_node_id`: refused while the primary answers (use a
/// switchover) unless forced. It does not wait for other jobs of the store.
pub async fn failover(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    store_id: StoreId,
    cmd: &FailoverRequest,
) -> Result<JobRow> {
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let store = db::stores::get_for_update(&mut tx, ctx, store_id).await?.ok_or(Error::NotFound("store"))?;
    store.status.check(StoreOperation::Failover)?;
    let nodes = db::stores::nodes(&mut *tx, ctx.org_id, &[store_id]).await?;
    let primary = primary_of(&nodes)?;
    let candidate = nodes.iter().find(|n| n.id == cmd.candidate_node_id).ok_or_else(|| {
        Error::conflict("candidate_unknown", format!("the store has no node {}", cmd.candidate_node_id))
    })?;
    if candidate.role == NodeRole::Primary {
        return Err(Error::conflict("candidate_is_primary", "the candidate is the primary already"));
    }
    if candidate.fenced {
        return Err(Error::conflict(
            "candidate_not_streaming",
            "the candidate is fenced: repair the store first",
        ));
    }
    if !cmd.force && probe(state, primary).await?.is_some_and(|p| !p.in_recovery) {
        return Err(Error::conflict(
            "primary_healthy",
            "the primary answers: use a switchover, which loses nothing (or force the failover)",
        ));
    }
    if probe(state, candidate).await?.is_none_or(|c| !c.in_recovery) {
        return Err(Error::conflict("candidate_not_streaming", "the candidate does not answer as a standby"));
    }
    let params = FailoverParams {
        from: primary.id,
        candidate: Some(candidate.id),
        automatic: false,
        force: cmd.force,
    };
    let job = ha::enqueue_failover(&mut tx, ctx.org_id, store_id, params, Some(ctx.user_id), now)
        .await
        .map_err(not_enqueued)?;
    Event::new("store.failover", meta)
        .in_ctx(ctx, actor)
        .target(format!("store:{store_id}"))
        .detail("job", job.id)
        .detail("from", primary.id)
        .detail("candidate", candidate.id)
        .detail("force", cmd.force)
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    state.wake.notify_waiters();
    Ok(job)
}

/// Pauses (`true`) or resumes the monitor for the store: paused, a dead primary is reported but
/// not failed over. Idempotent.
pub async fn set_paused(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    store_id: StoreId,
    paused: bool,
) -> Result<Topology> {
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    db::stores::get_for_update(&mut tx, ctx, store_id).await?.ok_or(Error::NotFound("store"))?;
    let reason = format!("paused by {actor}");
    let changed =
        db::ha::set_paused(&mut *tx, ctx.org_id, store_id, paused.then_some(reason.as_str()), now).await?;
    if changed {
        let (kind, message, action) = if paused {
            (EventKind::HaPaused, reason.clone(), "store.ha_paused")
        } else {
            (EventKind::HaResumed, format!("resumed by {actor}"), "store.ha_resumed")
        };
        let e = NewEvent { node_id: None, kind, message: &message, actor_id: Some(ctx.user_id) };
        db::ha::insert_event(&mut *tx, ctx.org_id, store_id, &e, now).await?;
        Event::new(action, meta)
            .in_ctx(ctx, actor)
            .target(format!("store:{store_id}"))
            .record_in(&mut tx, now)
            .await?;
    }
    tx.commit().await?;
    topology(state, ctx, store_id).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::stores::tests::node;

    fn detail(nodes: Vec<NodeRow>) -> StoreDetail {
        StoreDetail { store: crate::service::stores::tests::store(), nodes, job: None }
    }

    #[test]
    fn the_phase_follows_the_nodes_and_the_job() {
        let mut nodes = vec![node("primary", NodeState::Running), node("replica", NodeState::Running)];
        nodes[1].streaming = Some(true);
        assert_eq!(phase(&detail(nodes.clone())), HaPhase::Healthy);
        let mut lost = nodes.clone();
        lost[1].streaming = Some(false);
        assert_eq!(phase(&detail(lost)), HaPhase::Degraded);
        let mut fenced = nodes.clone();
        fenced[0].fenced = true;
        assert_eq!(phase(&detail(fenced)), HaPhase::Degraded);
        // A replica in maintenance raises no alarm.
        let mut resting = nodes.clone();
        resting[1].maintenance = true;
        resting[1].state = NodeState::Stopped;
        assert_eq!(phase(&detail(resting)), HaPhase::Healthy);
        let mut paused = detail(nodes);
        paused.store.ha_paused_at = Some(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(phase(&paused), HaPhase::Paused);
    }

    #[test]
    fn a_candidate_must_be_a_running_replica_out_of_maintenance() {
        let mut nodes = vec![node("primary", NodeState::Running), node("replica", NodeState::Running)];
        let code = |nodes: &[NodeRow], id| match candidate_row(nodes, id) {
            Err(Error::Conflict { code, .. }) => code,
            other => panic!("{other:?}"),
        };
        assert!(candidate_row(&nodes, nodes[1].id).is_ok());
        assert_eq!(code(&nodes, nodes[0].id), "candidate_is_primary");
        assert_eq!(code(&nodes, NodeId::new()), "candidate_unknown");
        nodes[1].maintenance = true;
        assert_eq!(code(&nodes, nodes[1].id), "candidate_in_maintenance");
        nodes[1].maintenance = false;
        nodes[1].state = NodeState::Failed;
        assert_eq!(code(&nodes, nodes[1].id), "candidate_not_streaming");
    }
}
