//! Backups and restores: `berthctl backup list|get|create|delete|download|verify|restore|
//! schedule|restore-window STORE`.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;

use berth::domain::BackupId;
use berth::service::backups::{CreateBackup, PutSchedule, RestoreRequest, Retention};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{confirm, list_all, rfc3339, store::resolve};
use crate::context::Ctx;
use crate::endpoints;
use crate::error::{CliError, Result};
use crate::wait::{Waiting, finish, finish_made};

const BACKUP_COLUMNS: &[&str] =
    &["id", "kind", "trigger", "status", "size_bytes", "started_at", "finished_at", "error"];
const SCHEDULE_COLUMNS: &[&str] =
    &["full_cron", "logical_cron", "retention.count", "retention.days", "source", "paused", "next_full_at"];
const WINDOW_COLUMNS: &[&str] = &["earliest", "latest", "gaps", "wal_segments"];

#[derive(Debug, clap::Subcommand)]
pub enum BackupCommand {
    /// The store's backups, newest first.
    List { store: String },
    /// One backup.
    Get { store: String, backup: BackupId },
    /// Takes a backup now.
    Create {
        store: String,
        /// `full` (physical, restorable to a point in time) or `logical` (pg_dump).
        #[arg(long, default_value = "full", value_parser = ["full", "logical"])]
        kind: String,
        /// `replica` or `primary` (default: the schedule's).
        #[arg(long, value_parser = ["primary", "replica"])]
        source: Option<String>,
        #[command(flatten)]
        waiting: Waiting,
    },
    /// Deletes a backup's archive (asks first).
    Delete { store: String, backup: BackupId },
    /// Downloads a backup's archive, checking it against its SHA-256 as it comes.
    Download {
        store: String,
        backup: BackupId,
        /// The file to write (default: backup-ID.tar.gz here); `-` for standard output.
        #[arg(long)]
        to: Option<PathBuf>,
    },
    /// Re-reads a backup's archive on the server and checks it against its checksum.
    Verify { store: String, backup: BackupId },
    /// Replaces the store's data with a backup, or with its state at a moment (asks first).
    Restore {
        store: String,
        /// The backup to restore, to the moment it finished.
        #[arg(long, required_unless_present = "to_time", conflicts_with = "to_time")]
        backup: Option<BackupId>,
        /// The moment to restore to (RFC 3339), from the newest backup before it and the WAL.
        #[arg(long = "to-time", value_parser = rfc3339)]
        to_time: Option<time::OffsetDateTime>,
        #[command(flatten)]
        waiting: Waiting,
    },
    /// The store's backup schedule; with `set`, changes it.
    Schedule {
        store: String,
        #[command(subcommand)]
        set: Option<ScheduleCommand>,
    },
    /// The span of time the store can be restored to, and any gaps in its WAL.
    RestoreWindow { store: String },
}

#[derive(Debug, clap::Subcommand)]
pub enum ScheduleCommand {
    /// Replaces the schedule.
    Set {
        /// When full backups are taken (cron, UTC), e.g. `0 3 * * *`.
        #[arg(long)]
        full_cron: String,
        /// When logical backups are taken, if ever.
        #[arg(long)]
        logical_cron: Option<String>,
        /// Keep this many newest backups of each kind.
        #[arg(long, required_unless_present = "keep_days")]
        keep_count: Option<i32>,
        /// Keep backups this many days.
        #[arg(long)]
        keep_days: Option<i32>,
        #[arg(long, value_parser = ["primary", "replica"])]
        source: Option<String>,
        /// Keep the schedule but take no backups.
        #[arg(long)]
        paused: bool,
    },
}

