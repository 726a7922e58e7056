use sqlx::{PgExecutor, Postgres, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::ha::{HaSettings, SyncMode};
use crate::domain::{Ctx, NodeId, NodeRole, NodeState, OrgId, StoreId, StoreStatus, VpcId};

#[derive(Debug, Clone)]
pub struct StoreRow {
    pub id: StoreId,
    pub org_id: OrgId,
    pub name: String,
    pub vendor: String,
    pub version: String,
    pub instance_size: String,
    pub volume_size_gb: i32,
    pub cloud: String,
    pub region: String,
    pub node_count: i32,
    pub tags: Vec<String>,
    pub deletion_protection: bool,
    pub status: StoreStatus,
    pub admin_user: String,
    pub database_name: String,
    pub revision: i32,
    /// The VPC of a private store.
    pub vpc_id: Option<VpcId>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// High availability: see `db::ha`.
    pub auto_failover: bool,
    pub failover_delay_seconds: i32,
    pub max_lag_on_failover_bytes: i64,
    pub synchronous: SyncMode,
    pub ha_paused_at: Option<OffsetDateTime>,
    pub ha_paused_reason: Option<String>,
    pub timeline: i32,
}

impl StoreRow {
    pub fn ha_settings(&self) -> HaSettings {
        HaSettings {
            auto_failover: self.auto_failover,
            failover_delay: self.failover_delay_seconds,
            max_lag_on_failover_bytes: self.max_lag_on_failover_bytes,
            synchronous: self.synchronous,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NodeRow {
    pub id: NodeId,
    pub store_id: StoreId,
    pub role: NodeRole,
    pub host: String,
    pub port: i32,
    pub state: NodeState,
    pub replication_lag_bytes: Option<i64>,
    pub checked_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub disk_size_bytes: Option<i64>,
    pub disk_used_bytes: Option<i64>,
    /// When the node's volume was last seen full, or a write on it failed for lack of space.
    pub disk_full_at: Option<OffsetDateTime>,
    /// Stopped by a failover or switchover, not to run read-write until it has rejoined.
    pub fenced: bool,
    /// Excluded from candidacy and from alerts.
    pub maintenance: bool,
    /// From the last check of its replication (see `db::ha::set_replication`).
    pub timeline: Option<i32>,
    pub received_lsn: Option<i64>,
    pub replayed_lsn: Option<i64>,
    pub lag_seconds: Option<f64>,
    pub streaming: Option<bool>,
    pub sync_state: Option<String>,
}

impl NodeRow {
    /// The volume is full, or was within [`DISK_FULL_SHOWN_FOR`] of the last health check: a
    /// failed write frees its space at once (its files are removed when it rolls back), and the
    /// people who could not write should still be told why.
    pub fn disk_full(&self) -> bool {
        self.disk_full_at
            .zip(self.checked_at)
            .is_some_and(|(full, checked)| full >= checked - DISK_FULL_SHOWN_FOR)
    }
}

pub const DISK_FULL_SHOWN_FOR: time::Duration = time::Duration::minutes(15);

pub struct NewStore<'a> {
    pub id: StoreId,
    pub name: &'a str,
    pub vendor: &'a str,
    pub version: &'a str,
    pub instance_size: &'a str,
    pub volume_size_gb: i32,
    pub cloud: &'a str,
    pub region: &'a str,
    pub node_count: i32,
    pub tags: &'a [String],
    pub deletion_protection: bool,
    pub admin_user: &'a str,
    pub database_name: &'a str,
    pub admin_password_enc: &'a [u8],
    pub replication_password_enc: &'a [u8],
    pub now: OffsetDateTime,
}

pub async fn insert(ex: impl PgExecutor<'_>, ctx: &Ctx, s: NewStore<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into stores (id, org_id, name, vendor, version, instance_size, volume_size_gb, cloud, region,
                             node_count, tags, deletion_protection, status, admin_user, database_name,
                             admin_password_enc, replication_password_enc, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'deploying', $13, $14, $15, $16, $17, $17)",
        s.id as StoreId,
        ctx.org_id as OrgId,
        s.name,
        s.vendor,
        s.version,
        s.instance_size,
        s.volume_size_gb,
        s.cloud,
        s.region,
        s.node_count,
        s.tags,
        s.deletion_protection,
        s.admin_user,
        s.database_name,
        s.admin_password_enc,
        s.replication_password_enc,
        s.now
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// A store of the context's organization that is not deleted.
pub async fn get(ex: impl PgExecutor<'_>, ctx: &Ctx, id: StoreId) -> sqlx::Result<Option<StoreRow>> {
    sqlx::query_as!(
        StoreRow,
        r#"select id, org_id, name, vendor, version, instance_size, volume_size_gb, cloud, region, node_count, tags,
                deletion_protection, status as "status: StoreStatus", admin_user, database_name, revision, vpc_id as "vpc_id: VpcId",
                created_at, updated_at, auto_failover, failover_delay_seconds, max_lag_on_failover_bytes,
                synchronous as "synchronous: SyncMode", ha_paused_at, ha_paused_reason, timeline
         from stores where org_id = $1 and id = $2 and status <> 'deleted'"#,
        ctx.org_id as OrgId,
        id as StoreId
    )
    .fetch_optional(ex)
    .await
}

/// The same, locked for the rest of the transaction.
pub async fn get_for_update(
    tx: &mut Transaction<'_, Postgres>,
    ctx: &Ctx,
    id: StoreId,
) -> sqlx::Result<Option<StoreRow>> {
    sqlx::query_as!(
        StoreRow,
        r#"select id, org_id, name, vendor, version, instance_size, volume_size_gb, cloud, region, node_count, tags,
                deletion_protection, status as "status: StoreStatus", admin_user, database_name, revision, vpc_id as "vpc_id: VpcId",
                created_at, updated_at, auto_failover, failover_delay_seconds, max_lag_on_failover_bytes,
                synchronous as "synchronous: SyncMode", ha_paused_at, ha_paused_reason, timeline
         from stores where org_id = $1 and id = $2 and status <> 'deleted' for update"#,
        ctx.org_id as OrgId,
        id as StoreId
    )
    .fetch_optional(&mut **tx)
    .await
}

/// For the jobs, which act for an organization they read from the job row.
pub async fn get_by_id(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    id: StoreId,
) -> sqlx::Result<Option<StoreRow>> {
    sqlx::query_as!(
        StoreRow,
        r#"select id, org_id, name, vendor, version, instance_size, volume_size_gb, cloud, region, node_count, tags,
                deletion_protection, status as "status: StoreStatus", admin_user, database_name, revision, vpc_id as "vpc_id: VpcId",
                created_at, updated_at, auto_failover, failover_delay_seconds, max_lag_on_failover_bytes,
                synchronous as "synchronous: SyncMode", ha_paused_at, ha_paused_reason, timeline
         from stores where org_id = $1 and id = $2"#,
        org_id as OrgId,
        id as StoreId
    )
    .fetch_optional(ex)
    .await
}

pub struct ListFilter<'a> {
    pub status: Option<StoreStatus>,
    pub tag: Option<&'a str>,
    /// `(created_at, id)` of the last store of the previous page.
    pub after: Option<(OffsetDateTime, Uuid)>,
    pub limit: i64,
}

pub async fn list(ex: impl PgExecutor<'_>, ctx: &Ctx, f: &ListFilter<'_>) -> sqlx::Result<Vec<StoreRow>> {
    let (after_at, after_id) = f.after.map_or((None, None), |(a, i)| (Some(a), Some(i)));
    sqlx::query_as!(
        StoreRow,
        r#"select id, org_id, name, vendor, version, instance_size, volume_size_gb, cloud, region, node_count, tags,
                deletion_protection, status as "status: StoreStatus", admin_user, database_name, revision, vpc_id as "vpc_id: VpcId",
                created_at, updated_at, auto_failover, failover_delay_seconds, max_lag_on_failover_bytes,
                synchronous as "synchronous: SyncMode", ha_paused_at, ha_paused_reason, timeline
         from stores
         where org_id = $1 and status <> 'deleted'
           and ($2::text is null or status = $2)
           and ($3::text is null or $3 = any(tags))
           and ($4::timestamptz is null or (created_at, id) > ($4, $5::uuid))
         order by created_at, id
         limit $6"#,
        ctx.org_id as OrgId,
        f.status.map(StoreStatus::as_str),
        f.tag,
        after_at,
        after_id,
        f.limit
    )
    .fetch_all(ex)
    .await
}

pub struct Secrets {
    pub admin_password_enc: Vec<u8>,
    pub replication_password_enc: Vec<u8>,
}

pub async fn secrets(ex: impl PgExecutor<'_>, org_id: OrgId, id: StoreId) -> sqlx::Result<Option<Secrets>> {
    sqlx::query_as!(
        Secrets,
        "select admin_password_enc, replication_password_enc from stores where org_id = $1 and id = $2",
        org_id as OrgId,
        id as StoreId
    )
    .fetch_optional(ex)
    .await
}

pub async fn set_status(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    id: StoreId,
    status: StoreStatus,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update stores set status = $3, updated_at = $4, revision = revision + 1,
                deleted_at = case when $3 = 'deleted' then $4 else deleted_at end
         where org_id = $1 and id = $2",
        org_id as OrgId,
        id as StoreId,
        status.as_str(),
        now
    )
    .execute(ex)
    .await?;
    Ok(())
}

#[derive(Default)]
pub struct Patch<'a> {
    pub name: Option<&'a str>,
    pub tags: Option<&'a [String]>,
    pub deletion_protection: Option<bool>,
    pub instance_size: Option<&'a str>,
    pub volume_size_gb: Option<i32>,
    pub node_count: Option<i32>,
    pub status: Option<StoreStatus>,
}

