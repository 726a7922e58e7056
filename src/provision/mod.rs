//! The data plane behind stores. Jobs act only through a [`Provisioner`], so another driver
//! (Kubernetes, cloud VMs) can be added without touching the API or the jobs.

pub mod catalog;
pub mod error;
pub mod local;
pub mod parameters;
mod plane;
pub mod sizing;
pub mod sql;

use std::fmt::Debug;
use std::net::Ipv4Addr;

use async_trait::async_trait;
use ipnet::Ipv4Net;
use secrecy::SecretString;

pub use self::plane::DataPlane;
use crate::domain::{NodeId, PeeringId, StoreId, VpcId};

/// Server settings derived from an instance size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSettings {
    pub shared_buffers_mb: u32,
    pub max_connections: u32,
    pub work_mem_mb: u32,
}

/// Everything a driver needs to create, run or remove one node. Every operation taking a spec
/// is idempotent: repeating it after a crash anywhere finishes the work, never duplicates it.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub store_id: StoreId,
    pub node_id: NodeId,
    /// Major version, e.g. `15`.
    pub version: String,
    /// The loopback port the node listens on (clients connect to 127.0.0.1:port).
    pub port: u16,
    pub settings: InstanceSettings,
    /// The size of the node's volume, GiB (0 in a bare spec: not known).
    pub volume_size_gb: u32,
    /// The customer's administrative role (LOGIN CREATEDB, never CREATEROLE or superuser: see
    /// [`sql::enforce_privilege_model`]) and the database it owns.
    pub admin_user: String,
    pub admin_password: SecretString,
    pub database: String,
    /// Password of the `replicator` role that replicas stream with.
    pub replication_password: SecretString,
    /// The source networks allowed to connect (the store's firewall). Anything else is refused
    /// by the node itself.
    pub access: Vec<ipnet::IpNet>,
    /// Database users restricted to a host network: they connect only from where both that
    /// network and the firewall allow.
    pub user_hosts: Vec<(String, ipnet::IpNet)>,
    /// The certificate the node serves TLS with, signed by its organization's CA.
    pub tls: Option<NodeTls>,
    /// Where the node archives its WAL (continuous archiving, for point-in-time recovery).
    pub wal_archive: Option<std::path::PathBuf>,
    /// For a node of a private store: the VPC's network it lives in and its address there.
    /// `None`: the node listens on the host's loopback.
    pub network: Option<NodeNetwork>,
    /// What the control database says the node is, and so what it starts (or is reconfigured)
    /// as: the fencing rule lives here, in one place.
    pub duty: Duty,
}

/// What a node is to run as. A node starts read-write only as [`Duty::Primary`], which the
/// control database gives only to the primary of the store's current timeline; anything else
/// starts as a standby (with no upstream known, it replays what it has and stays read-only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Duty {
    /// Takes the writes. `synchronous_standby_names` as PostgreSQL reads it (empty: commits
    /// do not wait for any standby).
    Primary { synchronous_standby_names: String },
    /// Streams from `upstream`, read-only. Its `primary_conninfo` (with `application_name` =
    /// the node's id) and `standby.signal` are written from this, never taken from what a base
    /// backup or a rewind copied.
    Standby { upstream: Option<Upstream> },
}

/// Where a standby streams from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub node_id: NodeId,
    /// The address the upstream listens on for its store's nodes (the loopback, or its address
    /// in the VPC).
    pub host: String,
    pub port: u16,
}

impl Duty {
    pub fn is_primary(&self) -> bool {
        matches!(self, Self::Primary { .. })
    }
}

/// A position in the WAL, as a byte offset (PostgreSQL's `pg_lsn`, `X/Y`, is `X << 32 | Y`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// Reads `X/Y`.
    pub fn parse(text: &str) -> Option<Self> {
        let (hi, lo) = text.trim().split_once('/')?;
        let hi = u64::from_str_radix(hi, 16).ok()?;
        let lo = u64::from_str_radix(lo, 16).ok()?;
        (hi <= u64::from(u32::MAX) && lo <= u64::from(u32::MAX)).then_some(Self(hi << 32 | lo))
    }
}

impl std::fmt::Display for Lsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

/// What a running node says of its replication.
#[derive(Debug, Clone, PartialEq)]
pub struct Replication {
    /// A standby (in recovery) rather than a primary.
    pub in_recovery: bool,
    /// The timeline it writes on (a primary) or replays (a standby).
    pub timeline: u32,
    /// A primary: where it has written to (`pg_current_wal_lsn`). A standby: the WAL received
    /// and flushed (`pg_last_wal_receive_lsn`), `None` if it never streamed.
    pub received: Option<Lsn>,
    /// A standby: the WAL replayed. A primary: `None`.
    pub replayed: Option<Lsn>,
    /// A standby: when the last transaction it replayed committed on the primary.
    pub last_replayed_at: Option<time::OffsetDateTime>,
    /// A standby: its WAL receiver, if one runs.
    pub receiver: Option<WalReceiver>,
    /// A primary: the standbys streaming from it, as `pg_stat_replication` shows them.
    pub standbys: Vec<StandbyLink>,
}

