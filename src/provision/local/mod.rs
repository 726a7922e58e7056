//! The `local` driver: every store node is a real PostgreSQL server on this host, its files in
//! `BERTH_DATA_DIR/stores/<store_id>/<node_id>`, listening on 127.0.0.1 for clients (or, for a
//! private store, on its own address inside its VPC's network namespace: see [`net`]) and on a
//! private Unix socket for Berth's own superuser `berth`, which no client rule can lock out.

mod backups;
mod config;
mod ha;
mod layout;
pub mod net;
pub mod quarantine;
pub mod users;
pub mod volume;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use async_trait::async_trait;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, PgConnection};

use self::config::{ensure_roles_and_database, hba_rules};
use self::layout::{ignore_not_found, parse_uuid, remove_store_dir_if_empty};

use self::net::Net;
use self::users::{StoreUsers, chown_tree, owner_of};
use self::volume::Volume;
use super::{
    DiskUsage, Isolation, Lsn, NetworkSpec, NodeSpec, NodeStatus, OsUsers, PeeringSpec, Provisioner,
    Quarantined, Rejoined, Replication,
};
use crate::domain::{NodeId, PeeringId, StoreId, VpcId};
use crate::pg::{PgBinaries, RunAs, Server, socket_dir_for};

/// The role replicas stream with.
const REPLICATOR: &str = "replicator";
/// A node that does not answer within this is reported as not running.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a started (or adopted, still recovering) node may take to accept Berth's connection.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// A base backup copies the whole primary; the job's lease, not this, bounds a stuck one.
pub(super) const BASEBACKUP_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// The start of the name of data that a restore replaced, next to `data` while it is removed.
const REPLACED: &str = "data.removing-";

#[derive(Debug, Clone)]
pub struct LocalDriver {
    root: PathBuf,
    /// When Berth runs as root: each store's servers run as an OS user of the store's own, on
    /// volumes of their own. `None`: every server runs as Berth's own user, on Berth's disk.
    users: Option<std::sync::Arc<StoreUsers>>,
    /// By major version.
    binaries: BTreeMap<u32, PgBinaries>,
    ephemeral: bool,
    /// How far each node's server log has been read for failed writes (see `disk_usage`).
    log_read: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<NodeId, u64>>>,
    /// VPC networks, when this host allows them; else why not.
    net: Result<Net, String>,
}

