//! Stores in VPCs: placing a new store in its VPC, and giving its nodes their addresses.

use ipnet::{IpNet, Ipv4Net};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::db;
use crate::db::vpcs::VpcRow;
use crate::domain::{Ctx, Error, Result, VpcStatus, node_addresses};

/// A VPC as messages name it.
pub fn describe(v: &VpcRow) -> String {
    format!("VPC {} ({}, {})", v.name, v.id, v.cidr)
}

/// A VPC's IPv4 block (VPC blocks are IPv4).
pub fn ipv4(net: IpNet) -> Option<Ipv4Net> {
    match net {
        IpNet::V4(n) => Some(n),
        IpNet::V6(_) => None,
    }
}

/// Locks the VPC a new store is placed in, checking that it can take it.
pub async fn vpc_for_store(
    tx: &mut Transaction<'_, Postgres>,
    ctx: &Ctx,
    vpc_id: Uuid,
    cloud: &str,
    region: &str,
) -> Result<VpcRow> {
    let vpc = db::vpcs::get_for_update(tx, ctx, vpc_id)
        .await?
        .ok_or_else(|| Error::field("network.vpc_id", format!("no VPC {vpc_id} in this organization")))?;
    if vpc.cloud != cloud || vpc.region != region {
        return Err(Error::field(
            "network.vpc_id",
            format!(
                "{} is in {}/{}; a store is placed in a VPC of its own cloud and region ({cloud}/{region})",
                describe(&vpc),
                vpc.cloud,
                vpc.region
            ),
        ));
    }
    if vpc.status != VpcStatus::Available {
        return Err(Error::conflict(
            "vpc_not_available",
            format!("{} is {}; place stores in it once it is available", describe(&vpc), vpc.status),
        ));
    }
    Ok(vpc)
}

/// Gives each node an address of the VPC's block that no node of the VPC holds, under the VPC's
/// lock (two stores growing at once never pick the same).
pub async fn place_nodes(
    tx: &mut Transaction<'_, Postgres>,
    ctx: &Ctx,
    vpc_id: Uuid,
    nodes: &[Uuid],
) -> Result<()> {
    let vpc = &db::vpcs::get_for_update(tx, ctx, vpc_id).await?.ok_or(Error::NotFound("VPC"))?;
    let block = ipv4(vpc.cidr).ok_or_else(|| anyhow::anyhow!("VPC {} has no IPv4 block", vpc.id))?;
    let used = db::vpcs::used_addresses(&mut **tx, ctx.org_id, vpc.id).await?;
    let mut free = node_addresses(block).filter(|a| !used.contains(&a.to_string()));
    for node in nodes {
        let address = free.next().ok_or_else(|| {
            Error::conflict("vpc_full", format!("{} has no address left for another node", describe(vpc)))
        })?;
        db::vpcs::place_node(&mut **tx, ctx.org_id, *node, vpc.id, &address.to_string()).await?;
    }
    Ok(())
}
