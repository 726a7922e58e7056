//! What the control plane acts on the hosts with: the driver, the catalog of what it offers,
//! the secrets to drive it, and the operator's limits on it. How a node's spec is read from the
//! tables is the jobs' business (`jobs::spec`); this is only what a process holds.

use std::sync::Arc;

use crate::crypto::MasterKey;
use crate::provision::Provisioner;
use crate::provision::catalog::Catalog;

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
