//! Berth: a self-hostable, multi-tenant DBaaS control plane.

pub mod app;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod bootstrap;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod error;
pub mod http;
pub mod jobs;
pub mod pg;
pub mod provision;
pub mod quota;
pub mod serve;
pub mod service;
pub mod telemetry;
pub mod tls;
pub mod version;

pub use app::AppState;
pub use http::build_router;

/// The control database's migrations, applied at start-up.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();
