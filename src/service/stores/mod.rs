//! Stores: making them (`create`), reading them with their nodes and job in progress, changing
//! them (a resize is a job), deleting and repairing them, and revealing their credentials. The
//! steps of each job are planned by pure functions, tested below.

mod create;

pub use create::{
    ADMIN_USER, CreateStore, Created, DATABASE, NewStore, Reply, RestoreFrom, create, create_steps,
};

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::audit::{Event, RequestMeta};
use crate::db;
use crate::db::jobs::JobRow;
use crate::db::stores::{ListFilter, NodeRow, StoreRow};
use crate::domain::ha::HaPatch;
use crate::domain::{
    Ctx, Error, NodeRole, NodeState, Precondition, Result, StoreId, StoreOperation, StoreStatus, names,
    on_constraint,
};
use crate::jobs::{Step, kinds};
use crate::provision::catalog::Choice;
use crate::provision::sizing;
use crate::service::jobs::{Enqueue, enqueue};

/// A store as it is read: its row, its nodes, and the job in progress on it, if any.
#[derive(Debug, Clone)]
pub struct StoreDetail {
    pub store: StoreRow,
    pub nodes: Vec<NodeRow>,
    pub job: Option<JobRow>,
}

/// What [`names::tags`] accepts, for the OpenAPI document.
pub(crate) fn tags_schema() -> utoipa::openapi::Array {
    let tag = utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .pattern(Some(r"^[A-Za-z0-9._:=/-]{1,64}$"));
    utoipa::openapi::ArrayBuilder::new().items(tag).max_items(Some(20)).build()
}

fn optional_tags_schema() -> utoipa::openapi::Array {
    let mut schema = tags_schema();
    schema.schema_type = utoipa::openapi::schema::SchemaType::from_iter([
        utoipa::openapi::Type::Array,
        utoipa::openapi::Type::Null,
    ]);
    schema
}

/// One store of the organization (not a deleted one).
pub async fn get(state: &AppState, ctx: &Ctx, id: StoreId) -> Result<StoreDetail> {
    let store = db::stores::get(&state.db, ctx, id).await?.ok_or(Error::NotFound("store"))?;
    let nodes = db::stores::nodes(&state.db, ctx.org_id, &[id]).await?;
    let job = db::jobs::active_for_store(&state.db, ctx.org_id, id).await?;
    Ok(StoreDetail { store, nodes, job })
}

/// The organization's stores that `filter` selects, oldest first.
pub async fn list(state: &AppState, ctx: &Ctx, filter: &ListFilter<'_>) -> Result<Vec<StoreRow>> {
    Ok(db::stores::list(&state.db, ctx, filter).await?)
}

/// The nodes and the job in progress of each of `stores`, in their order.
pub async fn details(state: &AppState, ctx: &Ctx, stores: Vec<StoreRow>) -> Result<Vec<StoreDetail>> {
    let ids: Vec<StoreId> = stores.iter().map(|s| s.id).collect();
    let mut nodes = db::stores::nodes(&state.db, ctx.org_id, &ids).await?;
    let mut items = Vec::with_capacity(stores.len());
    for store in stores {
        let (mine, rest): (Vec<_>, Vec<_>) = nodes.into_iter().partition(|n| n.store_id == store.id);
        nodes = rest;
        let job = db::jobs::active_for_store(&state.db, ctx.org_id, store.id).await?;
        items.push(StoreDetail { store, nodes: mine, job });
    }
    Ok(items)
}

#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateStore {
    /// As in [`CreateStore`].
    #[schema(pattern = r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// As in [`CreateStore`]: the whole new set.
    #[schema(schema_with = optional_tags_schema)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_protection: Option<bool>,
    /// A new size is applied by a job that restarts the nodes, replicas first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_size: Option<String>,
    /// GB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_size: Option<i64>,
    /// High availability settings to change; the others stay as they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ha: Option<HaPatch>,
}

/// A change made.
#[derive(Debug)]
pub struct Updated {
    /// The store as read after the change.
    pub detail: StoreDetail,
    /// Its revision once changed.
    pub revision: i32,
    /// The job of a size change.
    pub job: Option<JobRow>,
}

