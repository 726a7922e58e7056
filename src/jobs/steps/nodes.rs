//! The steps that make, change and remove a store's nodes.

use anyhow::Context;

use super::{need_spec, serving, spec_of, store_of};
use crate::db;
use crate::db::jobs::JobRow;
use crate::domain::{NodeId, NodeRole, NodeState};
use crate::jobs::JobEnv;

/// [`Step::CreatePrimary`](crate::jobs::Step::CreatePrimary).
pub async fn create_primary(env: &JobEnv, job: &JobRow, node: NodeId) -> anyhow::Result<()> {
    let spec = need_spec(env, job, node).await?;
    env.plane.driver.create_primary(&spec).await?;
    serving(env, job, node).await
}

/// [`Step::CreateReplica`](crate::jobs::Step::CreateReplica) and, with `rebuild`,
/// [`Step::RebuildNode`](crate::jobs::Step::RebuildNode).
pub async fn replicate(env: &JobEnv, job: &JobRow, node: NodeId, rebuild: bool) -> anyhow::Result<()> {
    let spec = need_spec(env, job, node).await?;
    let primary = primary_of(env, job).await?;
    if node == primary {
        // A primary is restarted in place; promoting a replica is a later feature.
        env.plane.driver.start(&spec).await?;
    } else {
        if rebuild {
            env.plane.driver.remove(&spec).await?;
        }
        let primary_spec = spec_of(env, job, primary).await?.context("the primary is gone")?;
        env.plane.driver.create_replica(&spec, &primary_spec).await?;
    }
    serving(env, job, node).await
}

/// [`Step::RemoveNode`](crate::jobs::Step::RemoveNode).
pub async fn remove(env: &JobEnv, job: &JobRow, node: NodeId) -> anyhow::Result<()> {
    // Already removed by an earlier run of this step: nothing left to do.
    let Some(spec) = spec_of(env, job, node).await? else { return Ok(()) };
    db::stores::set_node_state(&env.db, node, NodeState::Removing, env.clock.now()).await?;
    env.plane.driver.remove(&spec).await?;
    db::stores::delete_node(&env.db, node).await?;
    Ok(())
}

/// [`Step::RestartNode`](crate::jobs::Step::RestartNode) and
/// [`Step::ReconfigureNode`](crate::jobs::Step::ReconfigureNode): the spec, read at the start,
/// carries the configuration from the tables.
pub async fn restart(env: &JobEnv, job: &JobRow, node: NodeId) -> anyhow::Result<()> {
    let spec = need_spec(env, job, node).await?;
    env.plane.driver.stop(&spec).await?;
    env.plane.driver.start(&spec).await?;
    db::stores::set_node_state(&env.db, node, NodeState::Running, env.clock.now()).await?;
    Ok(())
}

/// [`Step::StopNode`](crate::jobs::Step::StopNode): the row first, so that nothing starts
/// the node again meanwhile.
pub async fn stop(env: &JobEnv, job: &JobRow, node: NodeId) -> anyhow::Result<()> {
    let spec = need_spec(env, job, node).await?;
    db::stores::set_node_state(&env.db, node, NodeState::Stopped, env.clock.now()).await?;
    env.plane.driver.stop(&spec).await?;
    Ok(())
}

/// What a [`Step::StopNode`](crate::jobs::Step::StopNode) that failed for good leaves: its row
/// said `stopped` before the stop, so a server still running is marked `running` again.
pub async fn stop_failed(env: &JobEnv, job: &JobRow, node: NodeId) -> anyhow::Result<()> {
    let Some(spec) = spec_of(env, job, node).await? else { return Ok(()) };
    if env.plane.driver.status(&spec).await?.running {
        db::stores::set_node_state(&env.db, node, NodeState::Running, env.clock.now()).await?;
    }
    Ok(())
}

/// [`Step::StartNode`](crate::jobs::Step::StartNode): the spec, read now, carries the node's
/// duty from the tables; a node already running is left as it is.
pub async fn start(env: &JobEnv, job: &JobRow, node: NodeId) -> anyhow::Result<()> {
    let spec = need_spec(env, job, node).await?;
    if env.plane.driver.status(&spec).await?.running {
        db::jobs::log(&env.db, job.id, "info", &format!("node {node}: already running"), env.clock.now())
            .await?;
    } else {
        env.plane.driver.start(&spec).await?;
    }
    serving(env, job, node).await
}

/// [`Step::GrowVolume`](crate::jobs::Step::GrowVolume).
pub async fn grow_volume(env: &JobEnv, job: &JobRow, node: NodeId) -> anyhow::Result<()> {
    let spec = need_spec(env, job, node).await?;
    env.plane.driver.grow_volume(&spec).await?;
    db::stores::clear_disk_full(&env.db, node).await?;
    Ok(())
}

/// [`Step::ApplyParameters`](crate::jobs::Step::ApplyParameters).
pub async fn apply_parameters(env: &JobEnv, job: &JobRow, node: NodeId) -> anyhow::Result<()> {
    let spec = need_spec(env, job, node).await?;
    let store_id = store_of(job)?;
    let group = db::parameter_groups::of_store(&env.db, job.org_id, store_id).await?.unwrap_or_default();
    // An attempt killed between the stop and the start of its restart left the node
    // stopped, which nothing else starts until Berth restarts.
    if !env.plane.driver.status(&spec).await?.running {
        env.plane.driver.start(&spec).await?;
    }
    let restarted = set_parameters(env, &spec, &group).await?;
    let message = if restarted.is_empty() {
        format!("node {node}: parameters applied by reload")
    } else {
        format!("node {node}: restarted for {}", restarted.join(", "))
    };
    db::jobs::log(&env.db, job.id, "info", &message, env.clock.now()).await?;
    Ok(())
}

async fn primary_of(env: &JobEnv, job: &JobRow) -> anyhow::Result<NodeId> {
    let nodes = db::stores::nodes(&env.db, job.org_id, &[store_of(job)?]).await?;
    nodes.iter().find(|n| n.role == NodeRole::Primary).map(|n| n.id).context("the store has no primary")
}

/// Sets the group's parameters on a node (and resets those Berth manages that the group leaves
/// out), reloads, and restarts the node if a changed parameter needs it. Returns those.
async fn set_parameters(
    env: &JobEnv,
    spec: &crate::provision::NodeSpec,
    group: &serde_json::Value,
) -> anyhow::Result<Vec<String>> {
    let driver = env.plane.driver.as_ref();
    let mut conn = driver.superuser(spec, "postgres").await?;
    let defs = crate::provision::parameters::catalog().for_vendor("postgres").unwrap_or_default();
    for def in defs {
        match group.get(&def.name).and_then(|v| v.as_str()) {
            Some(value) => {
                crate::provision::sql::execute_formatted(
                    &mut conn,
                    "alter system set %I = %L",
                    &[&def.name, value],
                )
                .await?
            }
            None => {
                crate::provision::sql::execute_formatted(&mut conn, "alter system reset %I", &[&def.name])
                    .await?
            }
        }
    }
    sqlx::query("select pg_reload_conf()").execute(&mut conn).await?;
    // pg_file_settings reads the files as this query runs, so it does not race the reload: a
    // value that differs from the running one and cannot change without a restart is an error
    // line there.
    let pending: Vec<String> = sqlx::query_scalar(
        "select distinct name from pg_file_settings where error is not null and name is not null order by name",
    )
    .fetch_all(&mut conn)
    .await?;
    drop(conn);
    if !pending.is_empty() {
        driver.stop(spec).await?;
        driver.start(spec).await?;
    }
    Ok(pending)
}
