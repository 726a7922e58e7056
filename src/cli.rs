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
}
