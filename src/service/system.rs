//! The state of this Berth, as its probes and its operators see it: whether it is ready, what
//! its control database, workers, queue and driver are doing, and what can be deployed here.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::MIGRATOR;
use crate::app::AppState;
use crate::db;
use crate::db::jobs::{QueueStats, WorkerRow};
use crate::domain::{OrgId, Principal, Result, Scope};
pub use crate::provision::catalog::DeployOptions;
use crate::provision::catalog::VpcSupport;
pub use crate::provision::{Isolation, Quarantined};

/// A worker not heard from for this long is gone.
const WORKER_GONE: time::Duration = time::Duration::seconds(30);

/// How long the readiness probe waits for the control database.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Migrations this build of Berth carries.
pub fn migrations_known() -> usize {
    MIGRATOR.iter().count()
}

/// What the control database answered the readiness probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reached {
    pub migrations_applied: i64,
    /// Job workers heard from lately, in every Berth process sharing the database.
    pub live_workers: usize,
}

/// What the readiness probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    pub migrations_known: usize,
    /// `None`: the control database did not answer in time.
    pub reached: Option<Reached>,
}

impl Readiness {
    /// Ready: the control database answers, its migrations are applied, and a worker is alive.
    pub fn ready(&self) -> bool {
        self.reached.is_some_and(|r| {
            usize::try_from(r.migrations_applied).is_ok_and(|a| a >= self.migrations_known)
                && r.live_workers > 0
        })
    }
}

/// Probes the control database and the workers, within a few seconds.
pub async fn readiness(state: &AppState) -> Readiness {
    let probe = async {
        let applied = db::system::migrations_applied(&state.db).await?;
        let workers = db::jobs::live_workers(&state.db, state.clock.now() - WORKER_GONE).await?.len();
        Ok::<_, sqlx::Error>(Reached { migrations_applied: applied, live_workers: workers })
    };
    let reached = match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok(r)) => Some(r),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health probe failed");
            None
        }
        Err(_) => None,
    };
    Readiness { migrations_known: migrations_known(), reached }
}

/// The driver, as an operator sees it.
#[derive(Debug)]
pub struct Driver {
    pub name: String,
    pub postgres_versions: Vec<String>,
    pub isolation: Isolation,
    pub quarantined: Vec<Quarantined>,
}

/// What only administrators (of at least one organization) are shown.
pub struct AdminDetail {
    pub workers: Vec<WorkerRow>,
    pub driver: Driver,
}

/// The state of this Berth for one caller.
pub struct Status {
    pub server_version: String,
    pub migrations_applied: i64,
    pub migrations_known: usize,
    pub live_workers: usize,
    pub queue: QueueStats,
    pub admin: Option<AdminDetail>,
    /// The stores of each organization the caller administers, by status.
    pub organizations: Vec<(OrgId, BTreeMap<String, i64>)>,
}

/// The state of this Berth, with the details `principal` may see.
pub async fn status(state: &AppState, principal: &Principal) -> Result<Status> {
    let server_version = db::system::server_version(&state.db).await?;
    let migrations_applied = db::system::migrations_applied(&state.db).await?;
    let workers = db::jobs::live_workers(&state.db, state.clock.now() - WORKER_GONE).await?;
    let queue = db::jobs::queue_stats(&state.db).await?;
    let admin_of: Vec<OrgId> =
        principal.orgs.iter().filter(|o| o.role.allows(Scope::OrgAdmin)).map(|o| o.id).collect();
    let mut organizations: Vec<(OrgId, BTreeMap<String, i64>)> =
        admin_of.iter().map(|id| (*id, BTreeMap::new())).collect();
    for (org, status, n) in db::stores::count_by_status(&state.db, &admin_of).await? {
        if let Some((_, stores)) = organizations.iter_mut().find(|(id, _)| *id == org) {
            stores.insert(status.to_string(), n);
        }
    }
    let live_workers = workers.len();
    let admin = match admin_of.is_empty() {
        true => None,
        false => {
            let driver = &state.plane.driver;
            Some(AdminDetail {
                workers,
                driver: Driver {
                    name: driver.name().into(),
                    postgres_versions: driver.postgres_versions(),
                    isolation: driver.isolation(),
                    quarantined: driver.quarantined()?,
                },
            })
        }
    };
    Ok(Status {
        server_version,
        migrations_applied,
        migrations_known: migrations_known(),
        live_workers,
        queue,
        admin,
        organizations,
    })
}

/// The catalog's options, with what this host's driver decides for every cloud: whether VPCs
/// can be made (and why not) and what separates one store from another.
pub fn deploy_options(state: &AppState) -> DeployOptions {
    let mut options = state.plane.catalog.options().clone();
    // One driver serves every cloud of the catalog: the host decides for all of them.
    let vpcs = VpcSupport::from(state.plane.driver.networks_available());
    let isolation = state.plane.driver.isolation();
    for cloud in &mut options.clouds {
        cloud.vpcs = vpcs.clone();
        cloud.isolation = isolation.clone();
    }
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(applied: i64, workers: usize) -> Readiness {
        Readiness {
            migrations_known: 5,
            reached: Some(Reached { migrations_applied: applied, live_workers: workers }),
        }
    }

    #[test]
    fn ready_when_migrated_with_a_live_worker() {
        assert!(probe(5, 1).ready());
        assert!(probe(6, 2).ready(), "a newer database than this build is still served");
        assert!(!probe(4, 1).ready(), "migrations missing");
        assert!(!probe(5, 0).ready(), "no worker");
        assert!(!Readiness { migrations_known: 5, reached: None }.ready());
    }
}
