//! The steps of switchovers and failovers: demote, fence, elect, promote, repoint, rejoin.
//! The tables decide first, the servers follow: a node becomes the primary in the control
//! database before it is promoted, so that a crash in between leaves a primary that Berth's
//! next start (or the retry) promotes, never two.

use std::time::{Duration, Instant};

use anyhow::Context;

use super::{need_spec, store_of};
use crate::db;
use crate::db::ha::{NewEvent, NewPromotion};
use crate::db::jobs::JobRow;
use crate::db::stores::NodeRow;
use crate::domain::ha::{Candidate, EventKind, NoCandidate, PromotionKind, choose_candidate};
use crate::domain::{NodeId, NodeRole, NodeState, StoreStatus};
use crate::jobs::kinds::FailoverParams;
use crate::jobs::{Abort, JobEnv};
use crate::provision::{Duty, NodeSpec, Rejoined, Upstream};

/// How long a switchover waits for the candidate to receive the old primary's shutdown
/// checkpoint before it gives up and starts the old primary again.
const CHECKPOINT_WAIT: Duration = Duration::from_secs(30);
/// How long a repointed replica is given to stream from the new primary before it is rewound.
const FOLLOW_WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);
/// How long a switchover gives its candidate to pass the checks again when it starts.
const PRECHECK_WAIT: Duration = Duration::from_secs(15);

async fn nodes_of(env: &JobEnv, job: &JobRow) -> anyhow::Result<Vec<NodeRow>> {
    Ok(db::stores::nodes(&env.db, job.org_id, &[store_of(job)?]).await?)
}

fn primary_of(nodes: &[NodeRow]) -> Option<&NodeRow> {
    nodes.iter().find(|n| n.role == NodeRole::Primary && !n.fenced)
}

async fn event(
    env: &JobEnv,
    job: &JobRow,
    node: Option<NodeId>,
    kind: EventKind,
    message: &str,
) -> anyhow::Result<()> {
    let e = NewEvent { node_id: node, kind, message, actor_id: job.created_by };
    db::ha::insert_event(&env.db, job.org_id, store_of(job)?, &e, env.clock.now()).await?;
    db::jobs::log(&env.db, job.id, "info", message, env.clock.now()).await?;
    Ok(())
}

async fn modifying(env: &JobEnv, job: &JobRow) -> anyhow::Result<()> {
    db::stores::set_status(&env.db, job.org_id, store_of(job)?, StoreStatus::Modifying, env.clock.now())
        .await?;
    Ok(())
}

