//! `berthctl store list|get|create|delete|wait`. A store is named by its name or its id.

use berth::domain::{BackupId, NetworkType, StoreNetwork};
use berth::service::stores::{CreateStore, RestoreFrom, UpdateStore};
use serde_json::Value;

use crate::cmd::{confirm, list_all, parse_id, resolve_named, rfc3339_text};
use crate::context::Ctx;
use crate::endpoints;
use crate::error::{CliError, Result};
use crate::wait::{self, WaitArgs, Waiting, finish};

pub const STORE_COLUMNS: &[&str] =
    &["id", "name", "status", "version", "instance_size", "volume_size", "nodes", "region", "created_at"];

const STATS_COLUMNS: &[&str] = &[
    "node_id",
    "at",
    "connections",
    "xact_commit",
    "xact_rollback",
    "db_size_bytes",
    "cache_hit_ratio",
    "replication_lag_bytes",
];

#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// The organization's stores.
    List,
    /// One store, with its nodes and endpoints.
    Get { store: String },
    /// Creates a store: `berthctl store create mydb --nodes 3 --size small --wait`.
    Create(CreateArgs),
    /// Deletes a store (asks first on a terminal; `--yes` otherwise).
    Delete {
        store: String,
        /// Also delete its backups and archived WAL.
        #[arg(long)]
        delete_backups: bool,
        /// Wait for the deletion to finish.
        #[arg(long)]
        wait: bool,
        #[command(flatten)]
        wait_args: WaitArgs,
    },
    /// Changes a store's name, tags or deletion protection (at once, no job).
    Update {
        store: String,
        #[arg(long)]
        name: Option<String>,
        /// The whole new set of tags; repeat for more.
        #[arg(long = "tag", conflicts_with = "clear_tags")]
        tags: Vec<String>,
        /// Remove every tag.
        #[arg(long)]
        clear_tags: bool,
        #[arg(long)]
        deletion_protection: Option<bool>,
    },
    /// Gives a store a new instance size or a bigger volume: a job restarts the nodes, replicas
    /// first.
    Resize {
        store: String,
        /// The new instance size.
        #[arg(long, required_unless_present = "volume")]
        size: Option<String>,
        /// The new volume size, GB (only grows).
        #[arg(long)]
        volume: Option<i64>,
        #[command(flatten)]
        waiting: Waiting,
    },
    /// Brings every node back to its spec: started, configured, streaming.
    Repair {
        store: String,
        #[command(flatten)]
        waiting: Waiting,
    },
    /// Each node's latest statistics (connections, transactions, size, cache hits, lag), or with
    /// `--metric` one metric over time.
    Stats {
        store: String,
        /// connections, xact_commit, xact_rollback, tup_fetched, tup_inserted, tup_updated,
        /// tup_deleted, db_size_bytes, cache_hit_ratio or replication_lag_bytes.
        #[arg(long)]
        metric: Option<String>,
        /// From (RFC 3339; default an hour before --to).
        #[arg(long, requires = "metric", value_parser = crate::cmd::rfc3339)]
        from: Option<time::OffsetDateTime>,
        /// To (RFC 3339; default now).
        #[arg(long, requires = "metric", value_parser = crate::cmd::rfc3339)]
        to: Option<time::OffsetDateTime>,
        /// Seconds per point (default 60).
        #[arg(long, requires = "metric")]
        step: Option<u32>,
    },
    /// Waits until the store's job in progress has finished and the store is available.
    Wait {
        store: String,
        #[command(flatten)]
        wait_args: WaitArgs,
    },
    /// The store's connection info: its user, database, the URI of each node and the multi-host
    /// URI that follows the primary (no password).
    Connection { store: String },
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    pub name: String,
    /// Nodes: one primary, the rest streaming replicas.
    #[arg(long, default_value_t = 1)]
    pub nodes: i64,
    /// The instance size (`berthctl api GET /api/v1/content/deploy-options` lists them).
    #[arg(long)]
    pub size: String,
    /// GB (default: the catalog's).
    #[arg(long)]
    pub volume: Option<i64>,
    /// PostgreSQL's major version (default: the newest installed).
    #[arg(long)]
    pub version: Option<String>,
    /// Default: the first the catalog offers.
    #[arg(long)]
    pub cloud: Option<String>,
    /// Default: the cloud's first.
    #[arg(long)]
    pub region: Option<String>,
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    #[arg(long)]
    pub deletion_protection: bool,
    /// A private store inside this VPC (its name or id): its nodes listen only there.
    #[arg(long)]
    pub vpc: Option<String>,
    /// Make the store from a backup of this store (its name or id; an id for a deleted one).
    #[arg(long)]
    pub from_store: Option<String>,
    /// That store's backup to start from, to the moment it finished.
    #[arg(long, requires = "from_store", conflicts_with = "at")]
    pub from_backup: Option<BackupId>,
    /// That store's state at this moment (RFC 3339), from its backups and archived WAL.
    #[arg(long, requires = "from_store", value_parser = crate::cmd::rfc3339)]
    pub at: Option<time::OffsetDateTime>,
    /// Wait until the store is available, then print it.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub wait_args: WaitArgs,
}