impl LocalDriver {
    /// A driver keeping nodes under `root` (BERTH_DATA_DIR), running each with the binaries of
    /// its major version (the first given wins for a major). When Berth is root, each store's
    /// nodes run as an OS user of their own, on loop-mounted volumes.
    pub fn new(root: PathBuf, binaries: Vec<PgBinaries>) -> anyhow::Result<Self> {
        if binaries.is_empty() {
            bail!("the local driver needs PostgreSQL server binaries and none were given");
        }
        let mut by_major = BTreeMap::new();
        for b in binaries {
            by_major.entry(b.major).or_insert(b);
        }
        std::fs::create_dir_all(root.join("stores"))
            .with_context(|| format!("creating {}", root.join("stores").display()))?;
        let root = std::fs::canonicalize(&root)?;
        let users = nix::unistd::geteuid().is_root().then(|| std::sync::Arc::new(StoreUsers::new(&root)));
        if users.is_some() {
            // Every store's user passes through (never lists) these; what is inside is private.
            RunAs::others().ensure_reachable(&root)?;
            std::fs::set_permissions(
                root.join("stores"),
                std::os::unix::fs::PermissionsExt::from_mode(0o711),
            )?;
            let volumes = root.join("volumes");
            std::fs::create_dir_all(&volumes)?;
            std::fs::set_permissions(&volumes, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        }
        let net = Net::probe(&root);
        Ok(Self { root, users, binaries: by_major, ephemeral: false, log_read: Default::default(), net })
    }

    /// [`LocalDriver::new`] with every major version installed on this host (see
    /// [`PgBinaries::installed`]).
    pub fn discover(root: PathBuf, explicit_bindir: Option<&Path>) -> anyhow::Result<Self> {
        Self::new(root, PgBinaries::installed(explicit_bindir)?)
    }

    /// Trades durability for speed (no fsync at `initdb` or base backup, `fsync = off`): for
    /// throw-away nodes in tests only. Off by default.
    pub fn ephemeral(mut self, on: bool) -> Self {
        self.ephemeral = on;
        self
    }

    /// Whether the node's server log said, since the last look, that a write failed for lack of
    /// space. A failed write's files are removed when it rolls back, so the volume may have room
    /// again by the time anyone looks at it. The log is read from where it ended when this Berth
    /// started the node (or found it running).
    fn write_failed_since_last_look(&self, spec: &NodeSpec) -> bool {
        use std::io::{Read, Seek, SeekFrom};
        let log = self.node_dir(spec.store_id, spec.node_id).join("server.log");
        let Ok(mut file) = std::fs::File::open(&log) else { return false };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut offsets = self.log_read.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let from = match offsets.get(&spec.node_id) {
            Some(&at) if at <= len => at,
            // A log that shrank was made anew; one never looked at, read from now on.
            Some(_) => 0,
            None => len,
        };
        offsets.insert(spec.node_id, len);
        drop(offsets);
        let mut text = Vec::new();
        if file.seek(SeekFrom::Start(from)).is_err() || file.take(len - from).read_to_end(&mut text).is_err()
        {
            return false;
        }
        String::from_utf8_lossy(&text).contains("No space left on device")
    }

    /// The name of the OS user a store's servers run as when Berth is root.
    pub fn store_user(&self, store_id: StoreId) -> String {
        StoreUsers::new(&self.root).name(store_id)
    }

    /// Everything of one store, private to its OS user: its nodes' folders and `run/`.
    pub fn store_dir(&self, store_id: StoreId) -> PathBuf {
        self.root.join("stores").join(store_id.to_string())
    }

    /// Everything of one node: `data/` and `server.log`; as root, the mount point of its volume.
    pub fn node_dir(&self, store_id: StoreId, node_id: NodeId) -> PathBuf {
        self.store_dir(store_id).join(node_id.to_string())
    }

    /// The private folder of the Unix sockets of a store's nodes: `stores/<store>/run` when it
    /// fits a socket path, else a hashed folder in the temp folder.
    pub fn socket_dir(&self, store_id: StoreId, _node_id: NodeId) -> PathBuf {
        socket_dir_for(&self.store_dir(store_id))
    }

    /// Where a node's sockets were before stores had OS users of their own, to tidy up.
    fn old_socket_dir(&self, node_id: NodeId) -> PathBuf {
        self.root.join("run").join(&node_id.0.simple().to_string()[..16])
    }

    fn volume(&self, store_id: StoreId, node_id: NodeId) -> Volume {
        Volume {
            image: volume::image_for(&self.root, node_id),
            mount_point: self.node_dir(store_id, node_id),
        }
    }

    /// Who the store's servers run as: its own user when Berth is root (or, for data left by an
    /// older layout or a removed user, whoever owns it, so that it can be stopped).
    fn run_as_for(&self, store_id: StoreId, pgdata: &Path) -> Option<RunAs> {
        let users = self.users.as_ref()?;
        users.lookup(store_id).ok().flatten().or_else(|| owner_of(pgdata).filter(|o| o.uid != 0))
    }

    /// Berth's superuser on the node, over its Unix socket.
    pub fn superuser_options(&self, spec: &NodeSpec, database: &str) -> PgConnectOptions {
        self.existing_server(spec).connect_options(database)
    }

    /// The VPC networks, or why this host has none.
    pub fn net(&self) -> anyhow::Result<&Net> {
        self.net.as_ref().map_err(|why| anyhow::anyhow!("{why}"))
    }

    fn binaries_for(&self, version: &str) -> anyhow::Result<&PgBinaries> {
        let major = version.split('.').next().and_then(|m| m.trim().parse::<u32>().ok());
        major.and_then(|m| self.binaries.get(&m)).with_context(|| {
            format!(
                "PostgreSQL {version} is not installed on this host (installed: {})",
                self.versions().join(", ")
            )
        })
    }

    fn versions(&self) -> Vec<String> {
        self.binaries.keys().map(u32::to_string).collect()
    }

    fn server_with(&self, spec: &NodeSpec, binaries: PgBinaries) -> Server {
        let dir = self.node_dir(spec.store_id, spec.node_id);
        Server {
            pgdata: dir.join("data"),
            socket_dir: self.socket_dir(spec.store_id, spec.node_id),
            port: spec.port,
            binaries,
            run_as: self.run_as_for(spec.store_id, &dir.join("data")),
            netns: spec.network.zip(self.net.as_ref().ok()).map(|(n, net)| net.netns(n.network.vpc_id)),
        }
    }

    /// The node as the spec's version runs it; data made by another version is refused.
    fn server(&self, spec: &NodeSpec) -> anyhow::Result<Server> {
        let server = self.server_with(spec, self.binaries_for(&spec.version)?.clone());
        if let Some(on_disk) = server.major_on_disk() {
            if on_disk != server.binaries.major.to_string() {
                bail!(
                    "{} was made by PostgreSQL {on_disk}, but the node is to run PostgreSQL {}",
                    server.pgdata.display(),
                    spec.version
                );
            }
        }
        Ok(server)
    }

    /// The node as it is on disk, to stop, remove or probe it whatever version the spec says.
    fn existing_server(&self, spec: &NodeSpec) -> Server {
        // `new` refuses an empty set of binaries.
        let any = self.binaries.values().next().cloned().expect("at least one PostgreSQL version");
        let probe = self.server_with(spec, any);
        let binaries = probe
            .major_on_disk()
            .and_then(|v| self.binaries_for(&v).ok())
            .or_else(|| self.binaries_for(&spec.version).ok())
            .cloned()
            .unwrap_or_else(|| probe.binaries.clone());
        // The probe has the node's user and folders already: only the binaries change.
        Server { binaries, ..probe }
    }

    /// Rewrites the node's configuration and starts it unless it runs. A standby's data started
    /// as a primary is promoted (onto a timeline of its own), never just started read-write.
    async fn run_node(&self, server: &Server, spec: &NodeSpec) -> anyhow::Result<()> {
        if spec.duty.is_primary() && self.was_standby(server).await? {
            return self.start_and_promote(server, spec).await;
        }
        self.start_configured(server, spec).await
    }

    async fn start_configured(&self, server: &Server, spec: &NodeSpec) -> anyhow::Result<()> {
        self.configure(server, spec)?;
        server.private_dir(&server.socket_dir)?;
        if let Some(node) = &spec.network {
            self.net()?.add_address(node).await?;
        }
        let log = server.pgdata.with_file_name("server.log");
        let logged = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        self.log_read.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(spec.node_id, logged);
        if server.start(&log).await? {
            tracing::info!(store_id = %spec.store_id, node_id = %spec.node_id, port = spec.port,
                version = %server.binaries.version, "started PostgreSQL node");
        }
        Ok(())
    }
}

#[async_trait]
impl Provisioner for LocalDriver {
    fn name(&self) -> &'static str {
        "local"
    }