/// Applies a change if the store is still at `revision` (its ETag); `None` when it has moved on.
pub async fn update(
    ex: impl PgExecutor<'_>,
    ctx: &Ctx,
    id: StoreId,
    revision: i32,
    p: Patch<'_>,
    now: OffsetDateTime,
) -> sqlx::Result<Option<i32>> {
    sqlx::query_scalar!(
        "update stores set
             name = coalesce($4, name),
             tags = coalesce($5, tags),
             deletion_protection = coalesce($6, deletion_protection),
             instance_size = coalesce($7, instance_size),
             volume_size_gb = coalesce($8, volume_size_gb),
             node_count = coalesce($9, node_count),
             status = coalesce($10, status),
             revision = revision + 1,
             updated_at = $11
         where org_id = $1 and id = $2 and revision = $3 and status <> 'deleted'
         returning revision",
        ctx.org_id as OrgId,
        id as StoreId,
        revision,
        p.name,
        p.tags,
        p.deletion_protection,
        p.instance_size,
        p.volume_size_gb,
        p.node_count,
        p.status.map(StoreStatus::as_str),
        now
    )
    .fetch_optional(ex)
    .await
}

pub async fn nodes(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    store_ids: &[StoreId],
) -> sqlx::Result<Vec<NodeRow>> {
    sqlx::query_as!(
        NodeRow,
        r#"select id, store_id, role as "role: NodeRole", host, port, state as "state: NodeState", replication_lag_bytes, checked_at,
                created_at, disk_size_bytes, disk_used_bytes, disk_full_at, fenced, maintenance, timeline,
                received_lsn, replayed_lsn, lag_seconds, streaming, sync_state
         from store_nodes where org_id = $1 and store_id = any($2)
         order by store_id, role, created_at, id"#,
        org_id as OrgId,
        store_ids as &[StoreId]
    )
    .fetch_all(ex)
    .await
}

