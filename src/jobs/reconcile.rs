//! Bringing the host and the tables into agreement: at start-up (after a crash or a reboot)
//! and then periodically as a health check.

use std::collections::HashSet;
use std::time::Duration;

use super::{Enqueue, JobEnv, NotEnqueued, Step, kinds};
use crate::db;
use crate::domain::NodeState;
use crate::provision::NodeSpec;

/// Releases at once the jobs held by workers of this host whose process is gone (Berth was
/// killed): their leases would otherwise keep the jobs waiting until they run out.
async fn release_dead_holders(env: &JobEnv) -> anyhow::Result<()> {
    let hostname = nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
    for (id, holder) in db::jobs::running_holders(&env.db).await? {
        let Some(holder) = holder else { continue };
        // `hostname:pid:nonce/worker`
        let mut parts = holder.split(':');
        let (Some(host), Some(pid)) = (parts.next(), parts.next().and_then(|p| p.parse::<i32>().ok())) else {
            continue;
        };
        let alive = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
        if host == hostname && !alive {
            tracing::info!(job = %id, %holder, "releasing a job whose worker died");
            db::jobs::expire_lease(&env.db, id, &holder, env.clock.now()).await?;
        }
    }
    Ok(())
}

/// Starts the nodes that should run but do not, removes the servers and networks no table
/// knows, and frees the jobs of workers that died on this host.
pub async fn at_start(env: &JobEnv) -> anyhow::Result<()> {
    release_dead_holders(env).await?;
    let known = db::stores::all_live_nodes(&env.db).await?;
    let known_ids: HashSet<_> = known.iter().map(|(_, n)| n.id).collect();
    for (store_id, node_id) in env.plane.driver.present_nodes().await? {
        if !known_ids.contains(&node_id) {
            // Never deleted on a guess: the control database may be the wrong one, or lost.
            match env.plane.driver.quarantine(store_id, node_id).await {
                Ok(to) => tracing::error!(%store_id, %node_id, %to,
                    "a node no store knows was stopped and set aside in quarantine, untouched; \
                     see `berth quarantine list` and GET /api/v1/system/status"),
                Err(e) => tracing::error!(%store_id, %node_id, error = %format!("{e:#}"),
                    "a node no store knows could not be set aside; it is left where it is"),
            }
        }
    }
    let stores: Vec<_> = known.iter().map(|(_, n)| n.store_id).collect();
    for what in env.plane.driver.retain_stores(&stores).await? {
        tracing::warn!(%what, "removed what no store of any Berth can come back for");
    }
    // Private nodes start inside their networks.
    super::network::at_start(env).await?;
    for (org_id, node) in known {
        // Nodes being created or removed belong to their job, which will finish them.
        if !matches!(node.state, NodeState::Running | NodeState::Failed) {
            continue;
        }
        match env.plane.node_spec(&env.db, org_id, node.store_id, node.id, env.clock.now()).await {
            Ok(Some(spec)) => {
                if let Err(e) = start_as_its_duty(env, &node, &spec).await {
                    tracing::error!(node = %node.id, error = %format!("{e:#}"), "starting a node");
                    db::stores::set_node_state(&env.db, node.id, NodeState::Failed, env.clock.now()).await?;
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!(node = %node.id, error = %e, "reading a node's spec"),
        }
    }
    if let Err(e) = restart_for_rewind(env).await {
        tracing::error!(error = %format!("{e:#}"), "rolling out wal_log_hints");
    }
    Ok(())
}

/// Stores made before Berth turned `wal_log_hints` on (`pg_rewind` needs it to bring a former
/// primary back) get a rolling restart, replicas first; a store busy with a job gets it at the
/// next start of Berth.
async fn restart_for_rewind(env: &JobEnv) -> anyhow::Result<()> {
    let mut stale: Vec<(crate::domain::OrgId, crate::domain::StoreId)> = Vec::new();
    for (org_id, node) in db::stores::all_live_nodes(&env.db).await? {
        if node.state != NodeState::Running || stale.contains(&(org_id, node.store_id)) {
            continue;
        }
        let Ok(mut conn) = env.plane.driver.superuser(&env.plane.probe_spec(&node)?, "postgres").await else {
            continue;
        };
        let hints: String = sqlx::query_scalar("show wal_log_hints").fetch_one(&mut conn).await?;
        if hints != "on" {
            stale.push((org_id, node.store_id));
        }
    }
    for (org_id, store_id) in stale {
        let mut nodes = db::stores::nodes(&env.db, org_id, &[store_id]).await?;
        nodes.sort_by_key(|n| n.role == crate::domain::NodeRole::Primary);
        let mut steps: Vec<Step> = nodes.iter().map(|n| Step::ReconfigureNode(n.id)).collect();
        steps.push(Step::FinishAvailable);
        let now = env.clock.now();
        let mut tx = env.db.begin().await?;
        match super::enqueue(
            &mut tx,
            org_id,
            None,
            now,
            Enqueue::of::<kinds::RollingRestart>(store_id, steps),
        )
        .await
        {
            Ok(job) => {
                db::stores::set_status(
                    &mut *tx,
                    org_id,
                    store_id,
                    crate::domain::StoreStatus::Modifying,
                    now,
                )
                .await?;
                tx.commit().await?;
                tracing::warn!(%store_id, job = %job.id, "a store's nodes run without wal_log_hints: restarting them, replicas first");
            }
            Err(NotEnqueued::Blocked(_)) => {}
            Err(NotEnqueued::Db(e)) => return Err(e.into()),
        }
    }
    Ok(())
}

/// The fencing rule at start: a fenced node is stopped (its failover or a repair rejoins it);
/// any other starts as its duty says, and one found running read-write that is not the
/// store's primary is stopped and fenced before anything else happens.
async fn start_as_its_duty(env: &JobEnv, node: &db::stores::NodeRow, spec: &NodeSpec) -> anyhow::Result<()> {
    let driver = env.plane.driver.as_ref();
    if node.fenced {
        return driver.fence(spec).await;
    }
    driver.start(spec).await?;
    let writable = driver.replication(spec).await?.is_some_and(|r| !r.in_recovery);
    if writable && !spec.duty.is_primary() {
        driver.fence(spec).await?;
        db::ha::set_fenced(&env.db, node.id, true, env.clock.now()).await?;
        tracing::error!(store_id = %node.store_id, node_id = %node.id,
            "a node ran read-write without being its store's primary: stopped and fenced; a repair brings it back as a replica");
    }
    Ok(())
}

/// Every `every`, asks each node how it is and records it.
pub async fn health_loop(env: JobEnv, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        if let Err(e) = check_all(&env).await {
            tracing::warn!(error = %e, "node health check");
        }
    }
}

pub async fn check_all(env: &JobEnv) -> anyhow::Result<()> {
    // Expired firewall rules leave the table and then the nodes.
    for (org_id, store_id) in db::firewall::delete_expired(&env.db, env.clock.now()).await? {
        for node in db::stores::nodes(&env.db, org_id, &[store_id]).await? {
            if let Some(spec) =
                env.plane.node_spec(&env.db, org_id, store_id, node.id, env.clock.now()).await?
            {
                env.plane.driver.apply_access(&spec).await?;
            }
        }
    }
    for (org_id, node) in db::stores::all_live_nodes(&env.db).await? {
        if !matches!(node.state, NodeState::Running | NodeState::Failed | NodeState::Stopped) {
            continue;
        }
        let spec = env.plane.probe_spec(&node)?;
        let status = env.plane.driver.status(&spec).await?;
        let disk = env.plane.driver.disk_usage(&spec).await?;
        if disk.is_some_and(|d| d.full) && !node.disk_full() {
            let message = "the node's volume is full: its writes fail until the store's volume_size grows";
            tracing::warn!(store_id = %node.store_id, node_id = %node.id, "{message}");
            if !node.maintenance {
                let e = db::ha::NewEvent {
                    node_id: Some(node.id),
                    kind: crate::domain::ha::EventKind::DiskFull,
                    message,
                    actor_id: None,
                };
                db::ha::insert_event(&env.db, org_id, node.store_id, &e, env.clock.now()).await?;
            }
        }
        let health = db::stores::Health {
            state: if status.running { NodeState::Running } else { NodeState::Failed },
            lag: status.replay_lag_bytes,
            disk,
        };
        db::stores::set_node_health(&env.db, node.id, health, env.clock.now()).await?;
    }
    Ok(())
}