    fn postgres_versions(&self) -> Vec<String> {
        self.versions()
    }

    async fn create_primary(&self, spec: &NodeSpec) -> anyhow::Result<()> {
        // The fencing rule: only the store's primary of record takes writes.
        anyhow::ensure!(spec.duty.is_primary(), "node {} is not the primary in its spec", spec.node_id);
        let server = self.prepared(spec).await?;
        if !server.exists() {
            server
                .initdb(&["--auth-local=trust", "--auth-host=scram-sha-256"], self.ephemeral)
                .await
                .with_context(|| format!("initialising node {} of store {}", spec.node_id, spec.store_id))?;
        }
        self.run_node(&server, spec).await?;
        let mut conn = server.connect_when_ready("postgres", READY_TIMEOUT).await?;
        ensure_roles_and_database(&mut conn, spec).await.with_context(|| {
            format!("setting up roles on node {} of store {}", spec.node_id, spec.store_id)
        })?;
        conn.close().await?;
        super::sql::enforce_privilege_model(self, spec).await
    }

    async fn create_replica(&self, spec: &NodeSpec, primary: &NodeSpec) -> anyhow::Result<()> {
        let server = self.prepared(spec).await?;
        self.same_major(spec, primary)?;
        if !server.exists() {
            self.copy_from_primary(&server, spec, primary).await?;
        }
        self.run_node(&server, spec).await
    }

