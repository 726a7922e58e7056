//! A store's statistics, as sampled from its nodes by the collector: which metrics there are,
//! what range and bucket width may be asked for, and each node's series.

use std::collections::BTreeMap;

use time::{Duration, OffsetDateTime};

use crate::app::AppState;
use crate::db;
use crate::db::stats::{Latest, Point};
use crate::domain::{Ctx, Error, NodeId, Result, StoreId};

pub const METRICS: [&str; 10] = [
    "connections",
    "xact_commit",
    "xact_rollback",
    "tup_fetched",
    "tup_inserted",
    "tup_updated",
    "tup_deleted",
    "db_size_bytes",
    "cache_hit_ratio",
    "replication_lag_bytes",
];

/// The most buckets one series may have.
const MAX_BUCKETS: i64 = 1000;

/// A series asked for: a metric, a range (default the hour before now) and a bucket width in
/// seconds (default 60).
#[derive(Debug, Clone, Copy)]
pub struct SeriesRequest<'a> {
    pub metric: &'a str,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    pub step: Option<i64>,
}

/// A series request checked, its defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
    pub step: i64,
}

/// Checks `q` at `now`: a known metric, `from` before `to`, and a step of at least a second
/// that gives at most 1,000 buckets.
pub fn range(q: &SeriesRequest<'_>, now: OffsetDateTime) -> Result<Range> {
    if !METRICS.contains(&q.metric) {
        return Err(Error::field("metric", format!("must be one of: {}", METRICS.join(", "))));
    }
    let to = q.to.unwrap_or(now);
    let from = q.from.unwrap_or(to - Duration::HOUR);
    let step = q.step.unwrap_or(60);
    if from >= to {
        return Err(Error::field("from", "must be before to"));
    }
    if step < 1 || (to - from).whole_seconds() / step > MAX_BUCKETS {
        return Err(Error::field("step", "must be at least 1 second and give at most 1,000 buckets"));
    }
    Ok(Range { from, to, step })
}

/// One metric of the context's store per node (ordered by node), in buckets of `step` seconds;
/// and the step.
pub async fn series(
    state: &AppState,
    ctx: &Ctx,
    store_id: StoreId,
    q: &SeriesRequest<'_>,
) -> Result<(BTreeMap<NodeId, Vec<Point>>, i64)> {
    let r = range(q, state.clock.now())?;
    db::stores::get(&state.db, ctx, store_id).await?.ok_or(Error::NotFound("store"))?;
    let points = db::stats::series(&state.db, ctx, store_id, q.metric, r.from, r.to, r.step).await?;
    let mut by_node: BTreeMap<NodeId, Vec<Point>> = BTreeMap::new();
    for p in points {
        by_node.entry(p.node_id).or_default().push(p);
    }
    Ok((by_node, r.step))
}

/// The latest sample of every node of the context's store.
pub async fn summary(state: &AppState, ctx: &Ctx, store_id: StoreId) -> Result<Vec<Latest>> {
    db::stores::get(&state.db, ctx, store_id).await?.ok_or(Error::NotFound("store"))?;
    Ok(db::stats::latest(&state.db, ctx, store_id).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(r: Result<Range>) -> String {
        match r {
            Err(Error::Invalid { errors, .. }) => errors[0].field.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_series_defaults_to_the_last_hour_by_minute_and_is_bounded() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(1);
        let q = SeriesRequest { metric: "connections", from: None, to: None, step: None };
        assert_eq!(range(&q, now).unwrap(), Range { from: now - Duration::HOUR, to: now, step: 60 });
        assert_eq!(field(range(&SeriesRequest { metric: "passwords", ..q }, now)), "metric");
        assert_eq!(field(range(&SeriesRequest { from: Some(now), ..q }, now)), "from");
        assert_eq!(field(range(&SeriesRequest { step: Some(0), ..q }, now)), "step");
        // An hour in 3-second buckets is 1,200 of them; in 4-second ones, 900.
        assert_eq!(field(range(&SeriesRequest { step: Some(3), ..q }, now)), "step");
        assert!(range(&SeriesRequest { step: Some(4), ..q }, now).is_ok());
    }
}
