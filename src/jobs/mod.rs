//! Durable jobs: rows in `jobs`, written in the same transaction as the change they serve,
//! claimed by workers with `for update skip locked` under a lease, heartbeated, retried with
//! backoff, and made of idempotent steps, so that a crash anywhere only repeats a step.
//!
//! - [`enqueue`] (in `queue.rs`) writes a job, or names the job that blocks it;
//! - [`kinds`]: one module per kind of job, declaring its params, its steps, whether it may be
//!   cancelled and how that is undone, and what its failure leaves; [`kinds::of`] maps the
//!   stored kind text to it, in one place;
//! - [`Step`] (in `step.rs`): a step, read from and written to its stored text in one place,
//!   with what a crash does to it and how long it may take;
//! - `steps/` and [`network`]: what each step does;
//! - [`worker`]: claims jobs and walks their steps, asking the kind to run each.

pub mod kinds;
pub mod network;
mod queue;
pub mod reconcile;
pub mod schedule;
pub mod stats;
pub mod step;
mod steps;
pub mod worker;

use std::sync::Arc;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::clock::Clock;
use crate::crypto::MasterKey;
use crate::db;
use crate::provision::catalog::Catalog;
use crate::provision::{NodeSpec, Provisioner};

pub use self::kinds::JobKind;
pub use self::queue::{Enqueue, NotEnqueued, enqueue};
pub use self::step::Step;

// The kind texts, for callers that still enqueue with [`Enqueue::store`] and
// [`Enqueue::network`]; new code names the kind's type (`Enqueue::typed::<kinds::Restore>`).
pub const CREATE_STORE: &str = kinds::CreateStore::KIND;
pub const DELETE_STORE: &str = kinds::DeleteStore::KIND;
pub const ADD_NODE: &str = kinds::AddNode::KIND;
pub const REMOVE_NODE: &str = kinds::RemoveNode::KIND;
pub const RESTART_NODE: &str = kinds::RestartNode::KIND;
pub const REPAIR_STORE: &str = kinds::RepairStore::KIND;
pub const RESIZE_STORE: &str = kinds::ResizeStore::KIND;
pub const APPLY_PARAMETERS: &str = kinds::ApplyParameters::KIND;
pub const BACKUP: &str = kinds::Backup::KIND;
pub const RESTORE: &str = kinds::Restore::KIND;
pub const CREATE_VPC: &str = kinds::CreateVpc::KIND;
pub const DELETE_VPC: &str = kinds::DeleteVpc::KIND;
pub const CREATE_PEERING: &str = kinds::CreatePeering::KIND;
pub const DELETE_PEERING: &str = kinds::DeletePeering::KIND;
/// Does nothing: for measuring the queue itself.
pub const NOOP: &str = kinds::Noop::KIND;

/// What jobs act with: the data plane, the secrets to drive it, and the operator's limits on it.
#[derive(Debug, Clone)]
pub struct DataPlane {
    pub driver: Arc<dyn Provisioner>,
    pub catalog: Arc<Catalog>,
    pub master_key: MasterKey,
    /// Loopback ports handed to nodes.
    pub ports: std::ops::RangeInclusive<u16>,
    /// The operator's default quotas of every organization.
    pub quotas: crate::quota::Quotas,
    /// The shortest time a backup schedule may leave between two backups of one kind.
    pub backup_min_interval: std::time::Duration,
    /// Where backups and archived WAL are kept.
    pub backups: Arc<dyn crate::backup::BackupStore>,
}

impl DataPlane {
    /// The driver's spec of a node at `now`, with the store's secrets decrypted and the firewall
    /// rules in force. A private store with no rules admits its VPC and the VPCs actively peered
    /// with it; with rules, exactly what they allow.
    pub async fn node_spec(
        &self,
        db: &sqlx::PgPool,
        org_id: Uuid,
        store_id: Uuid,
        node_id: Uuid,
        now: time::OffsetDateTime,
    ) -> anyhow::Result<Option<NodeSpec>> {
        let Some(store) = db::stores::get_by_id(db, org_id, store_id).await? else { return Ok(None) };
        let nodes = db::stores::nodes(db, org_id, &[store_id]).await?;
        let Some(node) = nodes.iter().find(|n| n.id == node_id) else { return Ok(None) };
        let secrets = db::stores::secrets(db, org_id, store_id).await?.context("store secrets")?;
        let settings = self
            .catalog
            .settings(&store.instance_size)
            .with_context(|| format!("instance size {} is no longer in the catalog", store.instance_size))?;
        let network = match store.vpc_id {
            Some(vpc_id) => Some(network::node_network(db, org_id, vpc_id, &node.host).await?),
            None => None,
        };
        let mut access = db::firewall::sources(db, org_id, store_id, now).await?;
        if let (Some(vpc_id), true) = (store.vpc_id, access.is_empty()) {
            access = db::vpcs::default_sources(db, org_id, vpc_id).await?;
        }
        let reveal = |blob: &[u8]| -> anyhow::Result<SecretString> {
            let plain = self.master_key.decrypt(blob, store_id.as_bytes())?;
            Ok(SecretString::from(String::from_utf8(plain).context("password is not UTF-8")?))
        };
        Ok(Some(NodeSpec {
            store_id,
            node_id,
            version: store.version.clone(),
            port: u16::try_from(node.port).context("port out of range")?,
            settings,
            volume_size_gb: u32::try_from(store.volume_size_gb).context("volume size out of range")?,
            admin_user: store.admin_user.clone(),
            admin_password: reveal(&secrets.admin_password_enc)?,
            database: store.database_name.clone(),
            replication_password: reveal(&secrets.replication_password_enc)?,
            access,
            user_hosts: db::db_users::host_restrictions(db, org_id, store_id).await?,
            tls: Some(self.node_tls(db, org_id, &node.host, now).await?),
            wal_archive: Some(self.backups.wal_dir(store_id)),
            network,
        }))
    }