    async fn start(&self, spec: &NodeSpec) -> anyhow::Result<()> {
        // Prepared first: after a reboot the data is on a volume that is not mounted yet.
        let server = self.prepared(spec).await?;
        if !server.exists() {
            bail!(
                "node {} of store {} has no data in {}: create it first",
                spec.node_id,
                spec.store_id,
                server.pgdata.display()
            );
        }
        self.run_node(&server, spec).await?;
        // Every start of a primary brings it to the privilege model, whatever an older Berth made.
        let mut conn = server.connect_when_ready("postgres", READY_TIMEOUT).await?;
        let recovering: bool = sqlx::query_scalar("select pg_is_in_recovery()").fetch_one(&mut conn).await?;
        conn.close().await?;
        if !recovering {
            super::sql::enforce_privilege_model(self, spec).await?;
        }
        Ok(())
    }

    async fn stop(&self, spec: &NodeSpec) -> anyhow::Result<()> {
        self.existing_server(spec).stop("fast").await
    }

    async fn remove(&self, spec: &NodeSpec) -> anyhow::Result<()> {
        let server = self.existing_server(spec);
        if let Err(e) = server.stop("fast").await {
            tracing::warn!(store_id = %spec.store_id, node_id = %spec.node_id, error = %format!("{e:#}"),
                "fast shutdown failed before removal; shutting down immediately");
            server.stop("immediate").await?;
        }
        if let (Some(node), Ok(net)) = (&spec.network, &self.net) {
            net.remove_address(node).await?;
        }
        if self.users.is_some() {
            self.volume(spec.store_id, spec.node_id).remove().await?;
        }
        let node_dir = self.node_dir(spec.store_id, spec.node_id);
        let (store_dir, socket_dir) = (self.store_dir(spec.store_id), server.socket_dir.clone());
        let store_gone = tokio::task::spawn_blocking(move || -> anyhow::Result<bool> {
            ignore_not_found(std::fs::remove_dir_all(&node_dir))
                .with_context(|| format!("removing {}", node_dir.display()))?;
            remove_store_dir_if_empty(&store_dir, &socket_dir)
        })
        .await??;
        if let (true, Some(users)) = (store_gone, &self.users) {
            // The backups kept of a deleted store become Berth's own: a later store's user, which
            // may get the same uid, must not find them its own.
            if let Some(backups) = spec.wal_archive.as_deref().and_then(Path::parent).filter(|d| d.exists()) {
                chown_tree(backups, &RunAs::root())?;
            }
            users.remove(spec.store_id).await?;
        }
        tracing::info!(store_id = %spec.store_id, node_id = %spec.node_id, "removed PostgreSQL node");
        Ok(())
    }

    async fn base_backup(
        &self,
        spec: &NodeSpec,
        dest: &Path,
    ) -> anyhow::Result<crate::provision::BaseBackup> {
        self.physical_backup(spec, dest).await
    }

    async fn restore(
        &self,
        spec: &NodeSpec,
        archive: &Path,
        wal: &Path,
        target: crate::provision::RestoreTarget,
    ) -> anyhow::Result<()> {
        self.physical_restore(spec, archive, wal, target).await
    }

    async fn archive_current_wal(&self, spec: &NodeSpec) -> anyhow::Result<()> {
        self.flush_wal(spec).await
    }

    async fn logical_backup(&self, spec: &NodeSpec, dest: &Path) -> anyhow::Result<()> {
        self.dump(spec, dest).await
    }

    async fn logical_restore(&self, spec: &NodeSpec, archive: &Path) -> anyhow::Result<()> {
        self.load_dump(spec, archive).await
    }

