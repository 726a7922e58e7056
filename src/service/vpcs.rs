//! VPCs: reading, making and deleting them, placing a new store in one, and giving its nodes
//! their addresses.

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, Transaction};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::audit::{Event, RequestMeta};
use crate::db;
use crate::db::jobs::JobRow;
use crate::db::vpcs::{PeeringRow, VpcRow};
use crate::domain::names::store_name;
use crate::domain::{
    Ctx, Error, NodeId, PeeringStatus, Result, VpcBlock, VpcId, VpcStatus, node_addresses, on_constraint,
};
use crate::jobs::{Step, kinds};
use crate::quota::{self, Quota};
use crate::service::jobs::{Enqueue, enqueue};

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
    vpc_id: VpcId,
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
    vpc_id: VpcId,
    nodes: &[NodeId],
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

/// The organization's VPCs.
pub async fn list(state: &AppState, ctx: &Ctx) -> Result<Vec<VpcRow>> {
    Ok(db::vpcs::list(&state.db, ctx).await?)
}

/// One VPC of the organization.
pub async fn get(state: &AppState, ctx: &Ctx, vpc_id: VpcId) -> Result<VpcRow> {
    db::vpcs::get(&state.db, ctx, vpc_id).await?.ok_or(Error::NotFound("VPC"))
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateVpc {
    /// As a store's name.
    #[schema(example = "app-network", pattern = r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub name: String,
    #[schema(example = "local")]
    pub cloud: String,
    #[schema(example = "local-1")]
    pub region: String,
    /// A private (RFC 1918) IPv4 network, /16 to /28, host bits clear, overlapping no other VPC
    /// of the organization in the same cloud and region. The first host address is the
    /// network's own; nodes of private stores get the ones after it.
    #[schema(example = "10.61.0.0/24")]
    pub cidr_ipv4_block: String,
}

/// Makes a VPC: checked, within the organization's quota of VPCs, apart from its others in
/// the cloud and region; returns it (`creating`) and the job that makes its network.
pub async fn create(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    cmd: &CreateVpc,
) -> Result<(VpcRow, JobRow)> {
    let name = store_name(&cmd.name)?;
    state.plane.catalog.validate_location(&cmd.cloud, &cmd.region)?;
    state.plane.driver.networks_available().map_err(|why| Error::field("cloud", why))?;
    let block = VpcBlock::parse(&cmd.cidr_ipv4_block).map_err(|m| Error::field("cidr_ipv4_block", m))?;
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    db::vpcs::lock_org(&mut tx, ctx).await?;
    let others = db::vpcs::list(&mut *tx, ctx).await?;
    let here = others.iter().filter(|v| v.cloud == cmd.cloud && v.region == cmd.region);
    if let Some(other) = here.into_iter().find(|v| ipv4(v.cidr).is_some_and(|n| block.overlaps(&n))) {
        return Err(Error::field(
            "cidr_ipv4_block",
            format!("{block} overlaps {} in {}/{}", describe(other), other.cloud, other.region),
        ));
    }
    quota::reserve(&mut tx, &state.plane.quotas, ctx.org_id, &[(Quota::Vpcs, 1)]).await?;
    let id = VpcId::new();
    let new = db::vpcs::NewVpc {
        id,
        name: &name,
        cloud: &cmd.cloud,
        region: &cmd.region,
        cidr: IpNet::V4(block.net()),
        now,
    };
    db::vpcs::insert(&mut *tx, ctx, new).await.map_err(|e| {
        on_constraint(e, |c| {
            (c == "vpcs_org_name_key")
                .then(|| Error::conflict("name_taken", format!("a VPC named {name} exists")))
        })
    })?;
    let job =
        enqueue(&mut tx, state, ctx, Enqueue::network_of::<kinds::CreateVpc>(vec![Step::CreateNetwork(id)]))
            .await?;
    Event::new("vpc.created", meta)
        .in_ctx(ctx, actor)
        .target(format!("vpc:{id}"))
        .detail("name", &name)
        .detail("cidr_ipv4_block", block.to_string())
        .detail("job", job.id)
        .record_in(&mut tx, now)
        .await?;
    let vpc = db::vpcs::get(&mut *tx, ctx, id).await?.ok_or(Error::NotFound("VPC"))?;
    tx.commit().await?;
    Ok((vpc, job))
}

/// Starts deleting a VPC: refused while its job runs or while it holds stores or peerings (each
/// named); returns the job that removes its network.
pub async fn delete(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    vpc_id: VpcId,
) -> Result<JobRow> {
    let mut tx = state.db.begin().await?;
    let vpc = db::vpcs::get_for_update(&mut tx, ctx, vpc_id).await?.ok_or(Error::NotFound("VPC"))?;
    if matches!(vpc.status, VpcStatus::Creating | VpcStatus::Deleting) {
        return Err(Error::conflict(
            "vpc_busy",
            format!("the VPC is {}; wait for its job to finish", vpc.status),
        ));
    }
    let mut holds: Vec<String> = db::vpcs::stores_in(&mut *tx, ctx, vpc_id)
        .await?
        .into_iter()
        .map(|(id, name)| format!("store {name} ({id})"))
        .collect();
    let peerings = db::vpcs::peerings_of(&mut *tx, ctx, vpc_id).await?;
    holds.extend(
        peerings
            .iter()
            .filter(|p| p.status != PeeringStatus::Rejected)
            .map(|p| format!("peering {} ({}) with VPC {}", p.id, p.status, other_side(p, vpc_id))),
    );
    if !holds.is_empty() {
        return Err(Error::conflict(
            "vpc_in_use",
            format!("the VPC holds {}; delete them first", holds.join(", ")),
        ));
    }
    let now = state.clock.now();
    db::vpcs::set_status(&mut *tx, ctx.org_id, vpc_id, VpcStatus::Deleting, now).await?;
    let job = enqueue(
        &mut tx,
        state,
        ctx,
        Enqueue::network_of::<kinds::DeleteVpc>(vec![Step::RemoveNetwork(vpc_id)]),
    )
    .await?;
    Event::new("vpc.deleted", meta)
        .in_ctx(ctx, actor)
        .target(format!("vpc:{vpc_id}"))
        .detail("job", job.id)
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    Ok(job)
}

fn other_side(p: &PeeringRow, vpc_id: VpcId) -> VpcId {
    if p.vpc_id == vpc_id { p.peer_vpc_id } else { p.vpc_id }
}
