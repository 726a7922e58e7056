//! Parameter groups and the parameters in force: `berthctl param-group
//! list|get|create|update|delete|apply` and `berthctl parameters show|catalog`.

use std::collections::BTreeMap;

use berth::service::parameter_groups::{ApplyGroup, CreateGroup, UpdateGroup};

use super::{confirm, list_all, parse_id, resolve_named, store::resolve};
use crate::context::Ctx;
use crate::endpoints;
use crate::error::{CliError, Result};
use crate::wait::{Waiting, finish};

const GROUP_COLUMNS: &[&str] = &["id", "name", "vendor", "version", "description", "updated_at"];
const IN_FORCE_COLUMNS: &[&str] = &["name", "unit", "group_setting", "drift"];
const CATALOG_COLUMNS: &[&str] = &["name", "type", "unit", "min", "max", "default", "restart"];

/// `name=value`.
fn setting(s: &str) -> std::result::Result<(String, String), String> {
    s.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| "name=value, e.g. work_mem=16MB".into())
}

#[derive(Debug, clap::Subcommand)]
pub enum GroupCommand {
    /// The organization's parameter groups.
    List,
    /// One group, with its parameters.
    Get { group: String },
    /// Creates a group: `--set work_mem=16MB --set max_connections=200`.
    Create {
        name: String,
        /// PostgreSQL's major version it is for.
        #[arg(long)]
        version: String,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long = "set", value_parser = setting)]
        settings: Vec<(String, String)>,
    },
    /// Changes a group's parameters (`--set`, `--unset`) or description; stores using it get
    /// the new values.
    Update {
        group: String,
        #[arg(long)]
        description: Option<String>,
        #[arg(long = "set", value_parser = setting)]
        settings: Vec<(String, String)>,
        #[arg(long = "unset")]
        unset: Vec<String>,
    },
    /// Deletes a group no store uses (asks first).
    Delete { group: String },
    /// Applies a group to a store: a job sets the parameters on every node, replicas first.
    Apply {
        store: String,
        group: String,
        #[command(flatten)]
        waiting: Waiting,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum ParametersCommand {
    /// The parameters in force on each node of a store, and any drift from its group.
    Show { store: String },
    /// Every parameter a group may set, with its range and whether it needs a restart.
    Catalog {
        /// PostgreSQL's major version (default: the newest installed).
        #[arg(long)]
        version: Option<String>,
    },
}

fn group_id(ctx: &Ctx, group: &str) -> Result<String> {
    resolve_named(ctx, endpoints::GROUP_LIST, &[], ("name", "id"), group, "parameter group")
}

pub fn group(ctx: &Ctx, c: GroupCommand) -> Result<()> {
    match c {
        GroupCommand::List => ctx.out.list(&list_all(ctx, endpoints::GROUP_LIST, &[])?, GROUP_COLUMNS),
        GroupCommand::Get { group } => {
            let g = ctx.send(endpoints::GROUP_GET, &[("group_id", &group_id(ctx, &group)?)])?;
            show_group(ctx, &g);
        }
        GroupCommand::Create { name, version, description, settings } => {
            let body = CreateGroup {
                name,
                vendor: "postgres".into(),
                version,
                description,
                parameters: settings.into_iter().collect(),
            };
            show_group(ctx, &ctx.call(endpoints::GROUP_CREATE, &[], Some(&body))?);
        }
        GroupCommand::Update { group, description, settings, unset } => {
            let id = group_id(ctx, &group)?;
            // The API takes the whole new set: start from the group as it is, and change it only
            // if nobody has meanwhile (If-Match).
            let params = [("org_id", ctx.org.as_str()), ("group_id", id.as_str())];
            let (now, etag) = ctx.client.call_tagged::<()>(endpoints::GROUP_GET, &params, &[], None, None)?;
            let mut parameters: BTreeMap<String, String> = now["parameters"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_string)))
                .collect();
            for name in &unset {
                if parameters.remove(name).is_none() {
                    return Err(CliError::Usage(format!("group {group} does not set {name}")));
                }
            }
            parameters.extend(settings);
            let description =
                description.unwrap_or_else(|| now["description"].as_str().unwrap_or_default().to_string());
            let body = UpdateGroup { description, parameters };
            let (changed, _) = ctx.client.call_tagged(
                endpoints::GROUP_UPDATE,
                &params,
                &[],
                Some(&body),
                etag.as_deref(),
            )?;
            show_group(ctx, &changed);
        }
        GroupCommand::Delete { group } => {
            let id = group_id(ctx, &group)?;
            confirm(ctx.yes, &format!("Delete parameter group {group}?"))?;
            ctx.send(endpoints::GROUP_DELETE, &[("group_id", &id)])?;
            eprintln!("Parameter group {group} deleted");
        }
        GroupCommand::Apply { store, group, waiting } => {
            let store = resolve(ctx, &store)?;
            let group_id = group_id(ctx, &group)?;
            let body = ApplyGroup { group_id: parse_id(&group_id)? };
            finish(ctx, ctx.call(endpoints::GROUP_APPLY, &[("store_id", &store)], Some(&body))?, &waiting)?;
        }
    }
    Ok(())
}

/// A group: its row, then its parameters one per line.
fn show_group(ctx: &Ctx, g: &serde_json::Value) {
    ctx.out.one(g, GROUP_COLUMNS);
    if !ctx.out.json() {
        for (k, v) in g["parameters"].as_object().into_iter().flatten() {
            println!("  {k} = {}", v.as_str().map_or_else(|| v.to_string(), str::to_string));
        }
    }
}

pub fn parameters(ctx: &Ctx, c: ParametersCommand) -> Result<()> {
    match c {
        ParametersCommand::Show { store } => {
            let p = ctx.send(endpoints::STORE_PARAMETERS, &[("store_id", &resolve(ctx, &store)?)])?;
            if ctx.out.json() {
                ctx.out.one(&p, &[]);
            } else {
                ctx.out.list_of(&p["items"], IN_FORCE_COLUMNS);
            }
        }
        ParametersCommand::Catalog { version } => {
            let mut query = vec![("vendor", "postgres".to_string())];
            query.extend(version.map(|v| ("version", v)));
            let c = ctx.client.call::<()>(endpoints::PARAMETER_CATALOG, &[], &query, None)?;
            ctx.out.list_of(&c["items"], CATALOG_COLUMNS);
        }
    }
    Ok(())
}
