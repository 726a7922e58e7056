//! Waiting for a job: a progress bar with its current step on a terminal, plain lines
//! otherwise. Ctrl-C stops the waiting, not the job, and says how to resume.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::context::Ctx;
use crate::endpoints;
use crate::error::{CliError, Result};

#[derive(Debug, Clone, clap::Args)]
pub struct WaitArgs {
    /// Give up waiting after this long (e.g. `10m`, `90s`); the job goes on. Exit code 3.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
}

/// `--wait` and its timeout, for every command that starts a job.
#[derive(Debug, Clone, clap::Args)]
pub struct Waiting {
    /// Wait for the job to finish (a progress bar on a terminal).
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub wait_args: WaitArgs,
}

/// The job an answer carries: `{job, ...}` or the job itself.
fn job_of(answer: &Value) -> &Value {
    if answer["job"].is_object() { &answer["job"] } else { answer }
}

/// An answer that started a job: without `--wait`, the API's body (`-o json`) or the job's row;
/// with it, the job once it has succeeded.
pub fn finish(ctx: &Ctx, answer: Value, w: &Waiting) -> Result<()> {
    let job = job_of(&answer);
    match (w.wait, job["id"].as_str()) {
        (true, Some(id)) => {
            let done = self::job(ctx, id, &w.wait_args)?;
            ctx.out.one(&done, crate::cmd::job::JOB_COLUMNS);
        }
        _ if ctx.out.json() => ctx.out.one(&answer, &[]),
        _ => ctx.out.one(job, crate::cmd::job::JOB_COLUMNS),
    }
    Ok(())
}

/// [`finish`] for a job that makes something: with `--wait`, what `made` reads once the job has
/// succeeded (the backup, the VPC), as `columns`.
pub fn finish_made(
    ctx: &Ctx,
    answer: Value,
    w: &Waiting,
    made: impl FnOnce() -> Result<Value>,
    columns: &[&str],
) -> Result<()> {
    if !w.wait {
        return finish(ctx, answer, w);
    }
    if let Some(id) = job_of(&answer)["id"].as_str() {
        self::job(ctx, id, &w.wait_args)?;
    }
    ctx.out.one(&made()?, columns);
    Ok(())
}

const POLL: Duration = Duration::from_millis(500);

pub fn interrupted() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    // Only one handler per process; a second wait in one command reuses the first's flag state.
    let _ = ctrlc::set_handler(move || f.store(true, Ordering::SeqCst));
    flag
}

fn current_step(job: &Value) -> String {
    job["steps"]
        .as_array()
        .and_then(|s| {
            s.iter().find(|x| x["state"] == "running").or_else(|| s.iter().find(|x| x["state"] == "pending"))
        })
        .and_then(|s| s["name"].as_str())
        .unwrap_or("")
        .to_string()
}

/// Waits until the job has finished: its last state when it succeeded; exit 3 otherwise.
pub fn job(ctx: &Ctx, job_id: &str, args: &WaitArgs) -> Result<Value> {
    let stop = interrupted();
    let started = Instant::now();
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::new(100);
        b.set_style(
            ProgressStyle::with_template("{spinner} [{bar:30}] {pos:>3}% {msg} ({elapsed})")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        b.enable_steady_tick(Duration::from_millis(120));
        b
    });
    let mut last_line = String::new();
    loop {
        let job = ctx.client.call::<()>(
            endpoints::JOB_GET,
            &[("org_id", &ctx.org), ("job_id", job_id)],
            &[],
            None,
        )?;
        let status = job["status"].as_str().unwrap_or("").to_string();
        let progress = job["progress"].as_u64().unwrap_or(0);
        let step = current_step(&job);
        let line = format!("job {job_id}: {status} {progress}% {step}");
        match &bar {
            Some(b) => {
                b.set_position(progress);
                b.set_message(format!("{status} {step}"));
            }
            None if line != last_line => eprintln!("{}", line.trim_end()),
            None => {}
        }
        last_line = line;
        match status.as_str() {
            "succeeded" => {
                if let Some(b) = &bar {
                    b.finish_and_clear();
                }
                return Ok(job);
            }
            "failed" | "cancelled" => {
                if let Some(b) = &bar {
                    b.abandon();
                }
                let why = job["error"].as_str().map(|e| format!(": {e}")).unwrap_or_default();
                return Err(CliError::Wait(format!("job {job_id} {status}{why}")));
            }
            _ => {}
        }
        let deadline = args.timeout.map(|t| started + t);
        let next = Instant::now() + POLL;
        while Instant::now() < next {
            if stop.load(Ordering::SeqCst) {
                if let Some(b) = &bar {
                    b.abandon();
                }
                return Err(CliError::Interrupted(format!(
                    "stopped waiting; job {job_id} goes on. Resume with: berthctl job wait {job_id}"
                )));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                if let Some(b) = &bar {
                    b.abandon();
                }
                return Err(CliError::Wait(format!(
                    "gave up waiting for job {job_id} ({status}); it goes on. Resume with: berthctl job wait {job_id}"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
