//! High availability: `berthctl switchover|failover|topology|history|events STORE` and
//! `berthctl ha pause|resume|set STORE`.

use berth::domain::NodeId;
use berth::domain::ha::{HaPatch, SyncMode};
use berth::service::ha::{FailoverRequest, SwitchoverRequest};
use berth::service::stores::UpdateStore;
use serde_json::Value;

use super::{confirm, list_all, rfc3339, store::resolve};
use crate::context::Ctx;
use crate::endpoints::{self, Endpoint};
use crate::error::Result;
use crate::wait::{self, Waiting, finish};

const NODE_COLUMNS: &[&str] = &[
    "id",
    "role",
    "state",
    "timeline",
    "lag_bytes",
    "lag_seconds",
    "streaming",
    "sync_state",
    "fenced",
    "maintenance",
];
const HISTORY_COLUMNS: &[&str] = &[
    "at",
    "kind",
    "automatic",
    "from_node_id",
    "to_node_id",
    "timeline",
    "switch_lsn",
    "estimated_bytes_lost",
];
const EVENT_COLUMNS: &[&str] = &["at", "kind", "node_id", "message"];
const HA_COLUMNS: &[&str] = &[
    "auto_failover",
    "failover_delay",
    "max_lag_on_failover_bytes",
    "synchronous",
    "paused",
    "paused_reason",
];

#[derive(Debug, clap::Args)]
pub struct SwitchoverArgs {
    /// The store's name or id.
    pub store: String,
    /// The replica to promote (its node id); without it, the most advanced streaming one.
    #[arg(long)]
    pub candidate: Option<NodeId>,
    /// Switch over at this time (RFC 3339) instead of now.
    #[arg(long, value_parser = rfc3339)]
    pub at: Option<time::OffsetDateTime>,
    /// Cancel the store's scheduled switchover instead.
    #[arg(long, conflicts_with_all = ["candidate", "at"])]
    pub cancel: bool,
    #[command(flatten)]
    pub waiting: Waiting,
}

#[derive(Debug, clap::Args)]
pub struct FailoverArgs {
    /// The store's name or id.
    pub store: String,
    /// The replica to promote (its node id).
    #[arg(long)]
    pub candidate: NodeId,
    /// Fail over even though the primary answers (it is fenced).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub waiting: Waiting,
}

#[derive(Debug, clap::Subcommand)]
pub enum HaCommand {
    /// The failover monitor leaves the store alone.
    Pause { store: String },
    /// The failover monitor watches the store again.
    Resume { store: String },
    /// Changes the store's HA settings; the others stay as they are.
    Set {
        store: String,
        #[arg(long)]
        auto_failover: Option<bool>,
        /// Seconds the primary must fail every probe before a failover (1 to 3600).
        #[arg(long)]
        failover_delay: Option<i32>,
        #[arg(long)]
        max_lag_on_failover_bytes: Option<i64>,
        #[arg(long, value_parser = sync_mode)]
        synchronous: Option<SyncMode>,
        /// Wait for the job that applies a new synchronous mode.
        #[command(flatten)]
        waiting: Waiting,
    },
}

fn sync_mode(s: &str) -> std::result::Result<SyncMode, String> {
    SyncMode::ALL
        .iter()
        .copied()
        .find(|m| m.as_str() == s)
        .ok_or_else(|| "one of off, any_1, quorum".to_owned())
}

fn store_call<B: serde::Serialize>(ctx: &Ctx, ep: Endpoint, id: &str, body: Option<&B>) -> Result<Value> {
    ctx.call(ep, &[("store_id", id)], body)
}

pub fn switchover(ctx: &Ctx, a: SwitchoverArgs) -> Result<()> {
    let id = resolve(ctx, &a.store)?;
    if a.cancel {
        let cancelled = store_call::<()>(ctx, endpoints::SWITCHOVER_CANCEL, &id, None)?;
        ctx.out.one(&cancelled, crate::cmd::job::JOB_COLUMNS);
        return Ok(());
    }
    let body = SwitchoverRequest { candidate_node_id: a.candidate, scheduled_at: a.at };
    let answer = store_call(ctx, endpoints::SWITCHOVER, &id, Some(&body))?;
    // A scheduled switchover's job waits for its time: nothing to wait for now.
    let waiting = Waiting { wait: a.waiting.wait && a.at.is_none(), ..a.waiting };
    finish(ctx, answer, &waiting)
}

pub fn failover(ctx: &Ctx, a: FailoverArgs) -> Result<()> {
    let id = resolve(ctx, &a.store)?;
    let what = if a.force { " (forced: the primary is fenced even if it answers)" } else { "" };
    confirm(ctx.yes, &format!("Fail store {} over to node {}{what}?", a.store, a.candidate))?;
    let body = FailoverRequest { candidate_node_id: a.candidate, force: a.force };
    let answer = store_call(ctx, endpoints::FAILOVER, &id, Some(&body))?;
    finish(ctx, answer, &a.waiting)
}

pub fn topology(ctx: &Ctx, store: &str) -> Result<()> {
    let t = store_call::<()>(ctx, endpoints::TOPOLOGY, &resolve(ctx, store)?, None)?;
    if ctx.out.json() {
        ctx.out.one(&t, &[]);
    } else {
        eprintln!("phase {}, timeline {}", t["phase"].as_str().unwrap_or("?"), t["timeline"]);
        ctx.out.list_of(&t["nodes"], NODE_COLUMNS);
    }
    Ok(())
}

pub fn history(ctx: &Ctx, store: &str) -> Result<()> {
    let id = resolve(ctx, store)?;
    let items = list_all(ctx, endpoints::HISTORY, &[("store_id", &id)])?;
    ctx.out.list(&items, HISTORY_COLUMNS);
    Ok(())
}

pub fn events(ctx: &Ctx, store: &str) -> Result<()> {
    let id = resolve(ctx, store)?;
    let items = list_all(ctx, endpoints::EVENTS, &[("store_id", &id)])?;
    ctx.out.list(&items, EVENT_COLUMNS);
    Ok(())
}

pub fn run(ctx: &Ctx, c: HaCommand) -> Result<()> {
    let ha = match c {
        HaCommand::Pause { store } => {
            store_call::<()>(ctx, endpoints::HA_PAUSE, &resolve(ctx, &store)?, None)?["ha"].clone()
        }
        HaCommand::Resume { store } => {
            store_call::<()>(ctx, endpoints::HA_RESUME, &resolve(ctx, &store)?, None)?["ha"].clone()
        }
        HaCommand::Set {
            store,
            auto_failover,
            failover_delay,
            max_lag_on_failover_bytes,
            synchronous,
            waiting,
        } => {
            let patch = HaPatch { auto_failover, failover_delay, max_lag_on_failover_bytes, synchronous };
            let body = UpdateStore { ha: Some(patch), ..UpdateStore::default() };
            let answer = store_call(ctx, endpoints::STORE_UPDATE, &resolve(ctx, &store)?, Some(&body))?;
            // 202 with the store and the job that applies a new synchronous mode; else the store.
            match answer["job"]["id"].as_str() {
                Some(job) if waiting.wait => {
                    wait::job(ctx, job, &waiting.wait_args)?;
                }
                Some(job) => eprintln!("Job {job} applies it; wait for it with: berthctl job wait {job}"),
                None => {}
            }
            let view = if answer["store"].is_object() { &answer["store"] } else { &answer };
            view["ha"].clone()
        }
    };
    ctx.out.one(&ha, HA_COLUMNS);
    Ok(())
}
