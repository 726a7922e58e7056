//! Durable jobs: rows in `jobs`, written in the same transaction as the change they serve,
//! claimed by workers with `for update skip locked` under a lease, heartbeated, retried with
//! backoff, and made of idempotent steps, so that a crash anywhere only repeats a step.

pub mod network;
pub mod reconcile;
pub mod schedule;
pub mod stats;
mod steps;
pub mod worker;

use std::sync::Arc;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

use crate::clock::Clock;
use crate::crypto::MasterKey;
use crate::db;
use crate::domain::StoreStatus;
use crate::provision::catalog::Catalog;
use crate::provision::{NodeSpec, Provisioner};

pub const CREATE_STORE: &str = "create_store";
pub const DELETE_STORE: &str = "delete_store";
pub const ADD_NODE: &str = "add_node";
pub const REMOVE_NODE: &str = "remove_node";
pub const RESTART_NODE: &str = "restart_node";
pub const REPAIR_STORE: &str = "repair_store";
pub const RESIZE_STORE: &str = "resize_store";
pub const APPLY_PARAMETERS: &str = "apply_parameters";
pub const BACKUP: &str = "backup";
pub const RESTORE: &str = "restore";
pub const CREATE_VPC: &str = "create_vpc";
pub const DELETE_VPC: &str = "delete_vpc";
pub const CREATE_PEERING: &str = "create_peering";
pub const DELETE_PEERING: &str = "delete_peering";
/// Does nothing: for measuring the queue itself.
pub const NOOP: &str = "noop";

