//! The statistics collector: samples every running node on an interval.

use std::time::Duration;

use super::JobEnv;
use crate::db;
use crate::db::stats::Sample;
use crate::domain::NodeState;

/// Samples each running node once, and drops samples older than `retention`.
pub async fn collect_all(env: &JobEnv, retention: time::Duration) -> anyhow::Result<usize> {
    let now = env.clock.now();
    let mut taken = 0;
    for (org_id, node) in db::stores::all_live_nodes(&env.db).await? {
        if node.state != NodeState::Running {
            continue;
        }
        let spec = env.plane.probe_spec(&node)?;
        match sample(env, &spec).await {
            Ok(s) => {
                db::stats::insert(&env.db, org_id, node.store_id, node.id, now, &s).await?;
                taken += 1;
            }
            Err(e) => tracing::debug!(node = %node.id, error = %e, "sampling a node"),
        }
    }
    db::stats::purge_before(&env.db, now - retention).await?;
    Ok(taken)
}

async fn sample(env: &JobEnv, spec: &crate::provision::NodeSpec) -> anyhow::Result<Sample> {
    let mut conn = env.plane.driver.superuser(spec, "postgres").await?;
    let row: (i64, i64, i64, i64, i64, i64, i64, i64, i64) = sqlx::query_as(
        "select coalesce(sum(numbackends), 0)::int8, coalesce(sum(xact_commit), 0)::int8, coalesce(sum(xact_rollback), 0)::int8,
                coalesce(sum(tup_fetched), 0)::int8, coalesce(sum(tup_inserted), 0)::int8, coalesce(sum(tup_updated), 0)::int8,
                coalesce(sum(tup_deleted), 0)::int8, coalesce(sum(blks_hit), 0)::int8, coalesce(sum(blks_read), 0)::int8
         from pg_stat_database where datname is not null and datname not in ('template0', 'template1')",
    )
    .fetch_one(&mut conn)
    .await?;
    let size: i64 = sqlx::query_scalar(
        "select coalesce(sum(pg_database_size(oid)), 0)::int8 from pg_database where not datistemplate",
    )
    .fetch_one(&mut conn)
    .await?;
    let lag: Option<i64> = sqlx::query_scalar(
        "select case when pg_is_in_recovery()
                     then pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::int8 end",
    )
    .fetch_one(&mut conn)
    .await?;
    let (hit, read) = (row.7 as f64, row.8 as f64);
    Ok(Sample {
        // Berth's own sampling session is not a client.
        connections: (row.0 - 1).max(0),
        xact_commit: row.1,
        xact_rollback: row.2,
        tup_fetched: row.3,
        tup_inserted: row.4,
        tup_updated: row.5,
        tup_deleted: row.6,
        db_size_bytes: size,
        cache_hit_ratio: (hit + read > 0.0).then(|| hit / (hit + read)),
        replication_lag_bytes: lag,
    })
}

/// Samples every `every` for as long as the process runs.
pub async fn collector_loop(env: JobEnv, every: Duration, retention: time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = collect_all(&env, retention).await {
            tracing::warn!(error = %e, "collecting statistics");
        }
    }
}
