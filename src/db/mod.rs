//! All SQL. One file per aggregate; tenant-owned queries take the [`Ctx`](crate::domain::Ctx)
//! first and filter by its organization in the query itself.

pub mod audit;
pub mod auth_attempts;
pub mod backup_schedules;
pub mod backups;
pub mod credentials;
pub mod db_users;
pub mod firewall;
pub mod ha;
pub mod idempotency;
pub mod invitations;
pub mod jobs;
pub mod org_cas;
pub mod orgs;
pub mod parameter_groups;
pub mod quotas;
pub mod sessions;
pub mod stats;
pub mod stores;
pub mod system;
pub mod tokens;
pub mod users;
pub mod vpcs;
