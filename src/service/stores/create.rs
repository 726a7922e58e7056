//! Making a store: checked against the catalog and the organization's quotas, forked from a
//! backup or made empty, with its default firewall rule and backup schedule, its nodes' ports
//! and addresses, and the job that builds it. With an idempotency key, a retry with the same
//! body gets the first answer back and starts nothing.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{StoreDetail, tags_schema};
use crate::app::AppState;
use crate::audit::{Event, RequestMeta};
use crate::db;
use crate::db::backups::BackupRow;
use crate::db::jobs::JobRow;
use crate::domain::{
    BackupId, BackupKind, Ctx, Error, NodeId, NodeRole, Result, StoreId, StoreNetwork, names, on_constraint,
    password,
};
use crate::jobs::kinds::{self, CreateStoreParams};
use crate::jobs::{self, Step};
use crate::provision::catalog::Choice;
use crate::quota::{self, Quota};
use crate::service::jobs::{Enqueue, enqueue};
use crate::service::{backups, vpcs};

/// The database role a new store's users connect as.
pub const ADMIN_USER: &str = "dbadmin";
/// The database a new store is made with.
pub const DATABASE: &str = "defaultdb";

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStore {
    /// 1 to 63 lower-case letters, digits and hyphens, starting with a letter and not ending
    /// with a hyphen.
    #[schema(example = "orders-db", pattern = r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub name: String,
    #[schema(example = "postgres", pattern = "^postgres$")]
    pub vendor: String,
    #[schema(example = "15")]
    pub version: String,
    #[schema(example = "small")]
    pub instance_size: String,
    /// GB.
    #[schema(example = 10)]
    pub volume_size: i64,
    /// Number of nodes: one primary and the rest streaming replicas.
    #[schema(example = 1)]
    pub nodes: i64,
    #[schema(example = "local")]
    pub cloud: String,
    #[schema(example = "local-1")]
    pub region: String,
    /// At most 20, each 1 to 64 of `A-Z a-z 0-9 - _ . : = /`.
    #[serde(default)]
    #[schema(schema_with = tags_schema)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub deletion_protection: bool,
    /// Makes the store from a backup of another store of the organization (a fork), which may
    /// have been deleted since. A full backup or a point in time needs the source's version; a
    /// logical backup loads into any version.
    #[serde(default)]
    pub restore_from: Option<RestoreFrom>,
    /// Omitted: `public`. A `private` store's nodes listen only inside its VPC, each on its own
    /// address from the VPC's block, and admit by default that VPC and the VPCs actively peered
    /// with it. Its firewall rules, when it has any, replace that default: they can narrow it
    /// (a part of a block) or list other blocks as well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<StoreNetwork>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreFrom {
    #[schema(value_type = Uuid)]
    pub store_id: StoreId,
    /// This backup, to the moment it finished.
    #[schema(value_type = Option<Uuid>)]
    pub backup_id: Option<BackupId>,
    /// This moment (RFC 3339): the newest full backup before it, and the archived WAL.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub point_in_time: Option<OffsetDateTime>,
}

/// A store just made, in the transaction that made it: what the first answer is rendered from.
#[derive(Debug)]
pub struct NewStore {
    /// The store, its nodes, and its job as the one in progress.
    pub detail: StoreDetail,
    /// The job that builds it.
    pub job: JobRow,
    /// The database password, which this answer and `credentials/reveal` alone show.
    pub admin_password: String,
}

/// The first answer to a create, as kept for a retry with the same idempotency key.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: serde_json::Value,
}

/// What a create did.
#[derive(Debug)]
pub enum Created {
    /// Made the store; `reply` is its answer, as rendered (and kept, under a key).
    New { store_id: StoreId, revision: i32, reply: Reply },
    /// A retry of a create already made under this key: its first answer, nothing started.
    Replayed(Reply),
}