    /// Enough of a node's spec to reach it over Berth's administrative path and ask how it is:
    /// no secrets decrypted and no certificate issued, for the health checks and the statistics
    /// that visit every node every few seconds.
    pub fn probe_spec(&self, node: &db::stores::NodeRow) -> anyhow::Result<NodeSpec> {
        Ok(NodeSpec {
            port: u16::try_from(node.port).context("port out of range")?,
            ..NodeSpec::bare(node.store_id, node.id)
        })
    }

    /// The organization's CA (certificate PEM and key), made on first use.
    pub async fn org_ca(
        &self,
        db: &sqlx::PgPool,
        org_id: Uuid,
        now: time::OffsetDateTime,
    ) -> anyhow::Result<(String, SecretString)> {
        if db::org_cas::get(db, org_id).await?.is_none() {
            let (cert, key) = crate::tls::new_ca(org_id, now)?;
            let sealed = self.master_key.encrypt(key.expose_secret().as_bytes(), org_id.as_bytes());
            db::org_cas::insert_if_absent(db, org_id, &cert, &sealed, now).await?;
        }
        let ca = db::org_cas::get(db, org_id).await?.context("the CA vanished")?;
        let key = self.master_key.decrypt(&ca.key_enc, org_id.as_bytes())?;
        Ok((ca.cert_pem, SecretString::from(String::from_utf8(key).context("CA key is not UTF-8")?)))
    }

    async fn node_tls(
        &self,
        db: &sqlx::PgPool,
        org_id: Uuid,
        host: &str,
        now: time::OffsetDateTime,
    ) -> anyhow::Result<crate::provision::NodeTls> {
        let (_, ca_key) = self.org_ca(db, org_id, now).await?;
        let hosts: Vec<&str> = if host == "127.0.0.1" { vec!["localhost", host] } else { vec![host] };
        let (cert_pem, key_pem) = crate::tls::issue_server_cert(org_id, &ca_key, &hosts, now)?;
        Ok(crate::provision::NodeTls { cert_pem, key_pem })
    }
}

/// Picks `n` ports of the plane's range that no node row holds and nothing listens on, under a
/// transaction-scoped lock so that two requests cannot pick the same. A range used up is the
/// operator's capacity running out, not a fault of the request: `capacity_exhausted` (503).
pub async fn allocate_ports(
    tx: &mut sqlx::PgConnection,
    range: std::ops::RangeInclusive<u16>,
    n: usize,
) -> crate::domain::Result<Vec<u16>> {
    sqlx::query("select pg_advisory_xact_lock(hashtext('berth.ports'))").execute(&mut *tx).await?;
    let used: std::collections::HashSet<i32> = db::stores::used_ports(&mut *tx).await?.into_iter().collect();
    let mut out = Vec::with_capacity(n);
    for port in range {
        if out.len() == n {
            break;
        }
        if used.contains(&i32::from(port)) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            out.push(port);
        }
    }
    if out.len() < n {
        tracing::warn!(
            wanted = n,
            free = out.len(),
            "no free port left for store nodes; widen BERTH_NODE_PORTS"
        );
        return Err(crate::domain::Error::CapacityExhausted(format!(
            "this Berth has {} free node port(s) and the request needs {n}; try again later, or ask the operator for more",
            out.len()
        )));
    }
    Ok(out)
}

/// Everything a worker needs.
#[derive(Debug, Clone)]
pub struct JobEnv {
    pub db: sqlx::PgPool,
    pub plane: DataPlane,
    pub clock: Arc<dyn Clock>,
}

/// Undoes what the request that enqueued a job did beside it, for a job cancelled before its
/// first step: nothing had reached the host yet. What that is, the job's kind says.
pub async fn undo_cancelled(
    tx: &mut sqlx::PgConnection,
    job: &db::jobs::JobRow,
    now: time::OffsetDateTime,
) -> anyhow::Result<()> {
    kinds::of(&job.kind).undo_cancelled(tx, job, now).await
}

/// Kinds whose request changed nothing that cancelling could not undo.
pub fn cancellable(kind: &str) -> bool {
    kinds::of(kind).cancellable()
}