pub async fn insert_node(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    store_id: StoreId,
    node_id: NodeId,
    role: NodeRole,
    port: i32,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into store_nodes (id, store_id, org_id, role, host, port, state, created_at, updated_at)
         values ($1, $2, $3, $4, '127.0.0.1', $5, 'creating', $6, $6)",
        node_id as NodeId,
        store_id as StoreId,
        org_id as OrgId,
        role as NodeRole,
        port,
        now
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// Every port held by a node row on this host, whatever address the node listens on: two VPCs
/// may use the same block, so only a port of its own keeps each node's `(host, port)` unique.
pub async fn used_ports(ex: impl PgExecutor<'_>) -> sqlx::Result<Vec<i32>> {
    sqlx::query_scalar!("select port from store_nodes").fetch_all(ex).await
}

pub async fn set_node_state(
    ex: impl PgExecutor<'_>,
    node_id: NodeId,
    state: NodeState,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update store_nodes set state = $2, updated_at = $3 where id = $1",
        node_id as NodeId,
        state.as_str(),
        now
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// What a health check saw of a node.
pub struct Health {
    pub state: NodeState,
    pub lag: Option<i64>,
    pub disk: Option<crate::provision::DiskUsage>,
}

pub async fn set_node_health(
    ex: impl PgExecutor<'_>,
    node_id: NodeId,
    h: Health,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    let bytes = |b: u64| i64::try_from(b).unwrap_or(i64::MAX);
    sqlx::query!(
        "update store_nodes set state = case when state = 'stopped' then state else $2 end,
                replication_lag_bytes = $3, checked_at = $4,
                disk_size_bytes = $5, disk_used_bytes = $6,
                disk_full_at = case when $7 then $4 else disk_full_at end,
                updated_at = case when state in ($2, 'stopped') then updated_at else $4 end
         where id = $1 and state in ('running', 'stopped', 'failed')",
        node_id as NodeId,
        h.state.as_str(),
        h.lag,
        now,
        h.disk.map(|d| bytes(d.size_bytes)),
        h.disk.map(|d| bytes(d.used_bytes)),
        h.disk.is_some_and(|d| d.full),
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// The node's volume grew: what was full is no longer.
pub async fn clear_disk_full(ex: impl PgExecutor<'_>, node_id: NodeId) -> sqlx::Result<()> {
    sqlx::query!("update store_nodes set disk_full_at = null where id = $1", node_id as NodeId)
        .execute(ex)
        .await?;
    Ok(())
}

pub async fn delete_node(ex: impl PgExecutor<'_>, node_id: NodeId) -> sqlx::Result<()> {
    sqlx::query!("delete from store_nodes where id = $1", node_id as NodeId).execute(ex).await?;
    Ok(())
}

/// Every node of every store that is not deleted: what should exist on the host.
pub async fn all_live_nodes(ex: impl PgExecutor<'_>) -> sqlx::Result<Vec<(OrgId, NodeRow)>> {
    let rows = sqlx::query!(
        r#"select n.id, n.store_id, n.role as "role: NodeRole", n.host, n.port, n.state as "state: NodeState", n.replication_lag_bytes,
                n.checked_at, n.created_at, n.disk_size_bytes, n.disk_used_bytes, n.disk_full_at, n.org_id,
                n.fenced, n.maintenance, n.timeline, n.received_lsn, n.replayed_lsn, n.lag_seconds, n.streaming,
                n.sync_state
         from store_nodes n join stores s on s.id = n.store_id
         where s.status <> 'deleted'"#
    )
    .fetch_all(ex)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.org_id.into(),
                NodeRow {
                    id: r.id.into(),
                    store_id: r.store_id.into(),
                    role: r.role,
                    host: r.host,
                    port: r.port,
                    state: r.state,
                    replication_lag_bytes: r.replication_lag_bytes,
                    checked_at: r.checked_at,
                    created_at: r.created_at,
                    disk_size_bytes: r.disk_size_bytes,
                    disk_used_bytes: r.disk_used_bytes,
                    disk_full_at: r.disk_full_at,
                    fenced: r.fenced,
                    maintenance: r.maintenance,
                    timeline: r.timeline,
                    received_lsn: r.received_lsn,
                    replayed_lsn: r.replayed_lsn,
                    lag_seconds: r.lag_seconds,
                    streaming: r.streaming,
                    sync_state: r.sync_state,
                },
            )
        })
        .collect())
}