/// Makes a store (`deploying`) and the job that builds it; `render` makes the answer from what
/// was made, in the transaction, so that under an idempotency `key` it is kept (encrypted: it
/// holds the password) with the change. A key already used replays its first answer for the
/// same body and is refused for another.
pub async fn create(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    cmd: &CreateStore,
    key: Option<&str>,
    render: impl FnOnce(NewStore) -> Result<Reply>,
) -> Result<Created> {
    let name = names::store_name(&cmd.name)?;
    let tags = names::tags(&cmd.tags)?;
    state.plane.catalog.validate(&Choice {
        vendor: &cmd.vendor,
        version: &cmd.version,
        instance_size: &cmd.instance_size,
        volume_size: cmd.volume_size,
        nodes: cmd.nodes,
        cloud: &cmd.cloud,
        region: &cmd.region,
    })?;
    let fork = match &cmd.restore_from {
        Some(from) => Some(fork_source(state, ctx, from, &cmd.version).await?),
        None => None,
    };
    let vpc_id = cmd.network.as_ref().unwrap_or(&StoreNetwork::PUBLIC).requested_vpc()?;
    let request_hash = Sha256::digest(serde_json::to_vec(cmd).map_err(anyhow::Error::from)?).to_vec();
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    if let Some(key) = key {
        if let Some(stored) = db::idempotency::claim(&mut tx, ctx, key, &request_hash, now).await? {
            return Ok(Created::Replayed(replay(state, ctx, key, stored, &request_hash)?));
        }
    }

    let wants = [(Quota::Stores, 1), (Quota::Nodes, cmd.nodes)];
    quota::reserve(&mut tx, &state.plane.quotas, ctx.org_id, &wants).await?;
    if let Some(vpc_id) = vpc_id {
        vpcs::vpc_for_store(&mut tx, ctx, vpc_id, &cmd.cloud, &cmd.region).await?;
    }
    let id = StoreId::new();
    let admin_password = password::generate();
    let bound = id.as_bytes();
    db::stores::insert(
        &mut *tx,
        ctx,
        db::stores::NewStore {
            id,
            name: &name,
            vendor: &cmd.vendor,
            version: &cmd.version,
            instance_size: &cmd.instance_size,
            volume_size_gb: cmd.volume_size as i32,
            cloud: &cmd.cloud,
            region: &cmd.region,
            node_count: cmd.nodes as i32,
            tags: &tags,
            deletion_protection: cmd.deletion_protection,
            admin_user: ADMIN_USER,
            database_name: DATABASE,
            admin_password_enc: &state.plane.master_key.encrypt(admin_password.as_bytes(), bound),
            replication_password_enc: &state.plane.master_key.encrypt(password::generate().as_bytes(), bound),
            now,
        },
    )
    .await
    .map_err(|e| {
        on_constraint(e, |c| {
            (c == "stores_org_name_key")
                .then(|| Error::conflict("name_taken", format!("a store named {name} exists")))
        })
    })?;
    if let Some(vpc_id) = vpc_id {
        // No rule: a private store admits its VPC and the VPCs peered with it.
        db::vpcs::place_store(&mut *tx, ctx, id, vpc_id).await?;
    } else {
        // Default deny, but a new store admits this host, as a rule the user sees and can remove.
        let this_host = db::firewall::NewRule {
            id: crate::domain::RuleId::new(),
            source: "127.0.0.1/32".parse().expect("a network"),
            description: "this host (added when the store was created)",
            expires_at: None,
            now,
        };
        db::firewall::insert(&mut *tx, ctx, id, this_host).await?;
    }
    let (next_full_at, _) = jobs::schedule::next_times(jobs::schedule::DEFAULT_FULL_CRON, None, now);
    let schedule = db::backup_schedules::Settings {
        full_cron: jobs::schedule::DEFAULT_FULL_CRON,
        logical_cron: None,
        retention_count: Some(jobs::schedule::DEFAULT_RETENTION_COUNT),
        retention_days: Some(jobs::schedule::DEFAULT_RETENTION_DAYS),
        source: "replica",
        paused: false,
        next_full_at,
        next_logical_at: None,
    };
    db::backup_schedules::insert(&mut *tx, ctx.org_id, id, &schedule, now).await?;
    let ports = jobs::allocate_ports(&mut tx, state.plane.ports.clone(), cmd.nodes as usize).await?;
    let node_ids: Vec<NodeId> = ports.iter().map(|_| NodeId::new()).collect();
    for (i, (node, port)) in node_ids.iter().zip(&ports).enumerate() {
        db::stores::insert_node(&mut *tx, ctx.org_id, id, *node, role(i), i32::from(*port), now).await?;
    }
    if let Some(vpc_id) = vpc_id {
        vpcs::place_nodes(&mut tx, ctx, vpc_id, &node_ids).await?;
    }
    let steps = create_steps(&node_ids, fork.is_some());
    let params = match (&fork, &cmd.restore_from) {
        (Some(backup), Some(from)) => fork_params(from, backup.id),
        _ => CreateStoreParams::default(),
    };
    let job = enqueue(&mut tx, state, ctx, Enqueue::typed::<kinds::CreateStore>(id, params, steps)).await?;
    Event::new("store.created", meta)
        .in_ctx(ctx, actor)
        .target(format!("store:{id}"))
        .detail("name", &name)
        .detail("nodes", cmd.nodes)
        .detail("restored_from_backup", fork.as_ref().map(|b| b.id))
        .detail("job", job.id)
        .record_in(&mut tx, now)
        .await?;

    let store = db::stores::get(&mut *tx, ctx, id).await?.ok_or(Error::NotFound("store"))?;
    let nodes = db::stores::nodes(&mut *tx, ctx.org_id, &[id]).await?;
    let revision = store.revision;
    let detail = StoreDetail { store, nodes, job: Some(job.clone()) };
    let reply = render(NewStore { detail, job, admin_password })?;
    if let Some(key) = key {
        // Stored encrypted: the first response holds the database password.
        let sealed =
            state.plane.master_key.encrypt(reply.body.to_string().as_bytes(), &idempotency_aad(ctx, key));
        let sealed = serde_json::Value::String(hex::encode(sealed));
        db::idempotency::complete(&mut tx, ctx, key, reply.status, &sealed).await?;
    }
    tx.commit().await?;
    state.wake.notify_waiters();
    Ok(Created::New { store_id: id, revision, reply })
}