/// Steps, as stored in `jobs.steps`: `name` or `name:<node id>`.
///
/// Each says what a crash of the process does to it: just before it (the step runs when the job
/// is taken again), in it, and just after it (before the worker recorded it done: it runs again).
pub mod step {
    /// Before: nothing on the host. In: `initdb` works in `data.init`, renamed into place only
    /// once complete, so a half-made cluster is discarded and made again; a server started but
    /// not yet given its roles is found running and its roles converge (`alter` or `create`).
    /// After: again, the same: the cluster exists, the server runs, the roles are as wanted.
    pub const CREATE_PRIMARY: &str = "create_primary";
    /// Like [`CREATE_PRIMARY`]: the copy (`pg_basebackup`) goes to `data.init` and is renamed
    /// into place whole, or discarded and made again.
    pub const CREATE_REPLICA: &str = "create_replica";
    /// Before: the node runs. In: the row says `removing` first; the server stops, then its
    /// volume and folder go, then its row: a crash part-way leaves a stopped node whose removal
    /// the retry finishes (every part is idempotent). After: the node's row is gone, and the
    /// retry finds nothing to do.
    pub const REMOVE_NODE: &str = "remove_node";
    /// A stop, then a start: a crash between them leaves the node stopped, and the retry's stop
    /// does nothing and its start starts it. Nothing is lost either way: a fast stop.
    pub const RESTART_NODE: &str = "restart_node";
    /// A replica removed and copied again from the primary (a primary is restarted in place):
    /// [`REMOVE_NODE`] and then [`CREATE_REPLICA`], each as safe as they are.
    pub const REBUILD_NODE: &str = "rebuild_node";
    /// [`RESTART_NODE`] with the node's configuration (and its volume's size) rewritten from the
    /// tables at the start.
    pub const RECONFIGURE_NODE: &str = "reconfigure_node";
    /// Grows the node's volume to the store's size, online (or, where the host refuses that,
    /// with the node stopped for the moment). The filesystem's own size is compared with the
    /// store's each time, so a crash between extending the image and growing the filesystem is
    /// finished by the retry; a volume never shrinks. Where the host refuses to grow it online,
    /// a crash before the node started again leaves it stopped: the retry finds its volume grown
    /// or unmounted, and leaves the node (and the growing) to its next start, which Berth's own
    /// next start makes; the health check reports it failed meanwhile.
    pub const GROW_VOLUME: &str = "grow_volume";
    /// Before: the group is in the tables; the node runs with its former parameters. In: each
    /// parameter is written by `alter system` (which rewrites `postgresql.auto.conf` whole),
    /// then the server reloads, then restarts if a changed parameter needs it: a crash leaves
    /// some written and not yet in force, and the retry writes them all again, reloads, and
    /// finds those still waiting for a restart in `pg_file_settings`. A crash between the
    /// restart's stop and its start leaves the node stopped: the retry starts it first. After:
    /// the retry writes the same values, finds nothing pending, and only reloads.
    pub const APPLY_PARAMETERS: &str = "apply_parameters";
    /// Before: the backup's row is `running`, with no archive. In: the driver writes the
    /// archive aside (`.<name>.partial`), renames it to its key whole, and removes what it wrote
    /// aside if it fails; a crash leaves a partial one, which the retry removes before taking
    /// the backup again (from its own start), and one renamed into place but not yet recorded
    /// is taken again over it. After (the row says `succeeded`, the job not yet done): the
    /// retry keeps that backup and does nothing. A backup job that fails for good marks its
    /// backup `failed` and removes its archive, never one recorded as taken.
    pub const TAKE_BACKUP: &str = "take_backup";
    /// Before: the node runs its current data. In: the backup is unpacked into `data.init`; the
    /// current data steps aside to `data.before-restore` and stays there until the restored
    /// node has recovered: a retry that finds data aside keeps it and treats what is in place as
    /// the failed attempt's copy, and a failure puts it back. The data replaced is removed in
    /// the background once the restored node serves; a crash meanwhile leaves it, and it goes at
    /// the node's next start. From a logical backup, each database is restored into one of its
    /// own and swapped in once whole, the one it replaces set aside until then: a crash leaves
    /// the original in place or set aside, never dropped, and the retry restores again. After:
    /// the node serves the restored data and the retry restores again (the same backup: the
    /// same result; writes made in between are replaced too).
    pub const RESTORE_NODE: &str = "restore_node";
    /// The first node of a store made from another store's backup. Before: the node has no
    /// data. In: from a full backup, [`RESTORE_NODE`]'s restore (nothing to set aside the first
    /// time; a retry sets the earlier attempt's copy aside and removes it once its own has
    /// recovered), then the store's own roles and passwords as in [`CREATE_PRIMARY`]: a crash
    /// between the two leaves a node with the source's roles, which the retry restores again
    /// before setting them. From a logical backup, an empty primary as [`CREATE_PRIMARY`], then
    /// each database restored into one of its own and swapped in whole; a crash leaves a staging
    /// database that the retry drops and makes again. The source store is only read (its
    /// primary switches WAL segment, for a point in time, so that what it wrote is archived).
    /// After: the retry restores the same backup again; the store is `deploying` until the job
    /// ends, and what a client wrote to it meanwhile is replaced.
    pub const FORK_PRIMARY: &str = "fork_primary";
    /// Removes a deleted store's backups, when its deletion asked for that. Before: the store's
    /// nodes are gone, its backups and archived WAL kept. In: the rows go first, in one
    /// statement, then each archive, then the store's whole folder of backups (every archive
    /// and its WAL), then its backup schedule: a crash after the rows leaves archives that no
    /// row names, which the retry's removal of the whole folder takes with it. After: the retry
    /// finds nothing left to remove.
    pub const DELETE_BACKUPS: &str = "delete_backups";
    /// One update of the store's status from its nodes' states: `available` when every node
    /// runs, else `degraded`. A crash before or in it leaves the job's transitional status
    /// (`deploying`, `modifying`, `restoring`) for the retry to settle; after it, the retry
    /// settles it again from the states as they are then.
    pub const FINISH_AVAILABLE: &str = "finish_available";
    /// One update of the store's status to `deleted`, once nothing of it is left on the host.
    /// A crash before or in it leaves the store `deleting` for the retry; after it, the retry
    /// sets the same status again.
    pub const FINISH_DELETED: &str = "finish_deleted";
    /// Does nothing: a crash anywhere repeats nothing.
    pub const NOOP: &str = "noop";
    /// `name:<vpc id>`. Before: the VPC is `creating`, with no namespace. In: the namespace,
    /// its loopback up, its bridge, the gateway address (`addr replace`) and the bridge up, each
    /// made only when missing: a crash leaves part of it, which the retry completes; a namespace
    /// file left by a crash inside `ip netns add` (no namespace behind it) is deleted and made
    /// again. The reconcile at start leaves a known VPC's namespace to its job and removes those
    /// no VPC knows. After: the VPC is `available`; the retry finds the network whole.
    pub const CREATE_NETWORK: &str = "create_network";
    /// Before: the VPC is `deleting` and holds no store or peering. In: `ip netns del`, which
    /// unmounts the namespace (its links, and the far ends of its veth pairs, go with it) and
    /// then unlinks its file: a crash between the two leaves a file that is no namespace, which
    /// the reconcile at start passes over and the retry deletes. After: the VPC is `deleted`;
    /// the retry finds no namespace and marks it so again.
    pub const REMOVE_NETWORK: &str = "remove_network";
    /// `name:<peering id>`. Before: the peering is `provisioning` and both VPCs' networks
    /// exist. In: one veth pair made whole by one `ip link add`, an end in each namespace (one
    /// end found without the other is removed and the pair made again), then each end up and a
    /// route to the other block (`route replace`): a crash leaves part of it, which the retry
    /// completes; the reconcile at start keeps the link of a `provisioning` peering. After: the
    /// peering is `active`; the retry finds the pair and replaces its routes with the same.
    pub const CONNECT_PEERING: &str = "connect_peering";
    /// Every node of both VPCs gets its `pg_hba.conf` rewritten from the tables (a private
    /// store without firewall rules admits the blocks of its VPC's `active` peerings, not of a
    /// `deleting` one) and reloaded, one node after another: a crash leaves some nodes with
    /// their former rules, which the retry rewrites; after it, the retry writes the same again.
    pub const APPLY_PEERING_ACCESS: &str = "apply_peering_access";
    /// Before: the peering is `deleting`, its access already withdrawn by
    /// [`APPLY_PEERING_ACCESS`], its link in place (the reconcile at start keeps it for the job).
    /// In: deleting one end removes the pair and its routes at once. After: the peering is
    /// `deleted`; the retry finds no link and marks it so again.
    pub const DISCONNECT_PEERING: &str = "disconnect_peering";

