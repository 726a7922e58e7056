//! One module per resource, each exporting `router()`.

pub mod audit;
pub mod auth;
pub mod backups;
pub mod ca;
pub mod content;
pub mod credentials;
pub mod dbs;
pub mod firewall;
pub mod ha;
pub mod invitations;
pub mod jobs;
pub mod nodes;
pub mod oauth2;
pub mod orgs;
pub mod parameters;
pub mod quotas;
pub mod stats;
pub mod stores;
pub mod system;
pub mod users;
pub mod vpcs;
