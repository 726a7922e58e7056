//! The quotas an organization has, and the refusal of a request that would pass one.

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Quota {
    Stores,
    Nodes,
    Vpcs,
    BackupBytes,
}

impl Quota {
    pub const ALL: [Quota; 4] = [Self::Stores, Self::Nodes, Self::Vpcs, Self::BackupBytes];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stores => "stores",
            Self::Nodes => "nodes",
            Self::Vpcs => "vpcs",
            Self::BackupBytes => "backup_bytes",
        }
    }
}

/// A request that would take an organization past a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaExceeded {
    pub quota: Quota,
    pub limit: i64,
    pub usage: i64,
    pub requested: i64,
}

impl std::fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self { limit, usage, requested, .. } = self;
        match self.quota {
            Quota::BackupBytes => write!(
                f,
                "the organization keeps {usage} bytes of backups, and its quota is {limit}: delete backups \
                 or shorten retention before taking another"
            ),
            q => write!(
                f,
                "the organization's quota of {limit} {} would be passed: it has {usage}, and this needs {requested} more",
                q.as_str()
            ),
        }
    }
}
