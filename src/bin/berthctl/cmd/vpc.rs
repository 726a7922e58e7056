//! Private networks: `berthctl vpc list|get|create|delete` and `berthctl peering
//! list|get|create|delete|accept|reject VPC`.

use berth::domain::{OrgId, VpcId};
use berth::service::peerings::CreatePeering;
use berth::service::vpcs::CreateVpc;

use super::{confirm, list_all, resolve_named};
use crate::context::Ctx;
use crate::endpoints;
use crate::error::{CliError, Result};
use crate::wait::{Waiting, finish, finish_made};

const VPC_COLUMNS: &[&str] = &["id", "name", "cloud", "region", "cidr_ipv4_block", "status", "created_at"];
const PEERING_COLUMNS: &[&str] =
    &["id", "status", "vpc_id", "cidr_ipv4_block", "peer_vpc_id", "peer_cidr_ipv4_block", "cross_org"];

#[derive(Debug, clap::Subcommand)]
pub enum VpcCommand {
    /// The organization's VPCs.
    List,
    /// One VPC.
    Get { vpc: String },
    /// Creates a VPC: a private network that private stores' nodes join.
    Create {
        name: String,
        /// A private IPv4 network, /16 to /28, e.g. 10.61.0.0/24.
        #[arg(long)]
        cidr: String,
        /// Default: the first cloud the catalog offers.
        #[arg(long)]
        cloud: Option<String>,
        /// Default: the cloud's first.
        #[arg(long)]
        region: Option<String>,
        #[command(flatten)]
        waiting: Waiting,
    },
    /// Deletes a VPC no store uses (asks first).
    Delete {
        vpc: String,
        #[command(flatten)]
        waiting: Waiting,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum PeeringCommand {
    /// A VPC's peerings.
    List { vpc: String },
    /// One peering.
    Get { vpc: String, peering: String },
    /// Joins a VPC to another (of another organization, which must accept, with --peer-org).
    Create {
        vpc: String,
        /// The other VPC's id (or name, in this organization).
        peer_vpc: String,
        /// The other VPC's organization, when it is another one.
        #[arg(long)]
        peer_org: Option<OrgId>,
        #[command(flatten)]
        waiting: Waiting,
    },
    /// Accepts a peering another organization asked for.
    Accept {
        vpc: String,
        peering: String,
        #[command(flatten)]
        waiting: Waiting,
    },
    /// Rejects a peering another organization asked for.
    Reject { vpc: String, peering: String },
    /// Takes a peering down (asks first).
    Delete {
        vpc: String,
        peering: String,
        #[command(flatten)]
        waiting: Waiting,
    },
}

pub fn vpc_id(ctx: &Ctx, vpc: &str) -> Result<String> {
    resolve_named(ctx, endpoints::VPC_LIST, &[], ("name", "id"), vpc, "VPC")
}

pub fn vpc(ctx: &Ctx, c: VpcCommand) -> Result<()> {
    match c {
        VpcCommand::List => ctx.out.list(&list_all(ctx, endpoints::VPC_LIST, &[])?, VPC_COLUMNS),
        VpcCommand::Get { vpc } => {
            ctx.out.one(&ctx.send(endpoints::VPC_GET, &[("vpc_id", &vpc_id(ctx, &vpc)?)])?, VPC_COLUMNS)
        }
        VpcCommand::Create { name, cidr, cloud, region, waiting } => {
            let opts = ctx.client.call::<()>(endpoints::DEPLOY_OPTIONS, &[], &[], None)?;
            let clouds = opts["clouds"].as_array().cloned().unwrap_or_default();
            let chosen = match &cloud {
                Some(c) => clouds.iter().find(|x| x["code"] == c.as_str()),
                None => clouds.first(),
            };
            let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
            let body = CreateVpc {
                name,
                cloud: cloud
                    .or_else(|| chosen.and_then(|c| text(&c["code"])))
                    .unwrap_or_else(|| "local".into()),
                region: region
                    .or_else(|| chosen.and_then(|c| text(&c["regions"][0]["code"])))
                    .ok_or_else(|| CliError::Usage("the cloud has no region; give --region".into()))?,
                cidr_ipv4_block: cidr,
            };
            let answer = ctx.call(endpoints::VPC_CREATE, &[], Some(&body))?;
            let made = answer["vpc"]["id"].as_str().unwrap_or_default().to_string();
            finish_made(
                ctx,
                answer,
                &waiting,
                || ctx.send(endpoints::VPC_GET, &[("vpc_id", &made)]),
                VPC_COLUMNS,
            )?;
        }
        VpcCommand::Delete { vpc, waiting } => {
            let id = vpc_id(ctx, &vpc)?;
            confirm(ctx.yes, &format!("Delete VPC {vpc}?"))?;
            finish(ctx, ctx.send(endpoints::VPC_DELETE, &[("vpc_id", &id)])?, &waiting)?;
        }
    }
    Ok(())
}

pub fn peering(ctx: &Ctx, c: PeeringCommand) -> Result<()> {
    match c {
        PeeringCommand::List { vpc } => {
            let id = vpc_id(ctx, &vpc)?;
            ctx.out.list(&list_all(ctx, endpoints::PEERING_LIST, &[("vpc_id", &id)])?, PEERING_COLUMNS);
        }
        PeeringCommand::Get { vpc, peering } => {
            let id = vpc_id(ctx, &vpc)?;
            let p = ctx.send(endpoints::PEERING_GET, &[("vpc_id", &id), ("peering_id", &peering)])?;
            ctx.out.one(&p, PEERING_COLUMNS);
        }
        PeeringCommand::Create { vpc, peer_vpc, peer_org, waiting } => {
            let id = vpc_id(ctx, &vpc)?;
            // Another organization's VPC can only be named by its id.
            let peer = match peer_org {
                Some(_) => peer_vpc,
                None => vpc_id(ctx, &peer_vpc)?,
            };
            let peer_vpc_id: VpcId =
                peer.parse().map_err(|_| CliError::Usage(format!("not a VPC id: {peer}")))?;
            let body = CreatePeering { peer_vpc_id, peer_org_id: peer_org };
            let answer = ctx.call(endpoints::PEERING_CREATE, &[("vpc_id", &id)], Some(&body))?;
            peering_answer(ctx, &id, answer, &waiting)?;
        }
        PeeringCommand::Accept { vpc, peering, waiting } => {
            let id = vpc_id(ctx, &vpc)?;
            let answer = ctx.send(endpoints::PEERING_ACCEPT, &[("vpc_id", &id), ("peering_id", &peering)])?;
            peering_answer(ctx, &id, answer, &waiting)?;
        }
        PeeringCommand::Reject { vpc, peering } => {
            let id = vpc_id(ctx, &vpc)?;
            let p = ctx.send(endpoints::PEERING_REJECT, &[("vpc_id", &id), ("peering_id", &peering)])?;
            ctx.out.one(&p, PEERING_COLUMNS);
        }
        PeeringCommand::Delete { vpc, peering, waiting } => {
            let id = vpc_id(ctx, &vpc)?;
            confirm(ctx.yes, &format!("Take peering {peering} of VPC {vpc} down?"))?;
            let job = ctx.send(endpoints::PEERING_DELETE, &[("vpc_id", &id), ("peering_id", &peering)])?;
            finish(ctx, job, &waiting)?;
        }
    }
    Ok(())
}

/// `{peering, job}`: with a job, as [`finish_made`] (the peering once it is up); without one,
/// the peering, which waits for the other organization.
fn peering_answer(ctx: &Ctx, vpc: &str, answer: serde_json::Value, waiting: &Waiting) -> Result<()> {
    if answer["job"].is_object() {
        let made = answer["peering"]["id"].as_str().unwrap_or_default().to_string();
        let read = || ctx.send(endpoints::PEERING_GET, &[("vpc_id", vpc), ("peering_id", &made)]);
        finish_made(ctx, answer, waiting, read, PEERING_COLUMNS)
    } else {
        if ctx.out.json() {
            ctx.out.one(&answer, &[]);
        } else {
            ctx.out.one(&answer["peering"], PEERING_COLUMNS);
            eprintln!("The peer's organization must accept it: berthctl peering accept");
        }
        Ok(())
    }
}
