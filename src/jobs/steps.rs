//! What each step does. Every step is idempotent: the worker may run it again after a crash.

use anyhow::{Context, bail};
use uuid::Uuid;

use super::{JobEnv, step};
use crate::db;
use crate::db::jobs::JobRow;
use crate::domain::{BackupStatus, NodeState, StoreStatus};

fn parse(s: &str) -> anyhow::Result<(&str, Option<Uuid>)> {
    match s.split_once(':') {
        Some((name, id)) => Ok((name, Some(id.parse().with_context(|| format!("step {s}"))?))),
        None => Ok((s, None)),
    }
}

pub async fn run(env: &JobEnv, job: &JobRow, step_text: &str) -> anyhow::Result<()> {
    let (name, node) = parse(step_text)?;
    let now = || env.clock.now();
    let store_id = job.store_id;
    let need = |n: Option<Uuid>| n.with_context(|| format!("step {step_text} names no node"));
    let spec_of = |node_id: Uuid| async move {
        let store_id = store_id.context("job has no store")?;
        env.plane.node_spec(&env.db, job.org_id, store_id, node_id, env.clock.now()).await
    };
    match name {
        step::NOOP => Ok(()),
        step::CREATE_PRIMARY => {
            let node = need(node)?;
            let spec = spec_of(node).await?.context("the node is gone")?;
            env.plane.driver.create_primary(&spec).await?;
            latest_access(env, job, node).await?;
            db::stores::set_node_state(&env.db, node, NodeState::Running, now()).await?;
            Ok(())
        }
        step::CREATE_REPLICA | step::REBUILD_NODE => {
            let node = need(node)?;
            let spec = spec_of(node).await?.context("the node is gone")?;
            let primary = primary_of(env, job).await?;
            if node == primary {
                // A primary is restarted in place; promoting a replica is a later feature.
                env.plane.driver.start(&spec).await?;
            } else {
                if name == step::REBUILD_NODE {
                    env.plane.driver.remove(&spec).await?;
                }
                let primary_spec = spec_of(primary).await?.context("the primary is gone")?;
                env.plane.driver.create_replica(&spec, &primary_spec).await?;
            }
            latest_access(env, job, node).await?;
            db::stores::set_node_state(&env.db, node, NodeState::Running, now()).await?;
            Ok(())
        }
        step::REMOVE_NODE => {
            let node = need(node)?;
            // Already removed by an earlier run of this step: nothing left to do.
            let Some(spec) = spec_of(node).await? else { return Ok(()) };
            db::stores::set_node_state(&env.db, node, NodeState::Removing, now()).await?;
            env.plane.driver.remove(&spec).await?;
            db::stores::delete_node(&env.db, node).await?;
            Ok(())
        }
        step::RESTART_NODE | step::RECONFIGURE_NODE => {
            let node = need(node)?;
            let spec = spec_of(node).await?.context("the node is gone")?;
            env.plane.driver.stop(&spec).await?;
            env.plane.driver.start(&spec).await?;
            db::stores::set_node_state(&env.db, node, NodeState::Running, now()).await?;
            Ok(())
        }
        step::GROW_VOLUME => {
            let node = need(node)?;
            let spec = spec_of(node).await?.context("the node is gone")?;
            env.plane.driver.grow_volume(&spec).await?;
            db::stores::clear_disk_full(&env.db, node).await?;
            Ok(())
        }
        step::APPLY_PARAMETERS => {
            let node = need(node)?;
            let spec = spec_of(node).await?.context("the node is gone")?;
            let store_id = store_id.context("job has no store")?;
            let group =
                db::parameter_groups::of_store(&env.db, job.org_id, store_id).await?.unwrap_or_default();
            // An attempt killed between the stop and the start of its restart left the node
            // stopped, which nothing else starts until Berth restarts.
            if !env.plane.driver.status(&spec).await?.running {
                env.plane.driver.start(&spec).await?;
            }
            let restarted = apply_parameters(env, &spec, &group).await?;
            let message = if restarted.is_empty() {
                format!("node {node}: parameters applied by reload")
            } else {
                format!("node {node}: restarted for {}", restarted.join(", "))
            };
            db::jobs::log(&env.db, job.id, "info", &message, now()).await?;
            Ok(())
        }
        step::TAKE_BACKUP => {
            let backup_id = need(node)?;
            let store_id = store_id.context("job has no store")?;
            let backup = db::backups::get_by_id(&env.db, job.org_id, backup_id)
                .await?
                .context("the backup is gone")?;
            if backup.status == BackupStatus::Succeeded {
                // Taken and recorded by an attempt that died before the job was marked done: a
                // new copy would gain nothing, and a failure to take one must not cost this one.
                return Ok(());
            }
            let nodes = db::stores::nodes(&env.db, job.org_id, &[store_id]).await?;
            // A replica when one runs, to spare the primary, unless the primary is asked for.
            let primary_only = job.params["source"].as_str() == Some("primary");
            let source = nodes
                .iter()
                .filter(|n| n.state == NodeState::Running && (!primary_only || n.role == "primary"))
                .min_by_key(|n| n.role == "primary")
                .context("no running node to back up")?;
            let spec = spec_of(source.id).await?.context("the node is gone")?;
            let backups = &env.plane.backups;
            let key = backups.key(store_id, backup_id);
            let path = backups.writable(&key).await?;
            let taken = match backup.kind.as_str() {
                "logical" => {
                    env.plane.driver.logical_backup(&spec, &path).await?;
                    None
                }
                _ => Some(env.plane.driver.base_backup(&spec, &path).await?),
            };
            backups.commit(&key).await?;
            let (size, sha256) = crate::backup::checksum(&backups.readable(&key).await?).await?;
            let finished = db::backups::Finished {
                node_id: source.id,
                size_bytes: size as i64,
                sha256: &sha256,
                location: &key,
                start_lsn: taken.as_ref().map(|t| t.start_lsn.as_str()),
                end_lsn: taken.as_ref().map(|t| t.end_lsn.as_str()),
                now: now(),
            };
            db::backups::succeed(&env.db, job.org_id, backup_id, finished).await?;
            Ok(())
        }
        step::RESTORE_NODE => {
            let node = need(node)?;
            let spec = spec_of(node).await?.context("the node is gone")?;
            let (backup, path) = verified_archive(env, job, &job.params).await?;
            if backup.kind == "logical" {
                env.plane.driver.logical_restore(&spec, &path).await?;
            } else {
                let wal = env.plane.backups.wal_dir(store_id.context("job has no store")?);
                env.plane.driver.restore(&spec, &path, &wal, restore_target(&job.params)?).await?;
            }
            latest_access(env, job, node).await?;
            db::stores::set_node_state(&env.db, node, NodeState::Running, now()).await?;
            Ok(())
        }
        step::FORK_PRIMARY => {
            let node = need(node)?;
            let spec = spec_of(node).await?.context("the node is gone")?;
            let from = &job.params["restore_from"];
            let (backup, path) = verified_archive(env, job, from).await?;
            let driver = env.plane.driver.as_ref();
            if backup.kind == "logical" {
                driver.create_primary(&spec).await?;
                driver.logical_restore(&spec, &path).await?;
            } else {
                let target = restore_target(from)?;
                if target != crate::provision::RestoreTarget::EndOfBackup {
                    // The source still running: what it wrote until now is archived to replay.
                    let source = db::stores::nodes(&env.db, job.org_id, &[backup.store_id]).await?;
                    if let Some(p) =
                        source.iter().find(|n| n.role == "primary" && n.state == NodeState::Running)
                    {
                        let at = env.clock.now();
                        if let Some(s) =
                            env.plane.node_spec(&env.db, job.org_id, backup.store_id, p.id, at).await?
                        {
                            driver.archive_current_wal(&s).await?;
                        }
                    }
                }
                let wal = env.plane.backups.wal_dir(backup.store_id);
                driver.restore(&spec, &path, &wal, target).await?;
                // The copy carries the source's roles: this store's own passwords replace them.
                driver.create_primary(&spec).await?;
            }
            latest_access(env, job, node).await?;
            db::stores::set_node_state(&env.db, node, NodeState::Running, now()).await?;
            Ok(())
        }
        step::DELETE_BACKUPS => {
            let store_id = store_id.context("job has no store")?;
            let keys = db::backups::delete_all_of_store(&env.db, job.org_id, store_id).await?;
            for key in keys {
                env.plane.backups.delete(&key).await?;
            }
            env.plane.backups.remove_store(store_id).await?;
            db::backup_schedules::delete(&env.db, job.org_id, store_id).await?;
            Ok(())
        }
        step::FINISH_AVAILABLE => {
            let store_id = store_id.context("job has no store")?;
            let nodes = db::stores::nodes(&env.db, job.org_id, &[store_id]).await?;
            let status = StoreStatus::settled(nodes.iter().all(|n| n.state == NodeState::Running));
            db::stores::set_status(&env.db, job.org_id, store_id, status, now()).await?;
            Ok(())
        }
        step::FINISH_DELETED => {
            let store_id = store_id.context("job has no store")?;
            db::stores::set_status(&env.db, job.org_id, store_id, StoreStatus::Deleted, now()).await?;
            Ok(())
        }
        step::CREATE_NETWORK
        | step::REMOVE_NETWORK
        | step::CONNECT_PEERING
        | step::APPLY_PEERING_ACCESS
        | step::DISCONNECT_PEERING => super::network::run(env, job, name, need(node)?).await,
        other => bail!("unknown step {other}"),
    }
}

