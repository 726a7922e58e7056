//! `berthctl job list|get|log|wait|cancel`.

use std::time::Duration;

use serde_json::Value;

use crate::cmd::store::resolve;
use crate::context::Ctx;
use crate::endpoints;
use crate::error::Result;
use crate::wait::{self, WaitArgs};

pub const JOB_COLUMNS: &[&str] = &["id", "kind", "status", "progress", "store_id", "created_at", "error"];
const LOG_COLUMNS: &[&str] = &["at", "level", "message"];

#[derive(Debug, clap::Subcommand)]
pub enum JobCommand {
    /// The organization's jobs (or one store's), newest first.
    List {
        /// Only this store's jobs (its name or id).
        #[arg(long)]
        store: Option<String>,
        /// How many (1 to 100).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u8).range(1..=100))]
        limit: u8,
    },
    /// One job, with its steps.
    Get { id: String },
    /// A job's log, oldest line first.
    Log {
        id: String,
        /// Go on printing new lines until the job has finished.
        #[arg(short, long)]
        follow: bool,
    },
    /// Waits for a job to finish; exit code 3 when it fails or the wait times out.
    Wait {
        id: String,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Cancels a job that has not started (or that its kind lets stop).
    Cancel { id: String },
}

fn get(ctx: &Ctx, id: &str) -> Result<Value> {
    ctx.send(endpoints::JOB_GET, &[("job_id", id)])
}

pub fn run(ctx: &Ctx, c: JobCommand) -> Result<()> {
    match c {
        JobCommand::List { store, limit } => {
            let query = [("limit", limit.to_string())];
            let page = match store {
                Some(s) => {
                    let id = resolve(ctx, &s)?;
                    ctx.query::<()>(endpoints::STORE_JOBS, &[("store_id", &id)], &query, None)?
                }
                None => ctx.query::<()>(endpoints::JOB_LIST, &[], &query, None)?,
            };
            ctx.out.list_of(&page["items"], JOB_COLUMNS);
        }
        JobCommand::Get { id } => ctx.out.one(&get(ctx, &id)?, JOB_COLUMNS),
        JobCommand::Log { id, follow } => log(ctx, &id, follow)?,
        JobCommand::Wait { id, wait } => ctx.out.one(&wait::job(ctx, &id, &wait)?, JOB_COLUMNS),
        JobCommand::Cancel { id } => {
            ctx.out.one(&ctx.send(endpoints::JOB_CANCEL, &[("job_id", &id)])?, JOB_COLUMNS)
        }
    }
    Ok(())
}

/// The log; with `follow`, each new line as it comes (a table's rows, or one JSON object per
/// line), until the job has finished.
fn log(ctx: &Ctx, id: &str, follow: bool) -> Result<()> {
    let lines = |job: &Value| job["log"].as_array().cloned().unwrap_or_default();
    let job = get(ctx, id)?;
    if !follow {
        ctx.out.list(&lines(&job), LOG_COLUMNS);
        return Ok(());
    }
    let mut shown = 0;
    let mut job = job;
    loop {
        let all = lines(&job);
        for line in &all[shown.min(all.len())..] {
            if ctx.out.json() {
                println!("{line}");
            } else {
                println!(
                    "{} {:<5} {}",
                    line["at"].as_str().unwrap_or(""),
                    line["level"].as_str().unwrap_or(""),
                    line["message"].as_str().unwrap_or("")
                );
            }
        }
        shown = all.len();
        if matches!(job["status"].as_str(), Some("succeeded" | "failed" | "cancelled")) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
        job = get(ctx, id)?;
    }
}
