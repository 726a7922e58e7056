//! `berthctl job list|get|wait|cancel`.

use crate::context::Ctx;
use crate::endpoints;
use crate::error::Result;
use crate::wait::{self, WaitArgs};

pub const JOB_COLUMNS: &[&str] = &["id", "kind", "status", "progress", "store_id", "created_at", "error"];

#[derive(Debug, clap::Subcommand)]
pub enum JobCommand {
    /// The organization's jobs, newest first.
    List {
        /// How many (1 to 100).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u8).range(1..=100))]
        limit: u8,
    },
    /// One job, with its steps and log.
    Get { id: String },
    /// Waits for a job to finish; exit code 3 when it fails or the wait times out.
    Wait {
        id: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Cancels a job that has not started (or that its kind lets stop).
    Cancel { id: String },
}

pub fn run(ctx: &Ctx, c: JobCommand) -> Result<()> {
    let org = ctx.org.as_str();
    match c {
        JobCommand::List { limit } => {
            let page = ctx.client.call::<()>(
                endpoints::JOB_LIST,
                &[("org_id", org)],
                &[("limit", limit.to_string())],
                None,
            )?;
            ctx.out.list(page["items"].as_array().map_or(&[][..], |v| v), JOB_COLUMNS);
        }
        JobCommand::Get { id } => {
            let job =
                ctx.client.call::<()>(endpoints::JOB_GET, &[("org_id", org), ("job_id", &id)], &[], None)?;
            ctx.out.one(&job, JOB_COLUMNS);
        }
        JobCommand::Wait { id, wait } => {
            let job = wait::job(ctx, &id, &wait)?;
            ctx.out.one(&job, JOB_COLUMNS);
        }
        JobCommand::Cancel { id } => {
            let job = ctx.client.call::<()>(
                endpoints::JOB_CANCEL,
                &[("org_id", org), ("job_id", &id)],
                &[],
                None,
            )?;
            ctx.out.one(&job, JOB_COLUMNS);
        }
    }
    Ok(())
}