/// A standby's WAL receiver (`pg_stat_wal_receiver`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalReceiver {
    /// `streaming`, `starting`, `waiting`, `restarting`, `stopping`.
    pub status: String,
    pub sender_host: Option<String>,
    pub sender_port: Option<u16>,
    pub received_timeline: Option<u32>,
    /// How long since the last message from the sender (WAL or a keepalive, which an idle
    /// primary sends every few seconds): a receiver that is stuck says `streaming` still.
    pub silent_for: Option<std::time::Duration>,
}

impl WalReceiver {
    pub fn streaming(&self) -> bool {
        self.status == "streaming"
    }

    /// It streams from the server on `port`, and heard from it within `window`.
    pub fn fed_by(&self, port: u16, window: std::time::Duration) -> bool {
        self.streaming() && self.sender_port == Some(port) && self.silent_for.is_some_and(|s| s < window)
    }
}

/// One standby as its primary sees it (`pg_stat_replication`).
#[derive(Debug, Clone, PartialEq)]
pub struct StandbyLink {
    /// The standby's `application_name`: its node id, as Berth configures it.
    pub application_name: String,
    /// `streaming`, `catchup`, `backup`, …
    pub state: String,
    /// `async`, `sync`, `quorum`, `potential`.
    pub sync_state: String,
    pub flushed: Option<Lsn>,
    pub replayed: Option<Lsn>,
    /// Seconds the standby's replay lags, as the primary last measured it.
    pub replay_lag_seconds: Option<f64>,
}

/// How a node came back as a standby of the new primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejoined {
    /// Its data had not diverged: it follows as it is.
    AsIs,
    /// `pg_rewind` took back what it had that the new primary does not.
    Rewound,
    /// The rewind failed; it was copied afresh from the new primary.
    Recloned,
}

/// A VPC's network, as a driver makes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkSpec {
    pub vpc_id: VpcId,
    pub cidr: Ipv4Net,
}

/// Where a node of a private store is placed: inside its VPC's network, at its own address
/// from the VPC's block, which is all it listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeNetwork {
    pub network: NetworkSpec,
    pub address: Ipv4Addr,
}

/// Two networks joined so that each block routes to the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeeringSpec {
    pub peering_id: PeeringId,
    pub a: NetworkSpec,
    pub b: NetworkSpec,
}

/// How far a restore replays the archived WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreTarget {
    /// To the end of the base backup: the moment it finished.
    EndOfBackup,
    /// To this moment.
    Time(time::OffsetDateTime),
}

/// What a base backup covers.
#[derive(Debug, Clone)]
pub struct BaseBackup {
    pub start_lsn: String,
    pub end_lsn: String,
}

#[derive(Debug, Clone)]
pub struct NodeTls {
    pub cert_pem: String,
    pub key_pem: SecretString,
}

impl NodeSpec {
    /// Enough of a spec to find and remove a node whose store is gone.
    pub fn bare(store_id: StoreId, node_id: NodeId) -> Self {
        Self {
            store_id,
            node_id,
            version: String::new(),
            port: 0,
            settings: InstanceSettings { shared_buffers_mb: 0, max_connections: 0, work_mem_mb: 0 },
            volume_size_gb: 0,
            admin_user: String::new(),
            admin_password: SecretString::from(String::new()),
            database: String::new(),
            replication_password: SecretString::from(String::new()),
            access: vec![],
            user_hosts: vec![],
            tls: None,
            wal_archive: None,
            network: None,
            // Fail-safe: a node handled from a bare spec never starts read-write.
            duty: Duty::Standby { upstream: None },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// The server accepts connections.
    pub running: bool,
    /// A replica (in recovery) rather than a primary.
    pub in_recovery: bool,
    /// For a replica: bytes of WAL received but not yet replayed; for a primary: None.
    pub replay_lag_bytes: Option<i64>,
}

/// How a node's volume is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUsage {
    pub size_bytes: u64,
    pub used_bytes: u64,
    /// So little room is left that the node's writes fail, or are about to, or a write failed
    /// for lack of space since the last look.
    pub full: bool,
}

/// What separates one store from another on this driver's hosts, for the deploy options and
/// the system status: where a separation is missing, users are told, never left to assume it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, utoipa::ToSchema)]
pub struct Isolation {
    /// `per_store`: each store's servers run as an OS user of their own, their files private to
    /// it; `shared`: every store's servers run as one OS user, which can read every store's files.
    pub os_users: OsUsers,
    /// Each node's data is on a filesystem of the store's `volume_size`, which it cannot grow past.
    pub volume_sizes_enforced: bool,
    /// Why a separation is missing, for a person; absent when nothing is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OsUsers {
    PerStore,
    #[default]
    Shared,
}

/// A node set aside.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Quarantined {
    /// What `berth quarantine purge` takes: `<when>-<node id>`.
    pub id: String,
    #[schema(value_type = Uuid)]
    pub store_id: StoreId,
    #[schema(value_type = Uuid)]
    pub node_id: NodeId,
    /// The node's folder (its data in `data/`); with a volume, where it is mounted read-only.
    pub path: String,
    /// The node's volume, if it had one.
    pub volume: Option<String>,
    /// Bytes it takes on the host.
    pub size_bytes: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub quarantined_at: time::OffsetDateTime,
}

