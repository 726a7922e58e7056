//! The audit trail, the service's health and its catalog: `berthctl audit list|verify`,
//! `berthctl system status` and `berthctl deploy-options`.

use serde_json::Value;

use super::{rfc3339, rfc3339_text};
use crate::context::Ctx;
use crate::endpoints;
use crate::error::{CliError, Result};

const AUDIT_COLUMNS: &[&str] = &["id", "at", "action", "outcome", "actor", "target", "source_ip"];
const SIZE_COLUMNS: &[&str] = &["code", "name", "memory_mb", "max_connections"];

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// The organization's audit events, newest first.
    List {
        /// The actor's user id or e-mail address.
        #[arg(long)]
        actor: Option<String>,
        /// An action (`member.added`), or a prefix ending in `.` (`credential.`).
        #[arg(long)]
        action: Option<String>,
        /// Events at or after this time (RFC 3339).
        #[arg(long, value_parser = rfc3339)]
        from: Option<time::OffsetDateTime>,
        /// Events before this time (RFC 3339).
        #[arg(long, value_parser = rfc3339)]
        to: Option<time::OffsetDateTime>,
        /// How many, newest first (1 to 1000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=1000))]
        limit: u16,
    },
    /// Checks the hash chain of the organization's audit trail: exit code 3 when it is broken.
    Verify,
}

#[derive(Debug, clap::Subcommand)]
pub enum SystemCommand {
    /// The service's database, migrations, workers and job queue.
    Status,
}

pub fn audit(ctx: &Ctx, c: AuditCommand) -> Result<()> {
    match c {
        AuditCommand::List { actor, action, from, to, limit } => {
            let mut filter = vec![];
            filter.extend(actor.map(|a| ("actor", a)));
            filter.extend(action.map(|a| ("action", a)));
            filter.extend(from.map(|t| ("from", rfc3339_text(t))));
            filter.extend(to.map(|t| ("to", rfc3339_text(t))));
            let mut items: Vec<Value> = vec![];
            let mut cursor: Option<String> = None;
            while items.len() < usize::from(limit) {
                let mut query = filter.clone();
                query.push(("limit", (usize::from(limit) - items.len()).min(200).to_string()));
                query.extend(cursor.take().map(|c| ("cursor", c)));
                let page = ctx.query::<()>(endpoints::AUDIT_LIST, &[], &query, None)?;
                items.extend(page["items"].as_array().cloned().unwrap_or_default());
                match page["next_cursor"].as_str() {
                    Some(c) if !c.is_empty() => cursor = Some(c.to_string()),
                    _ => break,
                }
            }
            ctx.out.list(&items, AUDIT_COLUMNS);
        }
        AuditCommand::Verify => {
            let v = ctx.send(endpoints::AUDIT_VERIFY, &[])?;
            ctx.out.one(&v, &["valid", "events_checked", "first_invalid_event_id"]);
            if v["valid"] != Value::Bool(true) {
                return Err(CliError::Wait(format!(
                    "the audit trail is broken at event {}",
                    v["first_invalid_event_id"]
                )));
            }
        }
    }
    Ok(())
}

pub fn system(ctx: &Ctx, c: SystemCommand) -> Result<()> {
    match c {
        SystemCommand::Status => {
            let s = ctx.client.call::<()>(endpoints::SYSTEM_STATUS, &[], &[], None)?;
            if ctx.out.json() {
                ctx.out.one(&s, &[]);
                return Ok(());
            }
            ctx.out.one(
                &s,
                &[
                    "version",
                    "database.reachable",
                    "database.server_version",
                    "database.migrations_applied",
                    "live_workers",
                    "queue.queued",
                    "queue.running",
                    "queue.oldest_queued_at",
                ],
            );
            if let Some(workers) = s["workers"].as_array() {
                println!();
                ctx.out.list(workers, &["id", "hostname", "pid", "started_at", "heartbeat_at"]);
            }
        }
    }
    Ok(())
}

/// What a store can be made of: versions, instance sizes, clouds and regions, volume sizes.
pub fn deploy_options(ctx: &Ctx) -> Result<()> {
    let o = ctx.client.call::<()>(endpoints::DEPLOY_OPTIONS, &[], &[], None)?;
    if ctx.out.json() {
        ctx.out.one(&o, &[]);
        return Ok(());
    }
    let list = |v: &Value, key: &str| -> String {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x[key].as_str().map(str::to_string))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for vendor in o["vendors"].as_array().into_iter().flatten() {
        let versions: Vec<String> = vendor["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        println!("{}: versions {}", vendor["code"].as_str().unwrap_or("?"), versions.join(", "));
    }
    for cloud in o["clouds"].as_array().into_iter().flatten() {
        println!(
            "cloud {}: regions {}",
            cloud["code"].as_str().unwrap_or("?"),
            list(&cloud["regions"], "code")
        );
    }
    let v = &o["volume_size_gb"];
    println!("volume size: {} to {} GB (default {})", v["min"], v["max"], v["default"]);
    println!();
    ctx.out.list_of(&o["instance_sizes"], SIZE_COLUMNS);
    Ok(())
}
