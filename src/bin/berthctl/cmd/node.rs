//! `berthctl node add|remove|restart|stop|start|reinitialize|maintenance STORE [NODE]`.

use serde_json::{Value, json};

use super::{confirm, store::resolve};
use crate::context::Ctx;
use crate::endpoints::{self, Endpoint};
use crate::error::{CliError, Result};
use crate::wait::{Waiting, finish};

#[derive(Debug, clap::Args)]
pub struct NodeRef {
    /// The store's name or id.
    pub store: String,
    /// The node's id, or `primary`.
    pub node: String,
}

#[derive(Debug, clap::Subcommand)]
pub enum NodeCommand {
    /// Adds a streaming replica.
    Add {
        store: String,
        #[command(flatten)]
        waiting: Waiting,
    },
    /// Removes a replica and its data.
    Remove {
        #[command(flatten)]
        node: NodeRef,
        #[command(flatten)]
        waiting: Waiting,
    },
    /// Restarts a node.
    Restart {
        #[command(flatten)]
        node: NodeRef,
        #[command(flatten)]
        waiting: Waiting,
    },
    /// Stops a replica until it is started again.
    Stop {
        #[command(flatten)]
        node: NodeRef,
        #[command(flatten)]
        waiting: Waiting,
    },
    /// Starts a stopped node.
    Start {
        #[command(flatten)]
        node: NodeRef,
        #[command(flatten)]
        waiting: Waiting,
    },
    /// Copies a replica afresh from the primary.
    Reinitialize {
        #[command(flatten)]
        node: NodeRef,
        #[command(flatten)]
        waiting: Waiting,
    },
    /// Takes a node out of candidacy and alerts (`on`), or back (`off`).
    Maintenance {
        #[command(flatten)]
        node: NodeRef,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
}

/// The store's id and the node's: an id as it is, `primary` as the topology names it.
fn resolve_node(ctx: &Ctx, r: &NodeRef) -> Result<(String, String)> {
    let store = resolve(ctx, &r.store)?;
    if uuid::Uuid::parse_str(&r.node).is_ok() {
        return Ok((store, r.node.clone()));
    }
    if r.node != "primary" {
        return Err(CliError::Usage(format!("{:?} is neither a node id nor `primary`", r.node)));
    }
    let t = ctx.send(endpoints::TOPOLOGY, &[("store_id", &store)])?;
    let primary = t["primary_node_id"].as_str().map(str::to_owned);
    let primary = primary.ok_or_else(|| CliError::Usage(format!("store {} has no primary now", r.store)))?;
    Ok((store, primary))
}

fn node_call(
    ctx: &Ctx,
    ep: Endpoint,
    (store, node): &(String, String),
    body: Option<&Value>,
) -> Result<Value> {
    ctx.call(ep, &[("store_id", store), ("node_id", node)], body)
}

pub fn run(ctx: &Ctx, c: NodeCommand) -> Result<()> {
    match c {
        NodeCommand::Add { store, waiting } => {
            let id = resolve(ctx, &store)?;
            let answer = ctx.send(endpoints::NODE_ADD, &[("store_id", &id)])?;
            finish(ctx, answer, &waiting)
        }
        NodeCommand::Remove { node, waiting } => {
            let ids = resolve_node(ctx, &node)?;
            confirm(ctx.yes, &format!("Remove node {} of store {} and its data?", ids.1, node.store))?;
            finish(ctx, node_call(ctx, endpoints::NODE_REMOVE, &ids, None)?, &waiting)
        }
        NodeCommand::Restart { node, waiting } => {
            finish(ctx, node_call(ctx, endpoints::NODE_RESTART, &resolve_node(ctx, &node)?, None)?, &waiting)
        }
        NodeCommand::Stop { node, waiting } => {
            finish(ctx, node_call(ctx, endpoints::NODE_STOP, &resolve_node(ctx, &node)?, None)?, &waiting)
        }
        NodeCommand::Start { node, waiting } => {
            finish(ctx, node_call(ctx, endpoints::NODE_START, &resolve_node(ctx, &node)?, None)?, &waiting)
        }
        NodeCommand::Reinitialize { node, waiting } => {
            let ids = resolve_node(ctx, &node)?;
            confirm(ctx.yes, &format!("Discard node {}'s data and copy it afresh from the primary?", ids.1))?;
            finish(ctx, node_call(ctx, endpoints::NODE_REINITIALIZE, &ids, None)?, &waiting)
        }
        NodeCommand::Maintenance { node, state } => {
            let body = json!({ "maintenance": state == "on" });
            let store = node_call(ctx, endpoints::NODE_UPDATE, &resolve_node(ctx, &node)?, Some(&body))?;
            ctx.out.one(&store, crate::cmd::store::STORE_COLUMNS);
            Ok(())
        }
    }
}