    async fn superuser(&self, spec: &NodeSpec, database: &str) -> anyhow::Result<PgConnection> {
        let opts = self.superuser_options(spec, database).disable_statement_logging();
        let mut conn = PgConnection::connect_with(&opts)
            .await
            .with_context(|| format!("connecting to node {} as its superuser", spec.node_id))?;
        conn.execute("set log_statement = 'none'; set log_min_duration_statement = -1; set log_min_error_statement = 'panic'")
            .await?;
        Ok(conn)
    }

    async fn grow_volume(&self, spec: &NodeSpec) -> anyhow::Result<()> {
        let volume = self.volume(spec.store_id, spec.node_id);
        let server = self.existing_server(spec);
        match (&server.run_as, volume.mounted()) {
            (Some(user), true) => self.grow_mounted(spec, &server, user).await,
            // Not enforced here, or not mounted: the next start mounts it at its new size.
            _ => Ok(()),
        }
    }

    async fn disk_usage(&self, spec: &NodeSpec) -> anyhow::Result<Option<DiskUsage>> {
        let volume = self.volume(spec.store_id, spec.node_id);
        if self.users.is_none() || !volume.mounted() {
            return Ok(None);
        }
        let u = volume.usage()?;
        let failed = self.write_failed_since_last_look(spec);
        Ok(Some(DiskUsage { size_bytes: u.size_bytes, used_bytes: u.used_bytes, full: u.full() || failed }))
    }

    fn isolation(&self) -> Isolation {
        match self.users {
            Some(_) => Isolation { os_users: OsUsers::PerStore, volume_sizes_enforced: true, note: None },
            None => Isolation {
                os_users: OsUsers::Shared,
                volume_sizes_enforced: false,
                note: Some(format!(
                    "Berth runs as uid {} rather than root, so every store's servers run as that one OS user, \
                     which can read every store's files and backups, and store data shares Berth's disk: \
                     volume sizes are not enforced and one store can fill the disk of all. Run Berth as \
                     root for an OS user and a volume per store.",
                    nix::unistd::geteuid()
                )),
            },
        }
    }

    async fn apply_access(&self, spec: &NodeSpec) -> anyhow::Result<()> {
        let server = self.server(spec)?;
        if !server.exists() {
            return Ok(());
        }
        server.write_file("pg_hba.conf", &hba_rules(spec))?;
        // A stopped node reads the file when it starts.
        if let Ok(mut conn) = PgConnection::connect_with(&server.connect_options("postgres")).await {
            let ok: bool = sqlx::query_scalar("select pg_reload_conf()").fetch_one(&mut conn).await?;
            anyhow::ensure!(ok, "pg_reload_conf() refused");
            let errors: i64 =
                sqlx::query_scalar("select count(*) from pg_hba_file_rules where error is not null")
                    .fetch_one(&mut conn)
                    .await?;
            anyhow::ensure!(errors == 0, "the node rejected its new pg_hba.conf");
        }
        Ok(())
    }

    async fn status(&self, spec: &NodeSpec) -> anyhow::Result<NodeStatus> {
        let server = self.existing_server(spec);
        let probe = async {
            let mut conn = server.connect("postgres").await?;
            let row: (bool, Option<i64>) = sqlx::query_as(
                "select pg_is_in_recovery(), case when pg_is_in_recovery() then \
                 pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint end",
            )
            .fetch_one(&mut conn)
            .await?;
            conn.close().await?;
            Ok::<_, sqlx::Error>(row)
        };
        Ok(match tokio::time::timeout(STATUS_TIMEOUT, probe).await {
            Ok(Ok((in_recovery, replay_lag_bytes))) => {
                NodeStatus { running: true, in_recovery, replay_lag_bytes }
            }
            _ => NodeStatus { running: false, in_recovery: false, replay_lag_bytes: None },
        })
    }

    async fn replication(&self, spec: &NodeSpec) -> anyhow::Result<Option<Replication>> {
        self.probe_replication(spec).await
    }

    async fn promote(&self, spec: &NodeSpec) -> anyhow::Result<()> {
        self.promote_node(spec).await
    }