    pub fn on(name: &str, node: uuid::Uuid) -> String {
        format!("{name}:{node}")
    }
}

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
/// first step: nothing had reached the host yet.
pub async fn undo_cancelled(
    tx: &mut sqlx::PgConnection,
    job: &db::jobs::JobRow,
    now: time::OffsetDateTime,
) -> anyhow::Result<()> {
    let Some(store_id) = job.store_id else { return Ok(()) };
    match job.kind.as_str() {
        CREATE_STORE => {
            db::stores::delete_nodes_of(&mut *tx, job.org_id, store_id).await?;
            db::stores::set_status(&mut *tx, job.org_id, store_id, StoreStatus::Deleted, now).await?;
        }
        ADD_NODE => {
            for s in &job.steps {
                if let Some(id) = s.strip_prefix(&format!("{}:", step::CREATE_REPLICA)) {
                    db::stores::delete_node(&mut *tx, id.parse()?).await?;
                }
            }
            db::stores::settle(&mut *tx, job.org_id, store_id, now).await?;
        }
        _ => db::stores::settle(&mut *tx, job.org_id, store_id, now).await?,
    }
    Ok(())
}

/// Kinds whose request changed nothing that cancelling could not undo.
pub fn cancellable(kind: &str) -> bool {
    !matches!(kind, RESIZE_STORE | APPLY_PARAMETERS | BACKUP | RESTORE) && !network::owns_kind(kind)
}