/// Changes a store, if it is still at `precondition`'s revision. Name, tags and deletion
/// protection change at once; a new instance size (which must hold the store's parameter group)
/// or a larger volume starts a job.
pub async fn update(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    store_id: StoreId,
    precondition: Option<Precondition>,
    cmd: &UpdateStore,
) -> Result<Updated> {
    let name = cmd.name.as_deref().map(names::store_name).transpose()?;
    let tags = cmd.tags.as_deref().map(names::tags).transpose()?;
    let mut tx = state.db.begin().await?;
    let store = db::stores::get_for_update(&mut tx, ctx, store_id).await?.ok_or(Error::NotFound("store"))?;
    if precondition.is_some_and(|p| !p.holds(store.revision)) {
        return Err(Error::PreconditionFailed);
    }
    let size = cmd.instance_size.as_deref().filter(|s| *s != store.instance_size);
    let volume = cmd.volume_size.filter(|v| *v != i64::from(store.volume_size_gb));
    if volume.is_some_and(|v| v < i64::from(store.volume_size_gb)) {
        return Err(Error::field(
            "volume_size",
            format!("a volume grows and never shrinks: it is {} GB", store.volume_size_gb),
        ));
    }
    if size.is_some() || volume.is_some() {
        state.plane.catalog.validate(&Choice {
            vendor: &store.vendor,
            version: &store.version,
            instance_size: size.unwrap_or(&store.instance_size),
            volume_size: volume.unwrap_or(i64::from(store.volume_size_gb)),
            nodes: i64::from(store.node_count),
            cloud: &store.cloud,
            region: &store.region,
        })?;
    }
    if let Some(size) = size.and_then(|s| state.plane.catalog.instance_size(s)) {
        if let Some(group) = db::parameter_groups::of_store(&mut *tx, ctx.org_id, store_id).await? {
            sizing::check_resize(size, &group)?;
        }
    }
    let resizing = size.is_some() || volume.is_some();
    if resizing {
        store.status.check(StoreOperation::Resize)?;
    }
    let ha = cmd.ha.map(|p| p.apply(store.ha_settings())).transpose()?;
    let now = state.clock.now();
    let patch = db::stores::Patch {
        name: name.as_deref(),
        tags: tags.as_deref(),
        deletion_protection: cmd.deletion_protection,
        instance_size: size,
        volume_size_gb: volume.map(|v| v as i32),
        node_count: None,
        status: resizing.then_some(StoreStatus::Modifying),
    };
    let revision = db::stores::update(&mut *tx, ctx, store_id, store.revision, patch, now)
        .await
        .map_err(|e| {
            on_constraint(e, |c| {
                (c == "stores_org_name_key")
                    .then(|| Error::conflict("name_taken", "a store of that name exists"))
            })
        })?
        .ok_or(Error::PreconditionFailed)?;
    if let Some(ha) = &ha {
        db::ha::set_settings(&mut *tx, ctx.org_id, store_id, ha).await?;
    }
    let mut job = None;
    let nodes = db::stores::nodes(&mut *tx, ctx.org_id, &[store_id]).await?;
    if resizing {
        // The restarts rewrite every node's configuration, synchronous standbys included.
        let steps = resize_steps(&nodes, size.is_some());
        job = Some(enqueue(&mut tx, state, ctx, Enqueue::of::<kinds::ResizeStore>(store_id, steps)).await?);
    } else if let Some(steps) =
        ha.filter(|h| h.synchronous != store.synchronous).and_then(|_| ha_steps(&nodes))
    {
        job = Some(enqueue(&mut tx, state, ctx, Enqueue::of::<kinds::ApplyHa>(store_id, steps)).await?);
    }
    Event::new("store.updated", meta)
        .in_ctx(ctx, actor)
        .target(format!("store:{store_id}"))
        .detail("name", &name)
        .detail("tags", &tags)
        .detail("deletion_protection", cmd.deletion_protection)
        .detail("instance_size", size)
        .detail("volume_size", volume)
        .detail("ha", ha)
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    if job.is_some() {
        state.wake.notify_waiters();
    }
    let detail = get(state, ctx, store_id).await?;
    Ok(Updated { detail, revision, job })
}

/// The steps of a change of synchronous mode: the primary takes its new synchronous standbys
/// with a reload. None without a primary (the next one takes them when it is promoted).
fn ha_steps(nodes: &[NodeRow]) -> Option<Vec<Step>> {
    let primary = nodes.iter().find(|n| n.role == NodeRole::Primary && !n.fenced)?;
    Some(vec![Step::Reconfigure(primary.id)])
}

