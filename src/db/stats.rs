use sqlx::PgExecutor;
use time::OffsetDateTime;

use crate::domain::{Ctx, NodeId, OrgId, StoreId};

#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub connections: i64,
    pub xact_commit: i64,
    pub xact_rollback: i64,
    pub tup_fetched: i64,
    pub tup_inserted: i64,
    pub tup_updated: i64,
    pub tup_deleted: i64,
    pub db_size_bytes: i64,
    pub cache_hit_ratio: Option<f64>,
    pub replication_lag_bytes: Option<i64>,
}

pub async fn insert(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    store_id: StoreId,
    node_id: NodeId,
    at: OffsetDateTime,
    s: &Sample,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into store_stats (org_id, store_id, node_id, at, connections, xact_commit, xact_rollback, tup_fetched,
                                  tup_inserted, tup_updated, tup_deleted, db_size_bytes, cache_hit_ratio, replication_lag_bytes)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        org_id as OrgId,
        store_id as StoreId,
        node_id as NodeId,
        at,
        s.connections,
        s.xact_commit,
        s.xact_rollback,
        s.tup_fetched,
        s.tup_inserted,
        s.tup_updated,
        s.tup_deleted,
        s.db_size_bytes,
        s.cache_hit_ratio,
        s.replication_lag_bytes
    )
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn purge_before(ex: impl PgExecutor<'_>, before: OffsetDateTime) -> sqlx::Result<u64> {
    Ok(sqlx::query!("delete from store_stats where at < $1", before).execute(ex).await?.rows_affected())
}

pub struct Point {
    pub node_id: NodeId,
    pub bucket: OffsetDateTime,
    pub avg: Option<f64>,
    pub max: Option<f64>,
}

/// One metric of a store, per node, averaged and maxed over `step`-second buckets. The metric
/// name is one of a fixed list (checked by the caller) and chosen by a `case`, never spliced.
pub async fn series(
    ex: impl PgExecutor<'_>,
    ctx: &Ctx,
    store_id: StoreId,
    metric: &str,
    from: OffsetDateTime,
    to: OffsetDateTime,
    step_secs: i64,
) -> sqlx::Result<Vec<Point>> {
    sqlx::query_as!(
        Point,
        r#"with v as (
               select node_id, at,
                      case $3
                          when 'connections' then connections::float8
                          when 'xact_commit' then xact_commit::float8
                          when 'xact_rollback' then xact_rollback::float8
                          when 'tup_fetched' then tup_fetched::float8
                          when 'tup_inserted' then tup_inserted::float8
                          when 'tup_updated' then tup_updated::float8
                          when 'tup_deleted' then tup_deleted::float8
                          when 'db_size_bytes' then db_size_bytes::float8
                          when 'cache_hit_ratio' then cache_hit_ratio
                          when 'replication_lag_bytes' then replication_lag_bytes::float8
                      end as value
               from store_stats
               where org_id = $1 and store_id = $2 and at >= $4 and at < $5
           )
           select node_id as "node_id!",
                  date_bin(make_interval(secs => $6::float8), at, $4) as "bucket!",
                  avg(value) as avg, max(value) as max
           from v group by 1, 2 order by 1, 2"#,
        ctx.org_id as OrgId,
        store_id as StoreId,
        metric,
        from,
        to,
        step_secs as f64
    )
    .fetch_all(ex)
    .await
}

pub struct Latest {
    pub node_id: NodeId,
    pub at: OffsetDateTime,
    pub connections: i64,
    pub xact_commit: i64,
    pub xact_rollback: i64,
    pub tup_fetched: i64,
    pub tup_inserted: i64,
    pub tup_updated: i64,
    pub tup_deleted: i64,
    pub db_size_bytes: i64,
    pub cache_hit_ratio: Option<f64>,
    pub replication_lag_bytes: Option<i64>,
}

pub async fn latest(ex: impl PgExecutor<'_>, ctx: &Ctx, store_id: StoreId) -> sqlx::Result<Vec<Latest>> {
    sqlx::query_as!(
        Latest,
        "select distinct on (node_id) node_id, at, connections, xact_commit, xact_rollback, tup_fetched, tup_inserted,
                tup_updated, tup_deleted, db_size_bytes, cache_hit_ratio, replication_lag_bytes
         from store_stats where org_id = $1 and store_id = $2
         order by node_id, at desc",
        ctx.org_id as OrgId,
        store_id as StoreId
    )
    .fetch_all(ex)
    .await
}