/// The role of a new store's `i`-th node: the first is the primary.
fn role(i: usize) -> NodeRole {
    if i == 0 { NodeRole::Primary } else { NodeRole::Replica }
}

/// The steps that build a new store of these nodes (the primary first): the primary made empty
/// or from the fork's backup, then each replica copied from it.
pub fn create_steps(node_ids: &[NodeId], fork: bool) -> Vec<Step> {
    let mut steps: Vec<Step> = node_ids
        .iter()
        .enumerate()
        .map(|(i, &node)| match (i, fork) {
            (0, true) => Step::ForkPrimary(node),
            (0, false) => Step::CreatePrimary(node),
            _ => Step::CreateReplica(node),
        })
        .collect();
    steps.push(Step::FinishAvailable);
    steps
}

/// What the fork's steps read back: the source store, the backup found for it, and the moment
/// asked for.
fn fork_params(from: &RestoreFrom, backup_id: BackupId) -> CreateStoreParams {
    let from = kinds::RestoreFrom { store_id: from.store_id, backup_id, point_in_time: from.point_in_time };
    CreateStoreParams { restore_from: Some(from) }
}

/// The backup a fork starts from, checked: a store of the organization (deleted or not), a good
/// backup, and a version the backup can run on.
async fn fork_source(state: &AppState, ctx: &Ctx, from: &RestoreFrom, version: &str) -> Result<BackupRow> {
    let source = db::stores::get_by_id(&state.db, ctx.org_id, from.store_id)
        .await?
        .ok_or_else(|| Error::field("restore_from.store_id", "no store of this organization has that id"))?;
    let backup =
        backups::resolve_backup(state, ctx, source.id, from.backup_id, from.point_in_time, "restore_from.")
            .await?;
    check_fork_version(backup.kind, &source.version, version)?;
    Ok(backup)
}