/// Stores by status, per organization, for the system status.
pub async fn count_by_status(
    ex: impl PgExecutor<'_>,
    org_ids: &[OrgId],
) -> sqlx::Result<Vec<(OrgId, StoreStatus, i64)>> {
    let rows = sqlx::query!(
        r#"select org_id, status as "status: StoreStatus", count(*) as "n!" from stores
           where org_id = any($1) and status <> 'deleted' group by org_id, status order by org_id, status"#,
        org_ids as &[OrgId]
    )
    .fetch_all(ex)
    .await?;
    Ok(rows.into_iter().map(|r| (r.org_id.into(), r.status, r.n)).collect())
}

/// Makes the store's row agree with its nodes: the count, and the status
/// [`StoreStatus::settled`] gives for them (the rule is Rust's; the query only tells it whether
/// every node runs).
pub async fn settle(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    id: StoreId,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update stores s set
             node_count = (select count(*) from store_nodes n where n.store_id = s.id),
             status = case when exists (select 1 from store_nodes n where n.store_id = s.id and n.state <> $4)
                           then $5 else $6 end,
             revision = revision + 1,
             updated_at = $3
         where org_id = $1 and id = $2",
        org_id as OrgId,
        id as StoreId,
        now,
        NodeState::Running.as_str(),
        StoreStatus::settled(false).as_str(),
        StoreStatus::settled(true).as_str(),
    )
    .execute(ex)
    .await?;
    Ok(())
}

pub async fn delete_nodes_of(ex: impl PgExecutor<'_>, org_id: OrgId, store_id: StoreId) -> sqlx::Result<()> {
    sqlx::query!(
        "delete from store_nodes where org_id = $1 and store_id = $2",
        org_id as OrgId,
        store_id as StoreId
    )
    .execute(ex)
    .await?;
    Ok(())
}
