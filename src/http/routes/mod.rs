//! One module per resource, each exporting `router()`.

pub mod auth;
pub mod orgs;
pub mod system;
pub mod users;
