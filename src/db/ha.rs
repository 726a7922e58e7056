//! High availability's tables: each store's HA settings and timeline, what the last check saw
//! of each node's replication, the promotions, the events, and the monitor's lease.

use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::ha::{EventKind, HaSettings, PromotionKind, SyncMode};
use crate::domain::{JobId, NodeId, OrgId, StoreId, UserId};

/// A store's HA settings and state, as the monitor and the topology read them.
#[derive(Debug, Clone)]
pub struct StoreHa {
    pub org_id: OrgId,
    pub store_id: StoreId,
    pub settings: HaSettings,
    pub paused_at: Option<OffsetDateTime>,
    pub paused_reason: Option<String>,
    pub timeline: i32,
}

/// A store's row as `StoreHa` is read from.
struct StoreHaRow {
    org_id: OrgId,
    id: StoreId,
    auto_failover: bool,
    failover_delay_seconds: i32,
    max_lag_on_failover_bytes: i64,
    synchronous: SyncMode,
    ha_paused_at: Option<OffsetDateTime>,
    ha_paused_reason: Option<String>,
    timeline: i32,
}

impl From<StoreHaRow> for StoreHa {
    fn from(r: StoreHaRow) -> Self {
        Self {
            org_id: r.org_id,
            store_id: r.id,
            settings: HaSettings {
                auto_failover: r.auto_failover,
                failover_delay: r.failover_delay_seconds,
                max_lag_on_failover_bytes: r.max_lag_on_failover_bytes,
                synchronous: r.synchronous,
            },
            paused_at: r.ha_paused_at,
            paused_reason: r.ha_paused_reason,
            timeline: r.timeline,
        }
    }
}

pub async fn get(ex: impl PgExecutor<'_>, org_id: OrgId, store_id: StoreId) -> sqlx::Result<Option<StoreHa>> {
    let row = sqlx::query_as!(
        StoreHaRow,
        r#"select org_id as "org_id: OrgId", id as "id: StoreId", auto_failover, failover_delay_seconds,
                  max_lag_on_failover_bytes, synchronous as "synchronous: SyncMode", ha_paused_at, ha_paused_reason,
                  timeline
           from stores where org_id = $1 and id = $2 and status <> 'deleted'"#,
        org_id as OrgId,
        store_id as StoreId
    )
    .fetch_optional(ex)
    .await?;
    Ok(row.map(Into::into))
}