/// A store's id: the argument itself when it is one, else the id of the store of that name.
pub fn resolve(ctx: &Ctx, store: &str) -> Result<String> {
    resolve_named(ctx, endpoints::STORE_LIST, &[], ("name", "id"), store, "store")
}

fn get(ctx: &Ctx, id: &str) -> Result<Value> {
    ctx.send(endpoints::STORE_GET, &[("store_id", id)])
}

pub fn run(ctx: &Ctx, c: StoreCommand) -> Result<()> {
    match c {
        StoreCommand::List => {
            let items = list_all(ctx, endpoints::STORE_LIST, &[])?;
            ctx.out.list(&items, STORE_COLUMNS);
        }
        StoreCommand::Get { store } => {
            let id = resolve(ctx, &store)?;
            ctx.out.one(&get(ctx, &id)?, STORE_COLUMNS);
        }
        StoreCommand::Create(a) => create(ctx, a)?,
        StoreCommand::Delete { store, delete_backups, wait, wait_args } => {
            let id = resolve(ctx, &store)?;
            confirm(ctx.yes, &format!("Delete store {store} ({id}) and its data?"))?;
            let query = [("delete_backups", delete_backups.to_string())];
            let job = ctx.query::<()>(endpoints::STORE_DELETE, &[("store_id", &id)], &query, None)?;
            let job = match (wait, job["id"].as_str()) {
                (true, Some(job_id)) => wait::job(ctx, job_id, &wait_args)?,
                _ => job,
            };
            ctx.out.one(&job, crate::cmd::job::JOB_COLUMNS);
        }
        StoreCommand::Connection { store } => {
            let id = resolve(ctx, &store)?;
            let c = get(ctx, &id)?["connection"].clone();
            if ctx.out.json() {
                ctx.out.one(&c, &[]);
            } else {
                let mut rows =
                    vec![serde_json::json!({"node": "all (read-write)", "uri": c["multi_host_uri"]})];
                rows.extend(
                    c["primary"].as_object().map(|p| serde_json::json!({"node": "primary", "uri": p["uri"]})),
                );
                for r in c["read_only"].as_array().into_iter().flatten() {
                    rows.push(serde_json::json!({"node": "replica", "uri": r["uri"]}));
                }
                ctx.out.list(&rows, &["node", "uri"]);
            }
        }
        StoreCommand::Update { store, name, tags, clear_tags, deletion_protection } => {
            let tags = (clear_tags || !tags.is_empty()).then_some(tags);
            let body = UpdateStore { name, tags, deletion_protection, ..UpdateStore::default() };
            let changed =
                ctx.call(endpoints::STORE_UPDATE, &[("store_id", &resolve(ctx, &store)?)], Some(&body))?;
            ctx.out.one(&changed, STORE_COLUMNS);
        }
        StoreCommand::Resize { store, size, volume, waiting } => {
            let body = UpdateStore { instance_size: size, volume_size: volume, ..UpdateStore::default() };
            let answer =
                ctx.call(endpoints::STORE_UPDATE, &[("store_id", &resolve(ctx, &store)?)], Some(&body))?;
            finish(ctx, answer, &waiting)?;
        }
        StoreCommand::Repair { store, waiting } => finish(
            ctx,
            ctx.send(endpoints::STORE_REPAIR, &[("store_id", &resolve(ctx, &store)?)])?,
            &waiting,
        )?,
        StoreCommand::Stats { store, metric: None, .. } => {
            let s = ctx.send(endpoints::STORE_STATS, &[("store_id", &resolve(ctx, &store)?)])?;
            ctx.out.list_of(&s["items"], STATS_COLUMNS);
        }
        StoreCommand::Stats { store, metric: Some(metric), from, to, step } => {
            let mut query = vec![("metric", metric)];
            query.extend(from.map(|t| ("from", rfc3339_text(t))));
            query.extend(to.map(|t| ("to", rfc3339_text(t))));
            query.extend(step.map(|s| ("step", s.to_string())));
            let id = resolve(ctx, &store)?;
            let s = ctx.query::<()>(endpoints::STORE_SERIES, &[("store_id", &id)], &query, None)?;
            if ctx.out.json() {
                ctx.out.one(&s, &[]);
            } else {
                // One row per node and point.
                let rows: Vec<Value> = s["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|n| {
                        n["points"].as_array().cloned().unwrap_or_default().into_iter().map(move |mut p| {
                            p["node_id"] = n["node_id"].clone();
                            p
                        })
                    })
                    .collect();
                ctx.out.list(&rows, &["node_id", "at", "avg", "max"]);
            }
        }
        StoreCommand::Wait { store, wait_args } => {
            let id = resolve(ctx, &store)?;
            let store = wait_store(ctx, &id, get(ctx, &id)?, None, &wait_args)?;
            ctx.out.one(&store, STORE_COLUMNS);
        }
    }
    Ok(())
}

