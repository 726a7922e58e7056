//! A store as the API shows it: its nodes, its connection info (a URI per node and one for
//! them all), its HA settings and its job in progress; what the store routes and the node
//! routes both answer with.

use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{HaView, JobView};
use crate::db::stores::NodeRow;
use crate::domain::{NodeId, NodeRole, NodeState, StoreId, StoreNetwork, StoreStatus};
use crate::service::stores::StoreDetail;

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeView {
    #[schema(value_type = Uuid)]
    pub id: NodeId,
    /// `primary` or `replica`.
    pub role: NodeRole,
    pub host: String,
    pub port: i32,
    pub state: NodeState,
    /// For a replica: WAL bytes received but not yet replayed, at the last health check.
    pub replication_lag_bytes: Option<i64>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub checked_at: Option<OffsetDateTime>,
    /// The node's volume is full, or a write on it failed for lack of space within the last 15
    /// minutes: its writes fail with PostgreSQL's own error until the store's `volume_size`
    /// grows (or data is removed). From the health checks.
    pub disk_full: bool,
    /// The size of the node's volume and what is used of it, at the last health check; absent
    /// where volumes are not the node's own (see the deploy options' `isolation`).
    pub disk_size_bytes: Option<i64>,
    pub disk_used_bytes: Option<i64>,
    /// Excluded from switchover and failover candidacy and from alerts (`PATCH` the node).
    pub maintenance: bool,
    /// Stopped by a failover or switchover: it starts only as a standby until it has rejoined.
    pub fenced: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Endpoint {
    pub host: String,
    pub port: i32,
    /// A libpq URI without the password.
    pub uri: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Connection {
    pub username: String,
    pub database: String,
    /// Reads and writes.
    pub primary: Option<Endpoint>,
    /// Reads only: the replicas.
    pub read_only: Vec<Endpoint>,
    /// Every node in one libpq URI, without the password, with
    /// `target_session_attrs=read-write`: a client connects to whichever node is the primary
    /// now, and follows a switchover or failover by reconnecting, without asking Berth.
    pub multi_host_uri: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoreView {
    #[schema(value_type = Uuid)]
    pub id: StoreId,
    pub name: String,
    pub vendor: String,
    pub version: String,
    pub instance_size: String,
    /// GB.
    pub volume_size: i32,
    pub cloud: String,
    pub region: String,
    /// Where the nodes listen: the host's loopback (`public`) or their VPC (`private`).
    pub network: StoreNetwork,
    /// The number of nodes the store is meant to have.
    pub nodes_wanted: i32,
    pub tags: Vec<String>,
    pub deletion_protection: bool,
    pub status: StoreStatus,
    /// A node's volume is full (see its `disk_full`).
    pub disk_full: bool,
    pub nodes: Vec<NodeView>,
    pub connection: Connection,
    /// High availability settings (changed with PATCH, `ha`).
    pub ha: HaView,
    /// The job in progress, if any.
    pub current_job: Option<JobView>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

fn endpoint(n: &NodeRow, user: &str, db: &str) -> Endpoint {
    Endpoint {
        host: n.host.clone(),
        port: n.port,
        uri: format!("postgres://{user}@{}:{}/{db}", n.host, n.port),
    }
}

/// `postgres://user@h1:p1,h2:p2/db?target_session_attrs=read-write`, the primary first.
fn multi_host_uri<'a>(nodes: impl Iterator<Item = &'a NodeRow>, user: &str, db: &str) -> Option<String> {
    let mut nodes: Vec<&NodeRow> = nodes.collect();
    nodes.sort_by_key(|n| n.role != NodeRole::Primary);
    let hosts: Vec<String> = nodes.iter().map(|n| format!("{}:{}", n.host, n.port)).collect();
    (!hosts.is_empty())
        .then(|| format!("postgres://{user}@{}/{db}?target_session_attrs=read-write", hosts.join(",")))
}

pub fn view(d: StoreDetail) -> StoreView {
    let StoreDetail { store: s, nodes, job } = d;
    let live = |n: &&NodeRow| n.state != NodeState::Removing;
    let connection = Connection {
        primary: nodes
            .iter()
            .filter(live)
            .find(|n| n.role == NodeRole::Primary)
            .map(|n| endpoint(n, &s.admin_user, &s.database_name)),
        read_only: nodes
            .iter()
            .filter(live)
            .filter(|n| n.role == NodeRole::Replica)
            .map(|n| endpoint(n, &s.admin_user, &s.database_name))
            .collect(),
        multi_host_uri: multi_host_uri(nodes.iter().filter(live), &s.admin_user, &s.database_name),
        username: s.admin_user.clone(),
        database: s.database_name.clone(),
    };
    let ha = HaView::of(&s);
    StoreView {
        id: s.id,
        name: s.name,
        vendor: s.vendor,
        version: s.version,
        instance_size: s.instance_size,
        volume_size: s.volume_size_gb,
        cloud: s.cloud,
        region: s.region,
        network: StoreNetwork::of(s.vpc_id),
        nodes_wanted: s.node_count,
        tags: s.tags,
        deletion_protection: s.deletion_protection,
        status: s.status,
        disk_full: nodes.iter().filter(live).any(NodeRow::disk_full),
        nodes: nodes
            .into_iter()
            .map(|n| NodeView {
                disk_full: n.disk_full(),
                id: n.id,
                role: n.role,
                host: n.host,
                port: n.port,
                state: n.state,
                replication_lag_bytes: n.replication_lag_bytes,
                checked_at: n.checked_at,
                disk_size_bytes: n.disk_size_bytes,
                disk_used_bytes: n.disk_used_bytes,
                maintenance: n.maintenance,
                fenced: n.fenced,
            })
            .collect(),
        connection,
        ha,
        current_job: job.map(JobView::from),
        created_at: s.created_at,
        updated_at: s.updated_at,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoreCredentials {
    pub username: String,
    /// Returned when the store is created and by `credentials/reveal`, nowhere else.
    pub password: String,
    pub database: String,
    /// A libpq URI of the primary, without the password.
    pub uri: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoreAccepted {
    pub store: StoreView,
    pub job: JobView,
    /// Only in the response that creates the store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<StoreCredentials>,
}
