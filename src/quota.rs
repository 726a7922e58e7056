//! Per-organization quotas: how many stores, nodes and VPCs an organization may have, and how
//! many bytes of backups it may keep. The operator sets the defaults (`BERTH_QUOTA_*`); a row of
//! `org_quotas` overrides any of them for one organization.
//!
//! A creation reserves before it does the expensive work: it takes the organization's quota lock
//! in its transaction, counts, and inserts before the lock is released at commit, so that
//! however many requests race, the count never passes the limit. Backups are different: their
//! size is known only once taken, so a new backup is refused when the bytes already kept are at
//! or over the limit, and a running one may take the organization past it.

use sqlx::{PgConnection, PgExecutor};

use crate::db;
pub use crate::db::quotas::Usage;
use crate::domain::{self, OrgId};
pub use crate::domain::{Quota, QuotaExceeded};

/// A limit for each quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    pub stores: i64,
    pub nodes: i64,
    pub vpcs: i64,
    pub backup_bytes: i64,
}

impl Quotas {
    /// The operator's defaults unless configured: room for a team's stores with replicas, a few
    /// networks, and a week of daily backups of several large stores.
    pub const DEFAULT: Self = Self { stores: 20, nodes: 50, vpcs: 10, backup_bytes: 1 << 40 };

    pub fn limit(&self, q: Quota) -> i64 {
        match q {
            Quota::Stores => self.stores,
            Quota::Nodes => self.nodes,
            Quota::Vpcs => self.vpcs,
            Quota::BackupBytes => self.backup_bytes,
        }
    }

    /// These limits with an organization's own where it has them.
    pub fn with(self, o: db::quotas::Overrides) -> Self {
        Self {
            stores: o.stores.unwrap_or(self.stores),
            nodes: o.nodes.unwrap_or(self.nodes),
            vpcs: o.vpcs.unwrap_or(self.vpcs),
            backup_bytes: o.backup_bytes.unwrap_or(self.backup_bytes),
        }
    }

    /// Admits `adding` more of a quota to `usage`, or says which limit that passes. A backup,
    /// whose size is not known yet, is admitted as one byte: while the kept bytes are under the
    /// limit.
    pub fn admit(&self, quota: Quota, usage: i64, adding: i64) -> Result<(), QuotaExceeded> {
        let limit = self.limit(quota);
        if usage + adding > limit {
            return Err(QuotaExceeded { quota, limit, usage, requested: adding });
        }
        Ok(())
    }
}

impl Usage {
    pub fn of(&self, q: Quota) -> i64 {
        match q {
            Quota::Stores => self.stores,
            Quota::Nodes => self.nodes,
            Quota::Vpcs => self.vpcs,
            Quota::BackupBytes => self.backup_bytes,
        }
    }
}

/// The organization's limits: the operator's defaults with its own overrides.
pub async fn limits(ex: impl PgExecutor<'_>, defaults: &Quotas, org_id: OrgId) -> sqlx::Result<Quotas> {
    Ok(defaults.with(db::quotas::overrides(ex, org_id).await?))
}

/// Reserves `wants` (a quota and how many more of it) for the organization in the caller's
/// transaction, or refuses with `quota_exceeded`. Until the transaction ends, no other
/// reservation of the organization runs: insert what was reserved before committing.
pub async fn reserve(
    tx: &mut PgConnection,
    defaults: &Quotas,
    org_id: OrgId,
    wants: &[(Quota, i64)],
) -> domain::Result<()> {
    db::quotas::lock(&mut *tx, org_id).await?;
    let limits = limits(&mut *tx, defaults, org_id).await?;
    let usage = db::quotas::usage(&mut *tx, org_id).await?;
    for &(quota, adding) in wants {
        limits.admit(quota, usage.of(quota), adding).map_err(domain::Error::QuotaExceeded)?;
    }
    Ok(())
}

/// Whether the organization may start another backup: its kept backups are under the limit.
pub async fn admit_backup(
    tx: &mut PgConnection,
    defaults: &Quotas,
    org_id: OrgId,
) -> sqlx::Result<Result<(), QuotaExceeded>> {
    let limits = limits(&mut *tx, defaults, org_id).await?;
    let usage = db::quotas::usage(&mut *tx, org_id).await?;
    Ok(limits.admit(Quota::BackupBytes, usage.backup_bytes, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_limit_is_reached_not_passed_and_overrides_win() {
        let q = Quotas { stores: 3, ..Quotas::DEFAULT };
        assert!(q.admit(Quota::Stores, 2, 1).is_ok());
        let e = q.admit(Quota::Stores, 2, 2).unwrap_err();
        assert_eq!((e.limit, e.usage, e.requested), (3, 2, 2));
        assert!(e.to_string().contains("quota of 3 stores"), "{e}");
        let b = Quotas { backup_bytes: 100, ..Quotas::DEFAULT };
        assert!(b.admit(Quota::BackupBytes, 99, 1).is_ok());
        assert!(b.admit(Quota::BackupBytes, 100, 1).is_err(), "at the limit, no new backup");
        let o = db::quotas::Overrides { vpcs: Some(0), ..Default::default() };
        assert_eq!(Quotas::DEFAULT.with(o), Quotas { vpcs: 0, ..Quotas::DEFAULT });
    }
}