/// The archive of the backup `params` names (`backup_id`), checked against its checksum.
async fn verified_archive(
    env: &JobEnv,
    job: &JobRow,
    params: &serde_json::Value,
) -> anyhow::Result<(db::backups::BackupRow, std::path::PathBuf)> {
    let backup_id: Uuid = params["backup_id"].as_str().context("job names no backup")?.parse()?;
    let backup =
        db::backups::get_by_id(&env.db, job.org_id, backup_id).await?.context("the backup is gone")?;
    let key = backup.location.as_deref().context("the backup has no archive")?;
    let path = env.plane.backups.readable(key).await?;
    let (_, sha256) = crate::backup::checksum(&path).await?;
    anyhow::ensure!(
        Some(&sha256) == backup.sha256.as_ref(),
        "the archive of backup {backup_id} does not match its checksum: it is corrupt; restore another"
    );
    Ok((backup, path))
}

/// `point_in_time` of the params, or the end of the backup.
fn restore_target(params: &serde_json::Value) -> anyhow::Result<crate::provision::RestoreTarget> {
    Ok(match params["point_in_time"].as_str() {
        Some(t) => crate::provision::RestoreTarget::Time(time::OffsetDateTime::parse(
            t,
            &time::format_description::well_known::Rfc3339,
        )?),
        None => crate::provision::RestoreTarget::EndOfBackup,
    })
}