/// Waits for the job (the store's job in progress when none is given); the store then, which
/// must be available.
fn wait_store(ctx: &Ctx, id: &str, store: Value, job: Option<&str>, args: &WaitArgs) -> Result<Value> {
    let store = match job.or(store["current_job"]["id"].as_str()) {
        Some(job) => {
            wait::job(ctx, job, args)?;
            get(ctx, id)?
        }
        None => store,
    };
    match store["status"].as_str() {
        Some("available") => Ok(store),
        other => Err(CliError::Wait(format!("store {id} is {}, not available", other.unwrap_or("unknown")))),
    }
}

fn create(ctx: &Ctx, a: CreateArgs) -> Result<()> {
    let opts = ctx.client.call::<()>(endpoints::DEPLOY_OPTIONS, &[], &[], None)?;
    let vendor = opts["vendors"].get(0).cloned().unwrap_or_default();
    let cloud = match &a.cloud {
        Some(c) => {
            opts["clouds"].as_array().and_then(|cs| cs.iter().find(|x| x["code"] == c.as_str())).cloned()
        }
        None => opts["clouds"].get(0).cloned(),
    }
    .unwrap_or_default();
    let text = |v: &Value| v.as_str().map(str::to_string);
    let body = CreateStore {
        name: a.name,
        vendor: text(&vendor["code"]).unwrap_or_else(|| "postgres".into()),
        version: a
            .version
            .or_else(|| vendor["versions"].as_array().and_then(|v| v.last()).and_then(text))
            .ok_or_else(|| {
                CliError::Usage("no PostgreSQL version installed on the server; give --version".into())
            })?,
        instance_size: a.size,
        volume_size: a.volume.or_else(|| opts["volume_size_gb"]["default"].as_i64()).unwrap_or(10),
        nodes: a.nodes,
        cloud: a.cloud.or_else(|| text(&cloud["code"])).unwrap_or_else(|| "local".into()),
        region: a
            .region
            .or_else(|| text(&cloud["regions"][0]["code"]))
            .ok_or_else(|| CliError::Usage("the cloud has no region; give --region".into()))?,
        tags: a.tags,
        deletion_protection: a.deletion_protection,
        restore_from: match &a.from_store {
            Some(s) => Some(RestoreFrom {
                store_id: parse_id(&resolve(ctx, s)?)?,
                backup_id: a.from_backup,
                point_in_time: a.at,
            }),
            None => None,
        },
        network: match &a.vpc {
            Some(v) => Some(StoreNetwork {
                r#type: NetworkType::Private,
                vpc_id: Some(parse_id(&crate::cmd::vpc::vpc_id(ctx, v)?)?),
            }),
            None => None,
        },
    };
    let accepted = ctx.call(endpoints::STORE_CREATE, &[], Some(&body))?;
    if !a.wait {
        if ctx.out.json() {
            crate::output::print_json(&accepted);
        } else {
            ctx.out.one(&accepted["store"], STORE_COLUMNS);
            if let Some(job) = accepted["job"]["id"].as_str() {
                eprintln!("Job {job} builds it; wait for it with: berthctl job wait {job}");
            }
        }
        return Ok(());
    }
    let id = accepted["store"]["id"].as_str().unwrap_or_default().to_string();
    let store =
        wait_store(ctx, &id, accepted["store"].clone(), accepted["job"]["id"].as_str(), &a.wait_args)?;
    ctx.out.one(&store, STORE_COLUMNS);
    Ok(())
}
