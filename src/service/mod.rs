//! Services: the domain's operations, one module per aggregate. A function takes the tenant
//! context first, owns its transaction, its state checks, its audit event and its job, and
//! returns domain values or a domain error; the HTTP handlers extract, authorize, call and
//! render. Nothing here knows HTTP.

pub mod access;
pub mod audit;
pub mod auth;
pub mod backups;
pub mod ca;
pub mod credentials;
pub mod databases;
pub mod firewall;
pub mod ha;
pub mod invitations;
pub mod jobs;
pub mod members;
pub mod nodes;
pub mod orgs;
pub mod parameter_groups;
pub mod peerings;
pub mod quotas;
pub mod stats;
pub mod stores;
pub mod system;
pub mod users;
pub mod vpcs;
