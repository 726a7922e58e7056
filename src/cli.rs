use clap::{Parser, Subcommand};

use crate::config::{DbConfig, ServeConfig, WorkerConfig};

/// Berth: a self-hostable, multi-tenant DBaaS control plane. With no subcommand, `serve`.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub serve: ServeConfig,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default).
    Serve(Box<ServeConfig>),
    /// Run job workers only, without the HTTP API.
    Worker(Box<WorkerConfig>),
    /// Apply the control database's migrations and exit.
    Migrate(DbConfig),
    /// Print the OpenAPI document (what `openapi/openapi.json` must hold).
    Openapi,
    /// Nodes found on this host that no store knows, set aside at start instead of deleted.
    #[command(subcommand)]
    Quarantine(QuarantineAction),
}

#[derive(Debug, Subcommand)]
pub enum QuarantineAction {
    /// What is in quarantine: id, store, node, size and where.
    List(DbConfig),
    /// Removes one entry, its data and its volume, for good.
    Purge {
        /// The id `list` shows (`<when>-<node id>`).
        id: String,
        #[command(flatten)]
        db: DbConfig,
    },
}