/// Writes the access in force now into a node just made (or restored): a firewall rule or
/// peering that changed meanwhile found no server to write into, or wrote into data since
/// replaced, and the step's spec was read before.
async fn latest_access(env: &JobEnv, job: &JobRow, node: Uuid) -> anyhow::Result<()> {
    let store_id = job.store_id.context("job has no store")?;
    let spec = env.plane.node_spec(&env.db, job.org_id, store_id, node, env.clock.now()).await?;
    env.plane.driver.apply_access(&spec.context("the node is gone")?).await
}

async fn primary_of(env: &JobEnv, job: &JobRow) -> anyhow::Result<Uuid> {
    let store_id = job.store_id.context("job has no store")?;
    let nodes = db::stores::nodes(&env.db, job.org_id, &[store_id]).await?;
    nodes.iter().find(|n| n.role == "primary").map(|n| n.id).context("the store has no primary")
}

/// What a job that has failed for good leaves behind: never a store stuck in a transitional
/// state.
pub async fn on_final_failure(env: &JobEnv, job: &JobRow) -> anyhow::Result<()> {
    if super::network::owns_kind(&job.kind) {
        return super::network::on_final_failure(env, job).await;
    }
    if job.kind == super::BACKUP {
        for s in &job.steps {
            if let Ok((step::TAKE_BACKUP, Some(id))) = parse(s) {
                let reason = job.error.as_deref().unwrap_or("the backup failed");
                db::backups::fail(&env.db, job.org_id, id, reason, env.clock.now()).await?;
                // The archive of one recorded as taken (by an attempt that died before the job
                // was marked done) is kept.
                let backup = db::backups::get_by_id(&env.db, job.org_id, id).await?;
                if backup.is_none_or(|b| b.status != BackupStatus::Succeeded) {
                    let key = env.plane.backups.key(job.store_id.unwrap_or_default(), id);
                    env.plane.backups.delete(&key).await?;
                }
            }
        }
        // A failed backup leaves the store as it was.
        return Ok(());
    }
    let Some(store_id) = job.store_id else { return Ok(()) };
    let status = match job.kind.as_str() {
        super::CREATE_STORE | super::DELETE_STORE => StoreStatus::Failed,
        _ => StoreStatus::Degraded,
    };
    db::stores::set_status(&env.db, job.org_id, store_id, status, env.clock.now()).await?;
    Ok(())
}

/// Sets the group's parameters on a node (and resets those Berth manages that the group leaves
/// out), reloads, and restarts the node if a changed parameter needs it. Returns those.
async fn apply_parameters(
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