/// A full backup restores into its source's major version only; a logical one loads into any.
fn check_fork_version(backup_kind: BackupKind, source_version: &str, version: &str) -> Result<()> {
    let major = |v: &str| v.split('.').next().unwrap_or_default().to_owned();
    if backup_kind == BackupKind::Full && major(version) != major(source_version) {
        return Err(Error::field(
            "version",
            format!(
                "a full backup of PostgreSQL {source_version} restores into that version only; a logical backup loads into any"
            ),
        ));
    }
    Ok(())
}

fn idempotency_aad(ctx: &Ctx, key: &str) -> Vec<u8> {
    [ctx.org_id.as_bytes().as_slice(), ctx.user_id.as_bytes(), key.as_bytes()].concat()
}

/// The first answer kept under `key`, decrypted, for a retry with the same body.
fn replay(
    state: &AppState,
    ctx: &Ctx,
    key: &str,
    stored: db::idempotency::Stored,
    request_hash: &[u8],
) -> Result<Reply> {
    if stored.request_hash != request_hash {
        return Err(Error::field("Idempotency-Key", "was used with another request body; use a new key"));
    }
    let sealed = stored
        .response
        .as_str()
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(|| anyhow::anyhow!("stored response"))?;
    let plain = state.plane.master_key.decrypt(&sealed, &idempotency_aad(ctx, key))?;
    let body: serde_json::Value = serde_json::from_slice(&plain).map_err(anyhow::Error::from)?;
    Ok(Reply { status: stored.status as u16, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_store_builds_its_primary_then_its_replicas() {
        let nodes = [NodeId::new(), NodeId::new(), NodeId::new()];
        assert_eq!(
            create_steps(&nodes, false),
            vec![
                Step::CreatePrimary(nodes[0]),
                Step::CreateReplica(nodes[1]),
                Step::CreateReplica(nodes[2]),
                Step::FinishAvailable,
            ]
        );
        assert_eq!((role(0), role(1), role(2)), (NodeRole::Primary, NodeRole::Replica, NodeRole::Replica));
    }

    #[test]
    fn a_fork_restores_its_primary_from_the_backup() {
        let nodes = [NodeId::new(), NodeId::new()];
        let steps = create_steps(&nodes, true);
        assert_eq!(steps[0], Step::ForkPrimary(nodes[0]));
        assert_eq!(steps[1], Step::CreateReplica(nodes[1]));
        assert_eq!(steps.last(), Some(&Step::FinishAvailable));
    }

    #[test]
    fn fork_params_name_the_source_the_backup_and_the_moment() {
        let (store_id, backup_id) = (StoreId::new(), BackupId::new());
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let from = RestoreFrom { store_id, backup_id: None, point_in_time: Some(at) };
        let p = fork_params(&from, backup_id).restore_from.unwrap();
        assert_eq!((p.store_id, p.backup_id, p.point_in_time), (store_id, backup_id, Some(at)));
        let from = RestoreFrom { store_id, backup_id: Some(backup_id), point_in_time: None };
        assert_eq!(fork_params(&from, backup_id).restore_from.unwrap().point_in_time, None);
    }

    #[test]
    fn a_full_backup_forks_into_its_major_version_only() {
        assert!(check_fork_version(BackupKind::Full, "15.4", "15").is_ok());
        assert!(check_fork_version(BackupKind::Full, "15", "16").is_err());
        assert!(check_fork_version(BackupKind::Logical, "15", "16").is_ok());
    }
}
