//! `berthctl psql STORE [--node N] [-- PSQL ARGS]`: psql on the store, with the password revealed
//! through the API (which audits it) and handed to psql in its environment, never on its
//! command line.

use super::store::resolve;
use crate::context::Ctx;
use crate::endpoints;
use crate::error::{CliError, Result};

#[derive(Debug, clap::Args)]
pub struct PsqlArgs {
    /// The store's name or id.
    pub store: String,
    /// A node's id: that node (a replica is read-only); without it, whichever node is the
    /// primary (the multi-host URI).
    #[arg(long)]
    pub node: Option<String>,
    /// Passed to psql as they are (after `--`).
    #[arg(last = true)]
    pub psql_args: Vec<String>,
}

/// Runs psql and exits with its exit code.
pub fn run(ctx: &Ctx, a: PsqlArgs) -> Result<()> {
    let id = resolve(ctx, &a.store)?;
    let store = ctx.send(endpoints::STORE_GET, &[("store_id", &id)])?;
    let uri = match &a.node {
        None => store["connection"]["multi_host_uri"].as_str().map(str::to_owned),
        Some(node) => {
            let user = store["connection"]["username"].as_str().unwrap_or_default();
            let db = store["connection"]["database"].as_str().unwrap_or_default();
            store["nodes"].as_array().into_iter().flatten().find(|n| n["id"].as_str() == Some(node)).map(
                |n| {
                    format!("postgres://{user}@{}:{}/{db}", n["host"].as_str().unwrap_or_default(), n["port"])
                },
            )
        }
    };
    let uri = uri.ok_or_else(|| CliError::Usage(format!("store {} has no such node now", a.store)))?;
    let revealed = ctx.send(endpoints::STORE_REVEAL, &[("store_id", &id)])?;
    let password = revealed["password"].as_str().unwrap_or_default();
    let status = std::process::Command::new("psql")
        .arg(&uri)
        .args(&a.psql_args)
        .env("PGPASSWORD", password)
        .status()
        .map_err(|e| CliError::Usage(format!("running psql (is the PostgreSQL client installed?): {e}")))?;
    std::process::exit(status.code().unwrap_or(1));
}
