//! The `local` driver: every store node is a real PostgreSQL server on this host, its files in
//! `BERTH_DATA_DIR/stores/<store_id>/<node_id>`, listening on 127.0.0.1 for clients (or, for a
//! private store, on its own address inside its VPC's network namespace: see [`net`]) and on a
//! private Unix socket for Berth's own superuser `berth`, which no client rule can lock out.

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
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, PgConnection};
use uuid::Uuid;

use self::net::Net;
use self::users::{StoreUsers, chown_tree, owner_of};
use self::volume::Volume;
use super::sql::{execute_formatted, logical_restore_names, swap_in};
use super::{
    DiskUsage, Isolation, NetworkSpec, NodeSpec, NodeStatus, OsUsers, PeeringSpec, Provisioner, Quarantined,
};
use crate::pg::{EPHEMERAL, PgBinaries, RunAs, Server, socket_dir_for};

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
    log_read: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<Uuid, u64>>>,
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
    pub fn store_user(&self, store_id: Uuid) -> String {
        StoreUsers::new(&self.root).name(store_id)
    }

    /// Everything of one store, private to its OS user: its nodes' folders and `run/`.
    pub fn store_dir(&self, store_id: Uuid) -> PathBuf {
        self.root.join("stores").join(store_id.to_string())
    }

    /// Everything of one node: `data/` and `server.log`; as root, the mount point of its volume.
    pub fn node_dir(&self, store_id: Uuid, node_id: Uuid) -> PathBuf {
        self.store_dir(store_id).join(node_id.to_string())
    }

    /// The private folder of the Unix sockets of a store's nodes: `stores/<store>/run` when it
    /// fits a socket path, else a hashed folder in the temp folder.
    pub fn socket_dir(&self, store_id: Uuid, _node_id: Uuid) -> PathBuf {
        socket_dir_for(&self.store_dir(store_id))
    }

    /// Where a node's sockets were before stores had OS users of their own, to tidy up.
    fn old_socket_dir(&self, node_id: Uuid) -> PathBuf {
        self.root.join("run").join(&node_id.simple().to_string()[..16])
    }

    fn volume(&self, store_id: Uuid, node_id: Uuid) -> Volume {
        Volume {
            image: volume::image_for(&self.root, node_id),
            mount_point: self.node_dir(store_id, node_id),
        }
    }

    /// Who the store's servers run as: its own user when Berth is root (or, for data left by an
    /// older layout or a removed user, whoever owns it, so that it can be stopped).
    fn run_as_for(&self, store_id: Uuid, pgdata: &Path) -> Option<RunAs> {
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

    /// Rewrites the node's configuration and starts it unless it runs.
    async fn run_node(&self, server: &Server, spec: &NodeSpec) -> anyhow::Result<()> {
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

    /// Unpacks a `.tar.gz` archive (one Berth made) into `dir`, which then belongs to the
    /// server's user. The archive may be another store's (a fork), which that user cannot read:
    /// Berth unpacks it itself.
    async fn unpack(&self, server: &Server, archive: &Path, dir: &Path) -> anyhow::Result<()> {
        let mut tar = tokio::process::Command::new("tar");
        tar.arg("-xzf")
            .arg(archive)
            .arg("-C")
            .arg(dir)
            .arg("--no-same-owner")
            .stdin(std::process::Stdio::null());
        crate::pg::run_for(tar, "tar", BASEBACKUP_TIMEOUT).await.context("unpacking the backup")?;
        if let Some(run_as) = &server.run_as {
            chown_tree(dir, run_as)?;
        }
        Ok(())
    }

    /// For a fork, as root: a copy of another store's archived WAL, next to the store's own, for
    /// the server's user to replay (it cannot read the other store's). `None`: `wal` is readable.
    async fn copy_foreign_wal(
        &self,
        server: &Server,
        spec: &NodeSpec,
        wal: &Path,
    ) -> anyhow::Result<Option<PathBuf>> {
        let (Some(run_as), Some(own)) = (&server.run_as, &spec.wal_archive) else { return Ok(None) };
        if wal == own.as_path() {
            return Ok(None);
        }
        let copy = own.with_file_name("restore-wal");
        self.wal_dir(server, own)?;
        let _ = std::fs::remove_dir_all(&copy);
        server.private_dir(&copy)?;
        let mut cp = tokio::process::Command::new("cp");
        cp.arg("-r").arg(format!("{}/.", wal.display())).arg(&copy).stdin(std::process::Stdio::null());
        crate::pg::run_for(cp, "cp", BASEBACKUP_TIMEOUT).await.context("copying the archived WAL")?;
        chown_tree(&copy, run_as)?;
        Ok(Some(copy))
    }

    /// The store's folder of backups (`backups/<store>`, holding its archives and its `wal/`)
    /// private to the server's user, which writes there: no other store's user can enter it.
    fn store_backups(&self, server: &Server, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        server.private_dir(dir)
    }

    /// The store's WAL archive (`backups/<store>/wal`), private to the server's user.
    fn wal_dir(&self, server: &Server, wal: &Path) -> anyhow::Result<()> {
        self.store_backups(server, wal.parent().context("WAL folder without a parent")?)?;
        server.private_dir(wal)
    }

    fn configure(&self, server: &Server, spec: &NodeSpec) -> anyhow::Result<()> {
        self.configure_with(server, spec, &[])
    }

    /// The node's configuration, plus `extra` settings last (they win), such as recovery targets.
    fn configure_with(
        &self,
        server: &Server,
        spec: &NodeSpec,
        extra: &[(&str, String)],
    ) -> anyhow::Result<()> {
        let s = &spec.settings;
        let listen = spec.network.map_or_else(|| "127.0.0.1".to_owned(), |n| n.address.to_string());
        let mut settings = vec![
            ("listen_addresses", listen),
            ("shared_buffers", format!("{}MB", s.shared_buffers_mb)),
            ("max_connections", s.max_connections.to_string()),
            ("work_mem", format!("{}MB", s.work_mem_mb)),
            ("password_encryption", "scram-sha-256".to_owned()),
            ("wal_level", "replica".to_owned()),
            ("max_wal_senders", "10".to_owned()),
            ("max_replication_slots", "10".to_owned()),
            ("hot_standby", "on".to_owned()),
        ];
        match &spec.tls {
            Some(tls) => {
                server.write_file("server.crt", &tls.cert_pem)?;
                server.write_private_file("server.key", tls.key_pem.expose_secret())?;
                settings.extend([
                    ("ssl", "on".to_owned()),
                    ("ssl_cert_file", "server.crt".to_owned()),
                    ("ssl_key_file", "server.key".to_owned()),
                    ("ssl_min_protocol_version", "TLSv1.2".to_owned()),
                ]);
            }
            None => settings.push(("ssl", "off".to_owned())),
        }
        if let Some(dir) = &spec.wal_archive {
            self.wal_dir(server, dir)?;
            // Never overwrite an archived segment: a second writer is an error, not a silent loss.
            let d = dir.to_string_lossy().replace('\'', "");
            settings.extend([
                ("archive_mode", "on".to_owned()),
                ("archive_command", format!("test ! -f '{d}/%f' && cp '%p' '{d}/%f'")),
                ("archive_timeout", "60".to_owned()),
            ]);
        }
        if self.ephemeral {
            settings.extend(EPHEMERAL.map(|(k, v)| (k, v.to_owned())));
        }
        settings.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
        server.write_config(&settings)?;
        server.write_file("pg_hba.conf", &hba_rules(spec))
    }
}

/// Who may connect, and how. The one place client access is decided: Berth's superuser over
/// the private socket only, replication between the nodes (over the host's loopback, or inside
/// the VPC), and clients from the spec's access list. Anything else matches no line and is refused.
fn hba_rules(spec: &NodeSpec) -> String {
    let (access, user_hosts) = (&spec.access, &spec.user_hosts);
    let replication = spec.network.map_or_else(|| "127.0.0.1/32".to_owned(), |n| n.network.cidr.to_string());
    let mut text = String::from(
        "# Written by Berth; edits are overwritten. Client lines: the store's firewall rules.\n",
    );
    text += "# TYPE  DATABASE     USER        ADDRESS        METHOD\n";
    text += &format!("local   all          {su}                       trust\n", su = crate::pg::SUPERUSER);
    text += &format!("local   replication  {su}                       trust\n", su = crate::pg::SUPERUSER);
    // The superuser has no password, but say it outright: never over TCP.
    text += &format!("host    all          {su}       all            reject\n", su = crate::pg::SUPERUSER);
    text += &format!("host    replication  {REPLICATOR}  {replication}   scram-sha-256\n");
    // A user restricted to a host network connects where it and a firewall rule overlap, and
    // nowhere else. User names are validated identifiers: nothing can be injected.
    for (user, host) in user_hosts {
        for net in access {
            let overlap = if net.contains(host) {
                Some(*host)
            } else if host.contains(net) {
                Some(*net)
            } else {
                None
            };
            if let Some(o) = overlap {
                text += &format!("host    all          {user}   {o}   scram-sha-256\n");
            }
        }
        text += &format!("host    all          {user}   all   reject\n");
    }
    for net in access {
        // An IpNet prints only digits, dots, colons and a prefix length: nothing can be injected.
        text += &format!("host    all          all         {net}   scram-sha-256\n");
    }
    text
}

/// Creates the role, or brings an existing one to these attributes and password (so a retry
/// after a crash, or a changed password, converges).
async fn ensure_role(
    conn: &mut PgConnection,
    name: &str,
    attributes: &str,
    password: &SecretString,
) -> anyhow::Result<()> {
    let exists: bool = sqlx::query_scalar("select exists(select 1 from pg_roles where rolname = $1)")
        .bind(name)
        .fetch_one(&mut *conn)
        .await?;
    let verb = if exists { "alter" } else { "create" };
    let template = format!("{verb} role %I with {attributes} password %L");
    execute_formatted(conn, &template, &[name, password.expose_secret()])
        .await
        .with_context(|| format!("{verb} role {name:?}"))
}

async fn ensure_roles_and_database(conn: &mut PgConnection, spec: &NodeSpec) -> anyhow::Result<()> {
    // Statements carrying passwords must not reach the server log, even when they fail or are slow.
    conn.execute(
        "set log_statement = 'none'; set log_min_duration_statement = -1; \
         set log_min_error_statement = 'panic'",
    )
    .await?;
    ensure_role(
        conn,
        &spec.admin_user,
        "login createdb nocreaterole nosuperuser noreplication nobypassrls",
        &spec.admin_password,
    )
    .await?;
    ensure_role(conn, REPLICATOR, "login replication nosuperuser", &spec.replication_password).await?;
    let template = if super::sql::database_exists_on(conn, &spec.database).await? {
        "alter database %I owner to %I"
    } else {
        "create database %I owner %I"
    };
    execute_formatted(conn, template, &[&spec.database, &spec.admin_user])
        .await
        .with_context(|| format!("creating database {:?}", spec.database))
}

pub(super) fn ignore_not_found(r: std::io::Result<()>) -> std::io::Result<()> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// A store's folder (and its sockets' folder) go with its last node; `Ok(true)` when they went.
fn remove_store_dir_if_empty(store_dir: &Path, socket_dir: &Path) -> anyhow::Result<bool> {
    let nodes_left = match std::fs::read_dir(store_dir) {
        Ok(entries) => entries.flatten().any(|e| parse_uuid(&e).is_some()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(e).with_context(|| format!("listing {}", store_dir.display())),
    };
    if nodes_left {
        return Ok(false);
    }
    for dir in [store_dir, socket_dir] {
        ignore_not_found(std::fs::remove_dir_all(dir))
            .with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(true)
}

fn parse_uuid(entry: &std::fs::DirEntry) -> Option<Uuid> {
    entry.file_type().ok()?.is_dir().then_some(())?;
    entry.file_name().to_str()?.parse().ok()
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
        let primary_major = self.binaries_for(&primary.version)?.major;
        if primary_major != server.binaries.major {
            bail!(
                "a PostgreSQL {} replica cannot stream from a PostgreSQL {} primary",
                spec.version,
                primary.version
            );
        }
        if !server.exists() {
            let staging = server.fresh_staging()?;
            // A private store's replica copies from inside the VPC, where the primary listens.
            let host = primary.network.map_or_else(|| "127.0.0.1".to_owned(), |n| n.address.to_string());
            let mut cmd = server.networked_command("pg_basebackup");
            cmd.args(["-h", &host, "-p", &primary.port.to_string(), "-U", REPLICATOR, "-D"])
                .arg(&staging)
                .args(["-R", "-X", "stream", "-c", "fast"])
                .env("PGPASSWORD", spec.replication_password.expose_secret())
                .current_dir(server.pgdata.parent().context("data folder without a parent")?);
            if self.ephemeral {
                cmd.arg("--no-sync");
            }
            crate::pg::run_for(cmd, "pg_basebackup", BASEBACKUP_TIMEOUT).await.with_context(|| {
                format!(
                    "copying node {} of store {} from the primary on port {}",
                    spec.node_id, spec.store_id, primary.port
                )
            })?;
            // The copy carries the primary's berth.conf and pg_hba.conf; `run_node` rewrites both.
            self.configure(&Server { pgdata: staging.clone(), ..server.clone() }, spec)?;
            server.put_in_place(&staging)?;
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
        let server = self.existing_server(spec);
        let parent = dest.parent().context("backup file without a folder")?;
        self.store_backups(&server, parent)?;
        // Assembled in a private folder next to the destination, moved there only when complete.
        let work =
            parent.join(format!(".{}.partial", dest.file_name().unwrap_or_default().to_string_lossy()));
        let _ = std::fs::remove_dir_all(&work);
        server.private_dir(&work)?;
        let taken = async {
            let mut conn = PgConnection::connect_with(&server.connect_options("postgres")).await?;
            const LSN: &str = "select (case when pg_is_in_recovery() then pg_last_wal_replay_lsn() else pg_current_wal_lsn() end)::text";
            let start_lsn: String = sqlx::query_scalar(LSN).fetch_one(&mut conn).await?;
            let mut cmd = server.command("pg_basebackup");
            cmd.arg("-h")
                .arg(&server.socket_dir)
                .args(["-p", &server.port.to_string(), "-U", crate::pg::SUPERUSER, "-D"])
                .arg(&work)
                // gzip at level 1: three times faster than the default level here (1 GiB in 11 s
                // against 35 s) for an archive 2 % larger.
                .args(["-F", "tar", "-Z", "1", "-X", "fetch", "-c", "fast"])
                .current_dir(&work);
            crate::pg::run_for(cmd, "pg_basebackup", BASEBACKUP_TIMEOUT)
                .await
                .with_context(|| format!("backing up node {} of store {}", spec.node_id, spec.store_id))?;
            let end_lsn: String = sqlx::query_scalar(LSN).fetch_one(&mut conn).await?;
            std::fs::rename(work.join("base.tar.gz"), dest)
                .with_context(|| format!("moving the backup to {}", dest.display()))?;
            anyhow::Ok(crate::provision::BaseBackup { start_lsn, end_lsn })
        }
        .await;
        // Whatever the outcome: a backup that failed (for good, perhaps) leaves no partial copy.
        let _ = std::fs::remove_dir_all(&work);
        taken
    }

    async fn restore(
        &self,
        spec: &NodeSpec,
        archive: &Path,
        wal: &Path,
        target: crate::provision::RestoreTarget,
    ) -> anyhow::Result<()> {
        let server = self.prepared(spec).await?;
        let staging = server.fresh_staging()?;
        self.unpack(&server, archive, &staging).await?;
        let copied_wal = self.copy_foreign_wal(&server, spec, wal).await?;
        let w = copied_wal.as_deref().unwrap_or(wal).to_string_lossy().replace('\'', "");
        let mut recovery = vec![("restore_command", format!("cp '{w}/%f' '%p'"))];
        match target {
            crate::provision::RestoreTarget::EndOfBackup => {
                recovery.push(("recovery_target", "immediate".to_owned()))
            }
            crate::provision::RestoreTarget::Time(t) => {
                // PostgreSQL's own timestamp syntax, in UTC, to the microsecond.
                let fmt = time::macros::format_description!(
                    "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:6]+00"
                );
                let utc = t.to_offset(time::UtcOffset::UTC);
                recovery.push(("recovery_target_time", utc.format(&fmt).context("formatting the target")?));
            }
        }
        recovery.push(("recovery_target_action", "promote".to_owned()));
        // While the node still runs, everything written up to now is archived, to be replayed.
        self.archive_current_wal(spec).await?;
        let staged = Server { pgdata: staging.clone(), ..server.clone() };
        self.configure_with(&staged, spec, &recovery)?;
        staged.write_file("recovery.signal", "")?;
        // A backup taken from a replica carries standby.signal: the restored node is a primary.
        let _ = std::fs::remove_file(staging.join("standby.signal"));
        // The current data steps aside (kept until the restore succeeds) and the backup takes its
        // place. If data is aside already, an earlier attempt died after setting it there: that is
        // the data to keep, and what is in place is that attempt's copy.
        server.stop("fast").await?;
        let aside = server.pgdata.with_file_name("data.before-restore");
        let failed = server.pgdata.with_file_name("data.failed-restore");
        if aside.exists() {
            if server.pgdata.exists() {
                ignore_not_found(std::fs::remove_dir_all(&failed))?;
                std::fs::rename(&server.pgdata, &failed)
                    .context("setting an earlier attempt's copy aside")?;
            }
        } else if server.exists() {
            std::fs::rename(&server.pgdata, &aside).context("setting the old data aside")?;
        }
        server.put_in_place(&staging)?;
        let log = server.pgdata.with_file_name("server.log");
        let started = async {
            server.start(&log).await?;
            let mut conn = server.connect_when_ready("postgres", Duration::from_secs(300)).await?;
            let deadline = std::time::Instant::now() + Duration::from_secs(300);
            loop {
                let recovering: bool =
                    sqlx::query_scalar("select pg_is_in_recovery()").fetch_one(&mut conn).await?;
                if !recovering {
                    break;
                }
                anyhow::ensure!(std::time::Instant::now() < deadline, "recovery did not finish within 300 s");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = started {
            // Put the old data back: a failed restore loses nothing.
            let _ = server.stop("immediate").await;
            let _ = std::fs::remove_dir_all(&failed);
            let _ = std::fs::rename(&server.pgdata, &failed);
            if aside.exists() {
                std::fs::rename(&aside, &server.pgdata)?;
                self.run_node(&server, spec).await?;
            }
            return Err(e.context("the restored node did not come up; the previous data is back in place"));
        }
        // Recovered: the normal configuration again, without the recovery settings.
        self.configure(&server, spec)?;
        let mut conn = server.connect_when_ready("postgres", Duration::from_secs(30)).await?;
        sqlx::query("select pg_reload_conf()").execute(&mut conn).await?;
        conn.close().await?;
        // A backup from before a change of the privilege model brings its roles back as they were.
        super::sql::enforce_privilege_model(self, spec).await?;
        // The replaced data goes in the background, under a name of its own (a next restore
        // sets data aside under the usual one): the node is already serving.
        let trash = server.pgdata.with_file_name(format!("{REPLACED}{}", uuid::Uuid::new_v4().simple()));
        if std::fs::rename(&aside, &trash).is_ok() {
            tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&trash));
        }
        ignore_not_found(std::fs::remove_dir_all(&failed)).context("removing an earlier attempt's copy")?;
        if let Some(copy) = copied_wal {
            ignore_not_found(std::fs::remove_dir_all(&copy)).context("removing the copied WAL")?;
        }
        Ok(())
    }

    async fn archive_current_wal(&self, spec: &NodeSpec) -> anyhow::Result<()> {
        let server = self.existing_server(spec);
        let Ok(mut conn) = PgConnection::connect_with(&server.connect_options("postgres")).await else {
            return Ok(());
        };
        let recovering: bool = sqlx::query_scalar("select pg_is_in_recovery()").fetch_one(&mut conn).await?;
        if recovering {
            return Ok(());
        }
        let segment: String =
            sqlx::query_scalar("select pg_walfile_name(pg_switch_wal())").fetch_one(&mut conn).await?;
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let archived: Option<String> =
                sqlx::query_scalar("select last_archived_wal from pg_stat_archiver")
                    .fetch_one(&mut conn)
                    .await?;
            // Segment names sort in WAL order (a later timeline's sort after).
            if archived.as_deref().is_some_and(|a| a.get(8..) >= segment.get(8..)) {
                return Ok(());
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "WAL segment {segment} was not archived within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn logical_backup(&self, spec: &NodeSpec, dest: &Path) -> anyhow::Result<()> {
        let server = self.existing_server(spec);
        let parent = dest.parent().context("backup file without a folder")?;
        self.store_backups(&server, parent)?;
        let name = dest.file_name().unwrap_or_default().to_string_lossy().into_owned();
        // Dumped into a folder of the servers' user, packed aside, renamed into place whole.
        let work = parent.join(format!(".{name}.dumps"));
        let packed = parent.join(format!(".{name}.partial"));
        let _ = std::fs::remove_dir_all(&work);
        server.private_dir(&work)?;
        let dumped = async {
            let mut conn = PgConnection::connect_with(&server.connect_options("postgres")).await?;
            let databases: Vec<String> = sqlx::query_scalar(
                "select datname from pg_database where datallowconn and not datistemplate and datname <> 'postgres' \
                 order by datname",
            )
            .fetch_all(&mut conn)
            .await?;
            conn.close().await?;
            let mut manifest = vec![];
            for (i, database) in databases.iter().enumerate() {
                // Files are numbered: database names may hold any character.
                let file = format!("{i}.dump");
                let mut cmd = server.command("pg_dump");
                cmd.arg("-h")
                    .arg(&server.socket_dir)
                    .args(["-p", &server.port.to_string(), "-U", crate::pg::SUPERUSER, "-F", "custom", "-f"])
                    .arg(work.join(&file))
                    .arg("-d")
                    .arg(database)
                    .current_dir(&work);
                crate::pg::run_for(cmd, "pg_dump", BASEBACKUP_TIMEOUT)
                    .await
                    .with_context(|| format!("dumping database {database:?} of node {}", spec.node_id))?;
                manifest.push(serde_json::json!({"database": database, "file": file}));
            }
            let manifest = serde_json::json!({"format": "berth-logical-1", "databases": manifest});
            std::fs::write(work.join("manifest.json"), serde_json::to_vec_pretty(&manifest)?)?;
            let mut tar = tokio::process::Command::new("tar");
            tar.arg("-czf").arg(&packed).arg("-C").arg(&work).arg(".").stdin(std::process::Stdio::null());
            crate::pg::run_for(tar, "tar", BASEBACKUP_TIMEOUT).await.context("packing the dumps")?;
            std::fs::rename(&packed, dest).with_context(|| format!("moving the backup to {}", dest.display()))?;
            anyhow::Ok(())
        }
        .await;
        // Whatever the outcome: a backup that failed (for good, perhaps) leaves no partial copy.
        let _ = std::fs::remove_dir_all(&work);
        let _ = std::fs::remove_file(&packed);
        dumped
    }

    async fn logical_restore(&self, spec: &NodeSpec, archive: &Path) -> anyhow::Result<()> {
        let server = self.server(spec)?;
        let work = server.pgdata.with_file_name("logical-restore");
        let _ = std::fs::remove_dir_all(&work);
        server.private_dir(&work)?;
        self.unpack(&server, archive, &work).await?;
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(work.join("manifest.json")).context("the archive is not a logical backup")?,
        )?;
        let databases = manifest["databases"].as_array().context("the manifest lists no databases")?;
        let mut conn = self.superuser(spec, "postgres").await?;
        for entry in databases {
            let database = entry["database"].as_str().context("a manifest entry without a database")?;
            let file = entry["file"].as_str().context("a manifest entry without a file")?;
            anyhow::ensure!(
                !file.contains('/') && !file.starts_with('.'),
                "the manifest names a file outside the archive"
            );
            // Restored into a database of its own, put in place only once whole: a failed restore
            // leaves the existing database as it was.
            let (staging, replaced) = logical_restore_names(database);
            execute_formatted(&mut conn, "drop database if exists %I with (force)", &[&staging]).await?;
            execute_formatted(&mut conn, "create database %I owner %I", &[&staging, &spec.admin_user])
                .await?;
            let mut cmd = server.command("pg_restore");
            cmd.arg("-h")
                .arg(&server.socket_dir)
                .args(["-p", &server.port.to_string(), "-U", crate::pg::SUPERUSER])
                .args(["--no-owner", "--no-privileges", "--exit-on-error", "--role"])
                .arg(&spec.admin_user)
                .arg("-d")
                .arg(&staging)
                .arg(work.join(file))
                .current_dir(&work);
            if let Err(e) = crate::pg::run_for(cmd, "pg_restore", BASEBACKUP_TIMEOUT).await {
                execute_formatted(&mut conn, "drop database if exists %I with (force)", &[&staging]).await?;
                return Err(e.context(format!(
                    "restoring database {database:?} into node {}; the database is as it was",
                    spec.node_id
                )));
            }
            swap_in(&mut conn, database, &staging, &replaced).await?;
        }
        conn.close().await?;
        let _ = std::fs::remove_dir_all(&work);
        Ok(())
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

    async fn quarantine(&self, store_id: Uuid, node_id: Uuid) -> anyhow::Result<String> {
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

    async fn present_nodes(&self) -> anyhow::Result<Vec<(Uuid, Uuid)>> {
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
                    out.push((store_id, node_id));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    async fn retain_stores(&self, stores: &[Uuid]) -> anyhow::Result<Vec<String>> {
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

    async fn remove_network(&self, vpc_id: Uuid) -> anyhow::Result<()> {
        self.net()?.remove_network(vpc_id).await
    }

    async fn create_peering(&self, peering: &PeeringSpec) -> anyhow::Result<()> {
        self.net()?.create_peering(peering).await
    }

    async fn remove_peering(&self, peering: &PeeringSpec) -> anyhow::Result<()> {
        self.net()?.remove_peering(peering).await
    }

    async fn retain_networks(&self, vpcs: &[Uuid], peerings: &[Uuid]) -> anyhow::Result<Vec<String>> {
        match &self.net {
            Ok(net) => net.retain(vpcs, peerings).await,
            // No networks can have been made here.
            Err(_) => Ok(vec![]),
        }
    }
}