/// The steps of a resize: a new instance size restarts every node, replicas first so that the
/// primary restarts last and once (a restart also brings each volume to its new size); a larger
/// volume alone grows each node's.
pub fn resize_steps(nodes: &[NodeRow], new_instance_size: bool) -> Vec<Step> {
    let mut steps: Vec<Step> = if new_instance_size {
        replicas_first(nodes).map(|n| Step::ReconfigureNode(n.id)).collect()
    } else {
        nodes.iter().map(|n| Step::GrowVolume(n.id)).collect()
    };
    steps.push(Step::FinishAvailable);
    steps
}

/// `nodes` with the primary last, the others in their order.
fn replicas_first(nodes: &[NodeRow]) -> impl Iterator<Item = &NodeRow> {
    let mut sorted: Vec<&NodeRow> = nodes.iter().collect();
    sorted.sort_by_key(|n| n.role == NodeRole::Primary);
    sorted.into_iter()
}

/// Starts a store's deletion: refused while deletion protection is on or the store's status
/// does not allow it; with `delete_backups`, its backups and archived WAL go too.
pub async fn delete(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    store_id: StoreId,
    delete_backups: bool,
) -> Result<JobRow> {
    let mut tx = state.db.begin().await?;
    let store = db::stores::get_for_update(&mut tx, ctx, store_id).await?.ok_or(Error::NotFound("store"))?;
    if store.deletion_protection {
        return Err(Error::conflict("deletion_protected", "deletion protection is on; turn it off first"));
    }
    store.status.check(StoreOperation::Delete)?;
    let nodes = db::stores::nodes(&mut *tx, ctx.org_id, &[store_id]).await?;
    let steps = delete_steps(&nodes, delete_backups);
    let job = enqueue(&mut tx, state, ctx, Enqueue::of::<kinds::DeleteStore>(store_id, steps)).await?;
    db::stores::set_status(&mut *tx, ctx.org_id, store_id, StoreStatus::Deleting, state.clock.now()).await?;
    Event::new("store.deleted", meta)
        .in_ctx(ctx, actor)
        .target(format!("store:{store_id}"))
        .detail("job", job.id)
        .detail("delete_backups", delete_backups)
        .record_in(&mut tx, state.clock.now())
        .await?;
    tx.commit().await?;
    state.wake.notify_waiters();
    Ok(job)
}

/// The steps of a deletion: every node removed, the primary last; then the backups, if asked.
pub fn delete_steps(nodes: &[NodeRow], delete_backups: bool) -> Vec<Step> {
    let mut steps: Vec<Step> = replicas_first(nodes).map(|n| Step::RemoveNode(n.id)).collect();
    if delete_backups {
        steps.push(Step::DeleteBackups);
    }
    steps.push(Step::FinishDeleted);
    steps
}

/// Starts rebuilding the nodes of a store that are not running.
pub async fn repair(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    store_id: StoreId,
) -> Result<JobRow> {
    let mut tx = state.db.begin().await?;
    let store = db::stores::get_for_update(&mut tx, ctx, store_id).await?.ok_or(Error::NotFound("store"))?;
    store.status.check(StoreOperation::Repair)?;
    let nodes = db::stores::nodes(&mut *tx, ctx.org_id, &[store_id]).await?;
    let steps = repair_steps(&nodes);
    let job = enqueue(&mut tx, state, ctx, Enqueue::of::<kinds::RepairStore>(store_id, steps)).await?;
    Event::new("store.repaired", meta)
        .in_ctx(ctx, actor)
        .target(format!("store:{store_id}"))
        .detail("job", job.id)
        .record_in(&mut tx, state.clock.now())
        .await?;
    tx.commit().await?;
    state.wake.notify_waiters();
    Ok(job)
}

/// The steps of a repair: each node that is not running rebuilt, the primary first (replicas are
/// copied afresh from it); a fenced node (a former primary) rejoins as a replica instead, so
/// that a repair never starts it read-write.
pub fn repair_steps(nodes: &[NodeRow]) -> Vec<Step> {
    let mut sorted: Vec<&NodeRow> = nodes.iter().collect();
    sorted.sort_by_key(|n| n.role != NodeRole::Primary);
    let mut steps: Vec<Step> = sorted
        .into_iter()
        .filter(|n| n.state != NodeState::Running || n.fenced)
        .map(|n| if n.fenced { Step::Rejoin(n.id) } else { Step::RebuildNode(n.id) })
        .collect();
    steps.push(Step::FinishAvailable);
    steps
}

/// A store's credentials, revealed.
#[derive(Debug)]
pub struct Revealed {
    pub detail: StoreDetail,
    pub password: SecretString,
}