/// Every store the monitor watches: not deleted, with a replica.
pub async fn watched(ex: impl PgExecutor<'_>) -> sqlx::Result<Vec<StoreHa>> {
    let rows = sqlx::query_as!(
        StoreHaRow,
        r#"select s.org_id as "org_id: OrgId", s.id as "id: StoreId", s.auto_failover, s.failover_delay_seconds,
                  s.max_lag_on_failover_bytes, s.synchronous as "synchronous: SyncMode", s.ha_paused_at,
                  s.ha_paused_reason, s.timeline
           from stores s
           where s.status not in ('deleted', 'deleting', 'deploying')
             and exists (select 1 from store_nodes n where n.store_id = s.id and n.role = 'replica')
           order by s.id"#
    )
    .fetch_all(ex)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

pub async fn set_settings(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    store_id: StoreId,
    s: &HaSettings,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update stores set auto_failover = $3, failover_delay_seconds = $4, max_lag_on_failover_bytes = $5,
                synchronous = $6
         where org_id = $1 and id = $2",
        org_id as OrgId,
        store_id as StoreId,
        s.auto_failover,
        s.failover_delay,
        s.max_lag_on_failover_bytes,
        s.synchronous.as_str()
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// Pauses the monitor for the store (`reason` given) or resumes it (`None`). Returns whether
/// that changed anything.
pub async fn set_paused(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    store_id: StoreId,
    reason: Option<&str>,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update stores set ha_paused_at = case when $3::text is null then null else $4::timestamptz end,
                ha_paused_reason = $3
         where org_id = $1 and id = $2 and (ha_paused_at is null) = ($3::text is not null)",
        org_id as OrgId,
        store_id as StoreId,
        reason,
        now
    )
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// What a check saw of a node's replication.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub timeline: Option<i32>,
    pub received_lsn: Option<i64>,
    pub replayed_lsn: Option<i64>,
    pub lag_seconds: Option<f64>,
    pub streaming: Option<bool>,
    pub sync_state: Option<String>,
}

impl Seen {
    /// A node that did not answer: its last positions kept, not streaming.
    pub fn unanswered(node: &super::stores::NodeRow) -> Self {
        Self {
            timeline: node.timeline,
            received_lsn: node.received_lsn,
            replayed_lsn: node.replayed_lsn,
            lag_seconds: None,
            streaming: (node.role == crate::domain::NodeRole::Replica).then_some(false),
            sync_state: None,
        }
    }
}

pub async fn set_seen(
    ex: impl PgExecutor<'_>,
    node_id: NodeId,
    s: &Seen,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update store_nodes set timeline = $2, received_lsn = $3, replayed_lsn = $4,
                lag_seconds = $5, streaming = $6, sync_state = $7, checked_at = $8
         where id = $1",
        node_id as NodeId,
        s.timeline,
        s.received_lsn,
        s.replayed_lsn,
        s.lag_seconds,
        s.streaming,
        s.sync_state,
        now
    )
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn set_fenced(
    ex: impl PgExecutor<'_>,
    node_id: NodeId,
    fenced: bool,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update store_nodes set fenced = $2, updated_at = $3 where id = $1",
        node_id as NodeId,
        fenced,
        now
    )
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn set_maintenance(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    node_id: NodeId,
    on: bool,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update store_nodes set maintenance = $3, updated_at = $4 where org_id = $1 and id = $2",
        org_id as OrgId,
        node_id as NodeId,
        on,
        now
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// Makes `to` the store's primary on a new timeline, in the caller's transaction: the old
/// primary (if any) becomes a fenced replica first, so that there is never a moment with two.
/// Returns the timeline the control database now names. Idempotent: `to` already primary
/// changes nothing.
pub async fn promote(
    tx: &mut PgConnection,
    org_id: OrgId,
    store_id: StoreId,
    to: NodeId,
    now: OffsetDateTime,
) -> sqlx::Result<i32> {
    let already = sqlx::query_scalar!(
        "select role = 'primary' as \"primary!\" from store_nodes where org_id = $1 and store_id = $2 and id = $3",
        org_id as OrgId,
        store_id as StoreId,
        to as NodeId
    )
    .fetch_one(&mut *tx)
    .await?;
    if !already {
        sqlx::query!(
            "update store_nodes set role = 'replica', fenced = true, updated_at = $3
             where org_id = $1 and store_id = $2 and role = 'primary'",
            org_id as OrgId,
            store_id as StoreId,
            now
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "update store_nodes set role = 'primary', fenced = false, updated_at = $3 where org_id = $1 and id = $2",
            org_id as OrgId,
            to as NodeId,
            now
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "update stores set timeline = timeline + 1, revision = revision + 1, updated_at = $3
             where org_id = $1 and id = $2",
            org_id as OrgId,
            store_id as StoreId,
            now
        )
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query_scalar!(
        "select timeline from stores where org_id = $1 and id = $2",
        org_id as OrgId,
        store_id as StoreId
    )
    .fetch_one(&mut *tx)
    .await
}

/// A promotion, as the history shows it.
#[derive(Debug, Clone)]
pub struct PromotionRow {
    pub id: Uuid,
    pub kind: PromotionKind,
    pub automatic: bool,
    pub from_node_id: Option<NodeId>,
    pub to_node_id: NodeId,
    pub timeline: Option<i32>,
    pub switch_lsn: Option<i64>,
    pub lost_bytes_estimate: Option<i64>,
    pub job_id: Option<JobId>,
    pub at: OffsetDateTime,
}

pub struct NewPromotion {
    pub kind: PromotionKind,
    pub automatic: bool,
    pub from: Option<NodeId>,
    pub to: NodeId,
    pub lost_bytes_estimate: Option<i64>,
    pub job_id: JobId,
}

/// Records the promotion a job makes, once: the job's second attempt finds its row.
pub async fn record_promotion(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    store_id: StoreId,
    p: &NewPromotion,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into store_promotions (id, org_id, store_id, kind, automatic, from_node_id, to_node_id,
                lost_bytes_estimate, job_id, at)
         select $1, $2, $3, $4, $5, $6, $7, $8, $9, $10
         where not exists (select 1 from store_promotions where job_id = $9 and to_node_id = $7)",
        Uuid::now_v7(),
        org_id as OrgId,
        store_id as StoreId,
        p.kind.as_str(),
        p.automatic,
        p.from as Option<NodeId>,
        p.to as NodeId,
        p.lost_bytes_estimate,
        p.job_id as JobId,
        now
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// The timeline the promoted node writes on and where it forked off, once it reports them; the
/// store's timeline becomes it.
pub async fn set_promotion_timeline(
    ex: &sqlx::PgPool,
    org_id: OrgId,
    store_id: StoreId,
    job_id: JobId,
    to: NodeId,
    timeline: i32,
    switch_lsn: Option<i64>,
) -> sqlx::Result<()> {
    let mut tx = ex.begin().await?;
    sqlx::query!(
        "update store_promotions set timeline = $3, switch_lsn = $4 where job_id = $1 and to_node_id = $2",
        job_id as JobId,
        to as NodeId,
        timeline,
        switch_lsn
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "update stores set timeline = $3 where org_id = $1 and id = $2",
        org_id as OrgId,
        store_id as StoreId,
        timeline
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// The store's promotions, newest first.
pub async fn promotions(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    store_id: StoreId,
    before: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<PromotionRow>> {
    let (before_at, before_id) = before.map_or((None, None), |(a, i)| (Some(a), Some(i)));
    sqlx::query_as!(
        PromotionRow,
        r#"select id, kind as "kind: PromotionKind", automatic, from_node_id as "from_node_id: NodeId",
                  to_node_id as "to_node_id: NodeId", timeline, switch_lsn, lost_bytes_estimate,
                  job_id as "job_id: JobId", at
           from store_promotions
           where org_id = $1 and store_id = $2
             and ($3::timestamptz is null or (at, id) < ($3, $4::uuid))
           order by at desc, id desc
           limit $5"#,
        org_id as OrgId,
        store_id as StoreId,
        before_at,
        before_id,
        limit
    )
    .fetch_all(ex)
    .await
}

/// Automatic failovers of the store since `since`: what the failover limit counts.
pub async fn automatic_failovers_since(
    ex: impl PgExecutor<'_>,
    store_id: StoreId,
    since: OffsetDateTime,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"select count(*) as "n!" from store_promotions
           where store_id = $1 and kind = 'failover' and automatic and at >= $2"#,
        store_id as StoreId,
        since
    )
    .fetch_one(ex)
    .await
}

#[derive(Debug, Clone)]
pub struct EventRow {
    pub id: Uuid,
    pub node_id: Option<NodeId>,
    pub kind: EventKind,
    pub message: String,
    pub actor_id: Option<UserId>,
    pub at: OffsetDateTime,
}

pub struct NewEvent<'a> {
    pub node_id: Option<NodeId>,
    pub kind: EventKind,
    pub message: &'a str,
    pub actor_id: Option<UserId>,
}

pub async fn insert_event(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    store_id: StoreId,
    e: &NewEvent<'_>,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into store_events (id, org_id, store_id, node_id, kind, message, actor_id, at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
        Uuid::now_v7(),
        org_id as OrgId,
        store_id as StoreId,
        e.node_id as Option<NodeId>,
        e.kind.as_str(),
        e.message,
        e.actor_id as Option<UserId>,
        now
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// The store's events, newest first.
pub async fn events(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    store_id: StoreId,
    before: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<EventRow>> {
    let (before_at, before_id) = before.map_or((None, None), |(a, i)| (Some(a), Some(i)));
    sqlx::query_as!(
        EventRow,
        r#"select id, node_id as "node_id: NodeId", kind as "kind: EventKind", message,
                  actor_id as "actor_id: UserId", at
           from store_events
           where org_id = $1 and store_id = $2
             and ($3::timestamptz is null or (at, id) < ($3, $4::uuid))
           order by at desc, id desc
           limit $5"#,
        org_id as OrgId,
        store_id as StoreId,
        before_at,
        before_id,
        limit
    )
    .fetch_all(ex)
    .await
}

/// Takes or renews the monitor's lease for `holder` until `until`: true when `holder` holds it.
pub async fn lead(
    ex: impl PgExecutor<'_>,
    holder: &str,
    now: OffsetDateTime,
    until: OffsetDateTime,
) -> sqlx::Result<bool> {
    let held = sqlx::query_scalar!(
        "insert into ha_leader (id, holder, expires_at) values (true, $1, $3)
         on conflict (id) do update set holder = $1, expires_at = $3
           where ha_leader.holder = $1 or ha_leader.expires_at < $2
         returning holder",
        holder,
        now,
        until
    )
    .fetch_optional(ex)
    .await?;
    Ok(held.is_some())
}

/// Gives the lease up (at shutdown), so that another instance takes over at once.
pub async fn resign(ex: impl PgExecutor<'_>, holder: &str) -> sqlx::Result<()> {
    sqlx::query!("delete from ha_leader where holder = $1", holder).execute(ex).await?;
    Ok(())
}
