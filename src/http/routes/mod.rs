//! One module per resource, each exporting `router()`.

pub mod audit;
pub mod auth;
pub mod credentials;
pub mod oauth2;
pub mod orgs;
pub mod system;
pub mod users;