/// The store's database password, decrypted; the reveal is audited.
pub async fn reveal_credentials(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    store_id: StoreId,
) -> Result<Revealed> {
    let detail = get(state, ctx, store_id).await?;
    let secrets =
        db::stores::secrets(&state.db, ctx.org_id, store_id).await?.ok_or(Error::NotFound("store"))?;
    let password = state.plane.master_key.decrypt(&secrets.admin_password_enc, store_id.as_bytes())?;
    let password = SecretString::from(String::from_utf8(password).map_err(anyhow::Error::from)?);
    Event::new("store.credentials_revealed", meta)
        .in_ctx(ctx, actor)
        .target(format!("store:{store_id}"))
        .record(&state.db, state.clock.now())
        .await?;
    Ok(Revealed { detail, password })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use uuid::Uuid;

    /// A node of a store, for planning.
    pub(crate) fn node(role: &str, state: NodeState) -> NodeRow {
        NodeRow {
            id: crate::domain::NodeId::new(),
            store_id: crate::domain::StoreId(Uuid::nil()),
            role: if role == "primary" { NodeRole::Primary } else { NodeRole::Replica },
            host: "127.0.0.1".into(),
            port: 5432,
            state,
            replication_lag_bytes: None,
            checked_at: None,
            created_at: time::OffsetDateTime::UNIX_EPOCH,
            disk_size_bytes: None,
            disk_used_bytes: None,
            disk_full_at: None,
            fenced: false,
            maintenance: false,
            timeline: None,
            received_lsn: None,
            replayed_lsn: None,
            lag_seconds: None,
            streaming: None,
            sync_state: None,
        }
    }

    /// A store, for rules over its row.
    pub(crate) fn store() -> StoreRow {
        let at = time::OffsetDateTime::UNIX_EPOCH;
        StoreRow {
            id: crate::domain::StoreId(Uuid::nil()),
            org_id: crate::domain::OrgId(Uuid::nil()),
            name: "s".into(),
            vendor: "postgres".into(),
            version: "15".into(),
            instance_size: "small".into(),
            volume_size_gb: 10,
            cloud: "local".into(),
            region: "local".into(),
            node_count: 2,
            tags: vec![],
            deletion_protection: false,
            status: crate::domain::StoreStatus::Available,
            admin_user: "admin".into(),
            database_name: "app".into(),
            revision: 1,
            vpc_id: None,
            created_at: at,
            updated_at: at,
            auto_failover: true,
            failover_delay_seconds: 5,
            max_lag_on_failover_bytes: 1 << 20,
            synchronous: crate::domain::ha::SyncMode::Off,
            ha_paused_at: None,
            ha_paused_reason: None,
            timeline: 1,
        }
    }

    fn store_of_three() -> Vec<NodeRow> {
        vec![
            node("primary", NodeState::Running),
            node("replica", NodeState::Running),
            node("replica", NodeState::Running),
        ]
    }

    #[test]
    fn a_new_instance_size_restarts_the_primary_last() {
        let nodes = store_of_three();
        let on = |i: usize| Step::ReconfigureNode(nodes[i].id);
        assert_eq!(resize_steps(&nodes, true), vec![on(1), on(2), on(0), Step::FinishAvailable]);
    }

    #[test]
    fn a_larger_volume_alone_grows_every_node_in_place() {
        let nodes = store_of_three();
        let on = |i: usize| Step::GrowVolume(nodes[i].id);
        assert_eq!(resize_steps(&nodes, false), vec![on(0), on(1), on(2), Step::FinishAvailable]);
    }

    #[test]
    fn a_deletion_removes_the_primary_last_and_the_backups_if_asked() {
        let nodes = store_of_three();
        let on = |i: usize| Step::RemoveNode(nodes[i].id);
        assert_eq!(delete_steps(&nodes, false), vec![on(1), on(2), on(0), Step::FinishDeleted]);
        assert_eq!(
            delete_steps(&nodes, true),
            vec![on(1), on(2), on(0), Step::DeleteBackups, Step::FinishDeleted]
        );
    }

    #[test]
    fn a_repair_rebuilds_what_does_not_run_the_primary_first() {
        let nodes = vec![
            node("replica", NodeState::Failed),
            node("replica", NodeState::Running),
            node("primary", NodeState::Failed),
        ];
        let on = |i: usize| Step::RebuildNode(nodes[i].id);
        assert_eq!(repair_steps(&nodes), vec![on(2), on(0), Step::FinishAvailable]);
        let healthy = store_of_three();
        assert_eq!(repair_steps(&healthy), vec![Step::FinishAvailable]);
    }
}