    async fn fence(&self, spec: &NodeSpec) -> anyhow::Result<()> {
        self.fence_node(spec).await
    }

    async fn shutdown_checkpoint(&self, spec: &NodeSpec) -> anyhow::Result<Option<Lsn>> {
        self.checkpoint_of_stopped(spec).await
    }

    async fn rejoin(&self, spec: &NodeSpec, source: &NodeSpec) -> anyhow::Result<Rejoined> {
        self.rejoin_node(spec, source).await
    }

    async fn reconfigure(&self, spec: &NodeSpec) -> anyhow::Result<()> {
        self.reconfigure_node(spec).await
    }

    async fn quarantine(&self, store_id: StoreId, node_id: NodeId) -> anyhow::Result<String> {
        let spec = NodeSpec::bare(store_id, node_id);
        let server = self.existing_server(&spec);
        if server.stop("fast").await.is_err() {
            server.stop("immediate").await?;
        }
        let (dest, image_dest) = quarantine::Quarantine::new(&self.root).place(
            store_id,
            node_id,
            time::OffsetDateTime::now_utc(),
        )?;
        let volume = self.volume(store_id, node_id);
        if volume.image.exists() {
            volume.unmount().await?;
            std::fs::rename(&volume.image, &image_dest)
                .with_context(|| format!("moving {} to {}", volume.image.display(), image_dest.display()))?;
            Volume { image: image_dest, mount_point: dest.clone() }.mount_read_only().await?;
            ignore_not_found(std::fs::remove_dir(&volume.mount_point))?;
        } else {
            std::fs::rename(&volume.mount_point, &dest)
                .with_context(|| format!("moving {} to {}", volume.mount_point.display(), dest.display()))?;
        }
        remove_store_dir_if_empty(&self.store_dir(store_id), &server.socket_dir)?;
        Ok(dest.to_string_lossy().into_owned())
    }

    fn quarantined(&self) -> anyhow::Result<Vec<Quarantined>> {
        quarantine::Quarantine::new(&self.root).list()
    }

    async fn purge_quarantined(&self, id: &str) -> anyhow::Result<Quarantined> {
        quarantine::Quarantine::new(&self.root).purge(id).await
    }

    async fn present_nodes(&self) -> anyhow::Result<Vec<(StoreId, NodeId)>> {
        let stores = self.root.join("stores");
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&stores) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            other => other.with_context(|| format!("listing {}", stores.display()))?,
        };
        for store in entries {
            let store = store?;
            let Some(store_id) = parse_uuid(&store) else { continue };
            for node in std::fs::read_dir(store.path())? {
                if let Some(node_id) = parse_uuid(&node?) {
                    out.push((store_id.into(), node_id.into()));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    async fn retain_stores(&self, stores: &[StoreId]) -> anyhow::Result<Vec<String>> {
        let Some(users) = &self.users else { return Ok(vec![]) };
        let mut removed = volume::unmount_orphans().await?;
        let known = stores.iter().copied().collect();
        removed.extend(users.retain(&known, |id| self.store_dir(id)).await?);
        Ok(removed)
    }

    fn networks_available(&self) -> Result<(), String> {
        self.net.as_ref().map(drop).map_err(Clone::clone)
    }

    async fn create_network(&self, network: &NetworkSpec) -> anyhow::Result<()> {
        self.net()?.create_network(network).await
    }

    async fn remove_network(&self, vpc_id: VpcId) -> anyhow::Result<()> {
        self.net()?.remove_network(vpc_id).await
    }

    async fn create_peering(&self, peering: &PeeringSpec) -> anyhow::Result<()> {
        self.net()?.create_peering(peering).await
    }

    async fn remove_peering(&self, peering: &PeeringSpec) -> anyhow::Result<()> {
        self.net()?.remove_peering(peering).await
    }

    async fn retain_networks(&self, vpcs: &[VpcId], peerings: &[PeeringId]) -> anyhow::Result<Vec<String>> {
        match &self.net {
            Ok(net) => net.retain(vpcs, peerings).await,
            // No networks can have been made here.
            Err(_) => Ok(vec![]),
        }
    }
}