/// [`Step::Demote`](crate::jobs::Step::Demote).
pub async fn demote(env: &JobEnv, job: &JobRow, from: NodeId, candidate: NodeId) -> anyhow::Result<()> {
    let nodes = nodes_of(env, job).await?;
    if nodes.iter().any(|n| n.id == candidate && n.role == NodeRole::Primary) {
        return Ok(());
    }
    if primary_of(&nodes).map(|p| p.id) != Some(from) {
        return Err(
            Abort("the primary changed since the switchover was asked for; nothing was done".into()).into()
        );
    }
    modifying(env, job).await?;
    let (old, cand) = (need_spec(env, job, from).await?, need_spec(env, job, candidate).await?);
    let driver = env.plane.driver.as_ref();
    let ha = db::ha::get(&env.db, job.org_id, store_of(job)?).await?.context("the store is gone")?;
    if driver.replication(&old).await?.is_some() {
        // The checks again, now: given a few seconds, for a candidate still connecting (to an
        // old primary that Berth's start started again, say) or catching up.
        let deadline = Instant::now() + PRECHECK_WAIT;
        loop {
            let (p, c) = (driver.replication(&old).await?, driver.replication(&cand).await?);
            let max_lag = ha.settings.max_lag_on_failover_bytes;
            match crate::jobs::ha::switchover_refusal(p.as_ref(), c.as_ref(), old.port, max_lag) {
                None => break,
                Some(r) if Instant::now() >= deadline => {
                    return Err(Abort(format!("{} ({}); nothing was done", r.detail, r.code)).into());
                }
                Some(_) => tokio::time::sleep(POLL).await,
            }
        }
        // A checkpoint now leaves the shutdown checkpoint, taken with writes stopped, little to do.
        let mut conn = driver.superuser(&old, "postgres").await?;
        sqlx::query("checkpoint").execute(&mut conn).await?;
        drop(conn);
        driver.stop(&old).await?;
    }
    let checkpoint = driver.shutdown_checkpoint(&old).await?;
    let deadline = Instant::now() + CHECKPOINT_WAIT;
    while let Some(at) = checkpoint {
        let received = driver.replication(&cand).await?.and_then(|r| r.received);
        if received.is_some_and(|r| r > at) {
            db::jobs::log(
                &env.db,
                job.id,
                "info",
                &format!("the candidate has the shutdown checkpoint ({at})"),
                env.clock.now(),
            )
            .await?;
            return Ok(());
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    // The tables still name the old primary: it starts read-write again, as it was.
    driver.start(&old).await?;
    let why = match checkpoint {
        Some(at) => format!(
            "the candidate did not receive the old primary's shutdown checkpoint ({at}) within {}s",
            CHECKPOINT_WAIT.as_secs()
        ),
        None => "the old primary did not shut down cleanly".to_owned(),
    };
    let message = format!(
        "switchover aborted: {why}; the old primary was started again as the primary, nothing was lost"
    );
    event(env, job, Some(from), EventKind::SwitchoverAborted, &message).await?;
    Err(Abort(message).into())
}

/// [`Step::Promote`](crate::jobs::Step::Promote): `to` becomes the primary, tables first.
pub async fn promote(env: &JobEnv, job: &JobRow, promotion: NewPromotion) -> anyhow::Result<()> {
    let (store_id, now, to) = (store_of(job)?, env.clock.now(), promotion.to);
    let mut tx = env.db.begin().await?;
    db::ha::promote(&mut tx, job.org_id, store_id, to, now).await?;
    db::ha::record_promotion(&mut *tx, job.org_id, store_id, &promotion, now).await?;
    tx.commit().await?;
    let spec = need_spec(env, job, to).await?;
    let driver = env.plane.driver.as_ref();
    driver.promote(&spec).await?;
    // No upstream, and the synchronous standbys of the store's mode.
    driver.reconfigure(&spec).await?;
    let timeline = driver.replication(&spec).await?.context("the promoted node does not answer")?.timeline;
    let mut conn = driver.superuser(&spec, "postgres").await?;
    let switch = crate::provision::sql::timeline_switch(&mut conn, timeline).await?;
    drop(conn);
    let timeline = i32::try_from(timeline).context("timeline out of range")?;
    let switch_lsn = switch.and_then(|l| i64::try_from(l.0).ok());
    db::ha::set_promotion_timeline(&env.db, job.org_id, store_id, job.id, to, timeline, switch_lsn).await?;
    let (kind, how) = match promotion.kind {
        PromotionKind::Switchover => (EventKind::Switchover, "switchover"),
        PromotionKind::Failover => (EventKind::Failover, "failover"),
    };
    let at = switch.map(|l| format!(" at {l}")).unwrap_or_default();
    let message = format!("{how}: node {to} promoted to primary on timeline {timeline}{at}");
    event(env, job, Some(to), kind, &message).await
}

/// [`Step::Fence`](crate::jobs::Step::Fence).
pub async fn fence(env: &JobEnv, job: &JobRow, node: NodeId) -> anyhow::Result<()> {
    let nodes = nodes_of(env, job).await?;
    let Some(row) = nodes.iter().find(|n| n.id == node) else { return Ok(()) };
    modifying(env, job).await?;
    db::ha::set_fenced(&env.db, node, true, env.clock.now()).await?;
    // Fenced, its duty is a standby's with no upstream: it starts read-only, if anything starts it.
    env.plane.driver.fence(&need_spec(env, job, node).await?).await?;
    if !row.fenced {
        event(
            env,
            job,
            Some(node),
            EventKind::Fenced,
            &format!("node {node} fenced: stopped, and not to run read-write until it rejoins"),
        )
        .await?;
    }
    Ok(())
}

/// [`Step::Elect`](crate::jobs::Step::Elect).
pub async fn elect(env: &JobEnv, job: &JobRow, p: &FailoverParams) -> anyhow::Result<()> {
    let from = p.from;
    let nodes = nodes_of(env, job).await?;
    let promotion = |to: NodeId, lost: Option<i64>| NewPromotion {
        kind: PromotionKind::Failover,
        automatic: p.automatic,
        from: Some(from),
        to,
        lost_bytes_estimate: lost,
        job_id: job.id,
    };
    if let Some(done) = nodes.iter().find(|n| n.role == NodeRole::Primary && n.id != from) {
        // An earlier attempt chose: only make sure it is promoted.
        return promote(env, job, promotion(done.id, None)).await;
    }
    let ha = db::ha::get(&env.db, job.org_id, store_of(job)?).await?.context("the store is gone")?;
    let replicas: Vec<&NodeRow> = nodes
        .iter()
        .filter(|n| n.id != from && n.role == NodeRole::Replica)
        .filter(|n| matches!(n.state, NodeState::Running | NodeState::Failed))
        .collect();
    let mut candidates = Vec::new();
    for n in &replicas {
        let seen = env.plane.driver.replication(&env.plane.probe_spec(n)?).await?;
        let lsn = |l: Option<crate::provision::Lsn>| l.map_or(0, |l| l.0);
        candidates.push(Candidate {
            node_id: n.id,
            eligible: seen.as_ref().is_some_and(|s| s.in_recovery) && !n.maintenance && !n.fenced,
            received: seen.as_ref().map_or(0, |s| lsn(s.received.or(s.replayed))),
            replayed: seen.as_ref().map_or(0, |s| lsn(s.replayed)),
        });
    }
    let answering = candidates.iter().filter(|c| c.eligible).count();
    let needed = ha.settings.synchronous.replicas_needed_for_failover(replicas.len());
    if answering < needed && !p.force {
        anyhow::bail!(
            "{answering} of the store's {} replicas answer; in synchronous mode {} a failover needs {needed} \
             to be sure that no acknowledged commit is lost",
            replicas.len(),
            ha.settings.synchronous
        );
    }
    let primary_at = nodes.iter().find(|n| n.id == from).and_then(|n| n.received_lsn).map(|l| l as u64);
    let to = match p.candidate {
        Some(c) => {
            candidates.iter().find(|x| x.node_id == c && x.eligible).map(|x| x.node_id).ok_or_else(|| {
                Abort(format!("the candidate {c} does not answer as a standby; nothing was promoted"))
            })?
        }
        None => {
            let limit = if p.automatic { ha.settings.max_lag_on_failover_bytes as u64 } else { u64::MAX };
            choose_candidate(&candidates, primary_at, limit).map_err(|e| match e {
                NoCandidate::NoneEligible => anyhow::anyhow!("no replica can be promoted: each is down, fenced or in maintenance"),
                NoCandidate::TooFarBehind { node_id, lag_bytes } => anyhow::anyhow!(
                    "the most advanced replica, {node_id}, is {lag_bytes} bytes behind, more than max_lag_on_failover_bytes"
                ),
            })?
        }
    };
    let received = candidates.iter().find(|c| c.node_id == to).map_or(0, |c| c.received);
    let lost = primary_at.map(|at| i64::try_from(at.saturating_sub(received)).unwrap_or(i64::MAX));
    promote(env, job, promotion(to, lost)).await
}

/// The spec of `node` as a standby of the primary `primary`, whatever its row says (a fenced
/// node's own duty has no upstream).
fn following(mut spec: NodeSpec, primary: &NodeRow) -> anyhow::Result<NodeSpec> {
    let port = u16::try_from(primary.port).context("port out of range")?;
    spec.duty =
        Duty::Standby { upstream: Some(Upstream { node_id: primary.id, host: primary.host.clone(), port }) };
    Ok(spec)
}

/// [`Step::Repoint`](crate::jobs::Step::Repoint).
pub async fn repoint(env: &JobEnv, job: &JobRow) -> anyhow::Result<()> {
    let nodes = nodes_of(env, job).await?;
    let primary = primary_of(&nodes).context("the store has no primary")?;
    let primary_spec = need_spec(env, job, primary.id).await?;
    let driver = env.plane.driver.as_ref();
    let replicas: Vec<&NodeRow> = nodes
        .iter()
        .filter(|n| {
            n.role == NodeRole::Replica
                && !n.fenced
                && matches!(n.state, NodeState::Running | NodeState::Failed)
        })
        .collect();
    let mut specs = Vec::new();
    for n in replicas {
        let spec = need_spec(env, job, n.id).await?;
        match driver.reconfigure(&spec).await {
            Ok(()) => specs.push(spec),
            Err(e) => {
                let message = format!("node {} could not be told to follow the new primary: {e:#}", n.id);
                db::jobs::log(&env.db, job.id, "warn", &message, env.clock.now()).await?;
            }
        }
    }
    let deadline = Instant::now() + FOLLOW_WAIT;
    for spec in specs {
        loop {
            let seen = driver.replication(&spec).await?;
            let Some(seen) = seen else { break }; // Down: the health checks and a repair see to it.
            if seen.receiver.is_some_and(|r| r.streaming() && r.sender_port == Some(primary_spec.port)) {
                break;
            }
            if Instant::now() >= deadline {
                let how = driver.rejoin(&spec, &primary_spec).await?;
                let message = format!(
                    "node {} did not follow the new primary and rejoined it ({})",
                    spec.node_id,
                    rejoined(how)
                );
                event(env, job, Some(spec.node_id), EventKind::Rejoined, &message).await?;
                break;
            }
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(())
}

/// Waits until the node streams from the primary on `port`; false if it does not within the
/// follow wait.
async fn follows(env: &JobEnv, spec: &NodeSpec, port: u16) -> anyhow::Result<bool> {
    let deadline = Instant::now() + FOLLOW_WAIT;
    loop {
        let seen = env.plane.driver.replication(spec).await?;
        if seen.and_then(|s| s.receiver).is_some_and(|r| r.streaming() && r.sender_port == Some(port)) {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(POLL).await;
    }
}

fn rejoined(how: Rejoined) -> &'static str {
    match how {
        Rejoined::AsIs => "its data had not diverged",
        Rejoined::Rewound => "rewound with pg_rewind",
        Rejoined::Recloned => "the rewind failed, so it was copied afresh",
    }
}

/// [`Step::Rejoin`](crate::jobs::Step::Rejoin).
pub async fn rejoin(env: &JobEnv, job: &JobRow, node: NodeId) -> anyhow::Result<()> {
    let nodes = nodes_of(env, job).await?;
    let primary = primary_of(&nodes).context("the store has no primary")?;
    if primary.id == node || !nodes.iter().any(|n| n.id == node) {
        return Ok(());
    }
    let primary_spec = need_spec(env, job, primary.id).await?;
    let spec = following(need_spec(env, job, node).await?, primary)?;
    let driver = env.plane.driver.as_ref();
    let mut how = driver.rejoin(&spec, &primary_spec).await?;
    if !follows(env, &spec, primary_spec.port).await? {
        // Rewound (or found not to have diverged) but not streaming: copied afresh instead.
        let message =
            format!("node {node} did not stream after rejoining ({}); copying it afresh", rejoined(how));
        db::jobs::log(&env.db, job.id, "warn", &message, env.clock.now()).await?;
        driver.remove(&spec).await?;
        driver.create_replica(&spec, &primary_spec).await?;
        how = Rejoined::Recloned;
        anyhow::ensure!(
            follows(env, &spec, primary_spec.port).await?,
            "node {node} does not stream from the primary even copied afresh"
        );
    }
    let now = env.clock.now();
    db::ha::set_fenced(&env.db, node, false, now).await?;
    db::stores::set_node_state(&env.db, node, NodeState::Running, now).await?;
    // Unfenced, it counts among the primary's synchronous standbys again.
    driver.reconfigure(&need_spec(env, job, primary.id).await?).await?;
    let message = format!("node {node} rejoined as a replica of {} ({})", primary.id, rejoined(how));
    event(env, job, Some(node), EventKind::Rejoined, &message).await
}

/// [`Step::Reconfigure`](crate::jobs::Step::Reconfigure).
pub async fn reconfigure(env: &JobEnv, job: &JobRow, node: NodeId) -> anyhow::Result<()> {
    env.plane.driver.reconfigure(&need_spec(env, job, node).await?).await
}