pub fn run(ctx: &Ctx, c: BackupCommand) -> Result<()> {
    match c {
        BackupCommand::List { store } => {
            let id = resolve(ctx, &store)?;
            ctx.out.list(&list_all(ctx, endpoints::BACKUP_LIST, &[("store_id", &id)])?, BACKUP_COLUMNS);
        }
        BackupCommand::Get { store, backup } => {
            let (id, b) = (resolve(ctx, &store)?, backup.to_string());
            let params = [("store_id", id.as_str()), ("backup_id", b.as_str())];
            ctx.out.one(&ctx.send(endpoints::BACKUP_GET, &params)?, BACKUP_COLUMNS);
        }
        BackupCommand::Create { store, kind, source, waiting } => {
            let id = resolve(ctx, &store)?;
            let answer = ctx.call(
                endpoints::BACKUP_CREATE,
                &[("store_id", &id)],
                Some(&CreateBackup { kind, source }),
            )?;
            let backup = answer["backup"]["id"].as_str().unwrap_or_default().to_string();
            let made = || ctx.send(endpoints::BACKUP_GET, &[("store_id", &id), ("backup_id", &backup)]);
            finish_made(ctx, answer, &waiting, made, BACKUP_COLUMNS)?;
        }
        BackupCommand::Delete { store, backup } => {
            let (id, b) = (resolve(ctx, &store)?, backup.to_string());
            let params = [("store_id", id.as_str()), ("backup_id", b.as_str())];
            confirm(ctx.yes, &format!("Delete backup {backup} of {store}? It cannot be restored after."))?;
            ctx.send(endpoints::BACKUP_DELETE, &params)?;
            eprintln!("Backup {backup} deleted");
        }
        BackupCommand::Download { store, backup, to } => {
            let (id, b) = (resolve(ctx, &store)?, backup.to_string());
            let params = [("store_id", id.as_str()), ("backup_id", b.as_str())];
            download(ctx, &params, to.unwrap_or_else(|| format!("backup-{backup}.tar.gz").into()))?;
        }
        BackupCommand::Verify { store, backup } => {
            let (id, b) = (resolve(ctx, &store)?, backup.to_string());
            let params = [("store_id", id.as_str()), ("backup_id", b.as_str())];
            let v = ctx.send(endpoints::BACKUP_VERIFY, &params)?;
            ctx.out.one(&v, &["valid", "size_bytes", "expected_sha256", "actual_sha256"]);
            if v["valid"] != Value::Bool(true) {
                return Err(CliError::Wait(format!("backup {backup} does not match its checksum")));
            }
        }
        BackupCommand::Restore { store, backup, to_time, waiting } => {
            let id = resolve(ctx, &store)?;
            let name = ctx.send(endpoints::STORE_GET, &[("store_id", &id)])?["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let what = match (&backup, &to_time) {
                (Some(b), _) => format!("backup {b}"),
                (None, Some(t)) => format!("its state at {t}"),
                (None, None) => unreachable!("clap requires one"),
            };
            confirm(ctx.yes, &format!("Replace every node's data of store {name} with {what}?"))?;
            // The API's own confirmation: the name of the store whose data is replaced.
            let body = RestoreRequest { backup_id: backup, point_in_time: to_time, confirm: name };
            finish(ctx, ctx.call(endpoints::RESTORE, &[("store_id", &id)], Some(&body))?, &waiting)?;
        }
        BackupCommand::Schedule { store, set } => {
            let id = resolve(ctx, &store)?;
            let schedule = match set {
                None => ctx.send(endpoints::SCHEDULE_GET, &[("store_id", &id)])?,
                Some(ScheduleCommand::Set {
                    full_cron,
                    logical_cron,
                    keep_count,
                    keep_days,
                    source,
                    paused,
                }) => {
                    let body = PutSchedule {
                        full_cron,
                        logical_cron,
                        retention: Retention { count: keep_count, days: keep_days },
                        source,
                        paused,
                    };
                    ctx.call(endpoints::SCHEDULE_PUT, &[("store_id", &id)], Some(&body))?
                }
            };
            ctx.out.one(&schedule, SCHEDULE_COLUMNS);
        }
        BackupCommand::RestoreWindow { store } => {
            let w = ctx.send(endpoints::RESTORE_WINDOW, &[("store_id", &resolve(ctx, &store)?)])?;
            ctx.out.one(&w, WINDOW_COLUMNS);
        }
    }
    Ok(())
}

/// Streams the archive into `<to>.part`, hashing it, with a progress bar on a terminal; the file
/// gets its name only when its SHA-256 is the server's.
fn download(ctx: &Ctx, params: &[(&str, &str)], to: PathBuf) -> Result<()> {
    let mut all = vec![("org_id", ctx.org.as_str())];
    all.extend_from_slice(params);
    let mut res = ctx.client.stream(endpoints::BACKUP_DOWNLOAD, &all)?;
    let expected = res.headers().get("x-checksum-sha256").and_then(|v| v.to_str().ok()).map(str::to_string);
    let length = res.content_length();
    let to_stdout = to.as_os_str() == "-";
    let part = to.with_extension(format!(
        "{}part",
        to.extension().map(|e| format!("{}.", e.to_string_lossy())).unwrap_or_default()
    ));
    let file_err = |e: std::io::Error, p: &PathBuf| CliError::Config(format!("writing {}: {e}", p.display()));
    let mut out: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::fs::File::create(&part).map_err(|e| file_err(e, &part))?)
    };
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = length.map_or_else(ProgressBar::new_spinner, ProgressBar::new);
        b.set_style(
            ProgressStyle::with_template(
                "{spinner} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ({eta})",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        b
    });
    let stop = crate::wait::interrupted();
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    let copied = (|| -> Result<()> {
        loop {
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                return Err(CliError::Interrupted("download stopped; nothing kept".into()));
            }
            let n = res.read(&mut buf).map_err(|e| CliError::Network(format!("reading the archive: {e}")))?;
            if n == 0 {
                return Ok(());
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(|e| file_err(e, &part))?;
            total += n as u64;
            if let Some(b) = &bar {
                b.set_position(total);
            }
        }
    })();
    let flushed = copied.and_then(|()| out.flush().map_err(|e| file_err(e, &part)));
    drop(out);
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let actual = hex::encode(hasher.finalize());
    let checked = flushed.and_then(|()| match &expected {
        Some(e) if *e != actual => Err(CliError::Wait(format!(
            "the archive's SHA-256 is {actual}, not the server's {e}: nothing kept, download it again"
        ))),
        _ => Ok(()),
    });
    if let Err(e) = checked {
        if !to_stdout {
            let _ = std::fs::remove_file(&part);
        }
        return Err(e);
    }
    if !to_stdout {
        std::fs::rename(&part, &to).map_err(|e| file_err(e, &to))?;
        eprintln!("Wrote {} ({total} bytes, SHA-256 {actual})", to.display());
    }
    Ok(())
}