#[async_trait]
pub trait Provisioner: Send + Sync + Debug + 'static {
    /// `local`, `kubernetes`, …
    fn name(&self) -> &'static str;

    /// The major versions of PostgreSQL this driver can run here, ascending (`["15", "16"]`).
    fn postgres_versions(&self) -> Vec<String>;

    /// Creates the node if it does not exist, configures it, starts it, and makes sure the
    /// admin role, its database and the replication role exist. Idempotent.
    async fn create_primary(&self, spec: &NodeSpec) -> anyhow::Result<()>;

    /// Creates the node as a streaming replica of `primary` if it does not exist, and starts it.
    /// Idempotent; a half-made copy left by a crash is discarded and made again.
    async fn create_replica(&self, spec: &NodeSpec, primary: &NodeSpec) -> anyhow::Result<()>;

    /// Starts the node if it is not running (after a host reboot, say). Idempotent.
    async fn start(&self, spec: &NodeSpec) -> anyhow::Result<()>;

    /// Stops the node (fast shutdown) if it runs. Idempotent.
    async fn stop(&self, spec: &NodeSpec) -> anyhow::Result<()>;

    /// Stops the node and deletes its data. Idempotent: an absent node is already removed.
    async fn remove(&self, spec: &NodeSpec) -> anyhow::Result<()>;

    /// Grows the node's volume, online, to `spec.volume_size_gb` if it is smaller. Idempotent; a
    /// driver that does not enforce volume sizes has nothing to do.
    async fn grow_volume(&self, spec: &NodeSpec) -> anyhow::Result<()>;

    /// How full the node's volume is; `None` where volumes are not the node's own.
    async fn disk_usage(&self, spec: &NodeSpec) -> anyhow::Result<Option<DiskUsage>>;

    /// What separates stores from each other here.
    fn isolation(&self) -> Isolation;

    /// Makes the node admit exactly `spec.access` (rewriting its rules and reloading them if it
    /// runs). Idempotent.
    async fn apply_access(&self, spec: &NodeSpec) -> anyhow::Result<()>;

    /// Takes a physical base backup of the node (tar, compressed, with the WAL it needs) into the
    /// file `dest`, written whole or not at all.
    async fn base_backup(&self, spec: &NodeSpec, dest: &std::path::Path) -> anyhow::Result<BaseBackup>;

    /// Replaces the node's data (if any) with the base backup in `archive`, replays the WAL
    /// archived in `wal` to `target`, and brings the node up as a primary. The old data is kept
    /// until this succeeds. Restoring into a node that does not exist yet makes it (a fork).
    async fn restore(
        &self,
        spec: &NodeSpec,
        archive: &std::path::Path,
        wal: &std::path::Path,
        target: RestoreTarget,
    ) -> anyhow::Result<()>;

    /// If the node runs as a primary: closes its current WAL segment and waits until it is
    /// archived, so that everything written until now can be replayed by a restore.
    async fn archive_current_wal(&self, spec: &NodeSpec) -> anyhow::Result<()>;

    /// Dumps every database of the node (`pg_dump`, one archive for all of them) into the file
    /// `dest`, written whole or not at all.
    async fn logical_backup(&self, spec: &NodeSpec, dest: &std::path::Path) -> anyhow::Result<()>;

    /// Loads a logical backup into the running node: each database in it is made afresh (an
    /// existing one of that name is replaced) and owned by the store's admin role. Idempotent.
    async fn logical_restore(&self, spec: &NodeSpec, archive: &std::path::Path) -> anyhow::Result<()>;

    /// A connection to the node as its superuser, over the driver's private administrative
    /// path (which no firewall rule can close), with statement logging off: what is sent may
    /// carry passwords.
    async fn superuser(&self, spec: &NodeSpec, database: &str) -> anyhow::Result<sqlx::PgConnection>;

    /// What the node reports about itself; `running: false` when it does not answer.
    async fn status(&self, spec: &NodeSpec) -> anyhow::Result<NodeStatus>;

    /// What the node says of its replication; `None` when it does not answer within a second
    /// or so (the failover monitor's probe).
    async fn replication(&self, spec: &NodeSpec) -> anyhow::Result<Option<Replication>>;

    /// Promotes a standby to primary and waits until it accepts writes. Idempotent: a node that
    /// is a primary already is left as it is.
    async fn promote(&self, spec: &NodeSpec) -> anyhow::Result<()>;

    /// Makes sure the node does not run: a fast stop, then an immediate one if that does not end
    /// it within a few seconds, then SIGKILL of every process still working on its data.
    /// Idempotent: a node that does not run is fenced already.
    async fn fence(&self, spec: &NodeSpec) -> anyhow::Result<()>;

    /// The stopped node's shutdown checkpoint: where a standby must have received WAL to, to
    /// hold everything the node wrote. `None` when the node was not shut down cleanly (or runs).
    async fn shutdown_checkpoint(&self, spec: &NodeSpec) -> anyhow::Result<Option<Lsn>>;

    /// Brings a stopped (or fenced) node back as a standby of `source`, the new primary: its
    /// data is rewound (`pg_rewind`, which finds nothing to do if it has not diverged) or, if the
    /// rewind fails, copied afresh from `source`; it is then configured from `spec` (a
    /// [`Duty::Standby`] of `source`) and started. Idempotent. What it had written that
    /// `source` does not have is gone: that is what rejoining means.
    async fn rejoin(&self, spec: &NodeSpec, source: &NodeSpec) -> anyhow::Result<Rejoined>;

    /// Rewrites a running node's configuration from `spec` and reloads it: a standby follows a
    /// new upstream, a primary takes new synchronous standby names. No restart. A node that does
    /// not run takes it at its next start. Idempotent.
    async fn reconfigure(&self, spec: &NodeSpec) -> anyhow::Result<()>;

    /// Sets a node no store knows aside, stopped and untouched, where a person can look at it:
    /// a node is never deleted on a guess (the control database may be the wrong one, or lost).
    /// Returns where it went.
    async fn quarantine(&self, store_id: StoreId, node_id: NodeId) -> anyhow::Result<String>;

    /// What is in quarantine, oldest first.
    fn quarantined(&self) -> anyhow::Result<Vec<Quarantined>>;

    /// Removes what is in quarantine under `id`, for good.
    async fn purge_quarantined(&self, id: &str) -> anyhow::Result<Quarantined>;

    /// `(store_id, node_id)` of every node present on this host, running or not, so that the
    /// caller can remove the ones its tables do not know.
    async fn present_nodes(&self) -> anyhow::Result<Vec<(StoreId, NodeId)>>;

    /// Removes what this driver made on the host for stores that no Berth can come back for
    /// (OS users, volumes of data folders that are gone) and, of this Berth's, what belongs to
    /// no store in `stores` once its nodes are gone. Returns what it removed, for the log.
    async fn retain_stores(&self, stores: &[StoreId]) -> anyhow::Result<Vec<String>>;

    /// Whether this driver can make VPC networks here; the error says why not, to the user.
    fn networks_available(&self) -> Result<(), String>;

    /// Makes the VPC's network if it does not exist, and finishes one left half-made. Nothing in
    /// it reaches beyond the host: no default route, no NAT. Idempotent.
    async fn create_network(&self, network: &NetworkSpec) -> anyhow::Result<()>;

    /// Removes the network with whatever is attached to it (peering links). Idempotent.
    async fn remove_network(&self, vpc_id: VpcId) -> anyhow::Result<()>;

    /// Joins two existing networks, each block routed to the other. Idempotent.
    async fn create_peering(&self, peering: &PeeringSpec) -> anyhow::Result<()>;

    /// Undoes [`Provisioner::create_peering`]; the networks stay. Idempotent.
    async fn remove_peering(&self, peering: &PeeringSpec) -> anyhow::Result<()>;

    /// Removes the networks and peering links this Berth made that are not in the lists (left by
    /// a crash, or by a VPC the tables no longer know); returns what it removed, for the log.
    async fn retain_networks(&self, vpcs: &[VpcId], peerings: &[PeeringId]) -> anyhow::Result<Vec<String>>;
}
