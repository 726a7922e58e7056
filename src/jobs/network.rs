//! The jobs of VPCs and peerings: making and removing networks and the links between them, and
//! bringing the firewall of the private stores they touch up to date. Every step is idempotent.

use std::net::Ipv4Addr;

use anyhow::{Context, bail};
use ipnet::{IpNet, Ipv4Net};
use uuid::Uuid;

use super::{JobEnv, Step};
use crate::db;
use crate::db::jobs::JobRow;
use crate::db::vpcs::{PeeringRow, VpcRow};
use crate::domain::{OrgId, PeeringId, PeeringStatus, VpcId, VpcStatus};
use crate::provision::{NetworkSpec, NodeNetwork, PeeringSpec};

fn ipv4(net: IpNet) -> anyhow::Result<Ipv4Net> {
    match net {
        IpNet::V4(n) => Ok(n),
        IpNet::V6(n) => bail!("{n} is not an IPv4 block"),
    }
}

pub fn network_spec(vpc: &VpcRow) -> anyhow::Result<NetworkSpec> {
    Ok(NetworkSpec { vpc_id: vpc.id, cidr: ipv4(vpc.cidr)? })
}

/// Where a node of a private store lives.
pub async fn node_network(
    db: &sqlx::PgPool,
    org_id: OrgId,
    vpc_id: VpcId,
    host: &str,
) -> anyhow::Result<NodeNetwork> {
    let vpc = db::vpcs::get_by_id(db, org_id, vpc_id).await?.context("the store's VPC is gone")?;
    let address: Ipv4Addr = host.parse().with_context(|| format!("node address {host}"))?;
    Ok(NodeNetwork { network: network_spec(&vpc)?, address })
}

/// Both sides of a peering, as the driver joins them.
pub async fn peering_spec(db: &sqlx::PgPool, p: &PeeringRow) -> anyhow::Result<PeeringSpec> {
    let a = db::vpcs::get_by_id(db, p.org_id, p.vpc_id).await?.context("the requesting VPC is gone")?;
    let b = db::vpcs::get_by_id(db, p.peer_org_id, p.peer_vpc_id).await?.context("the peer VPC is gone")?;
    Ok(PeeringSpec { peering_id: p.id, a: network_spec(&a)?, b: network_spec(&b)? })
}

/// [`Step::CreateNetwork`](super::Step::CreateNetwork).
pub async fn create_network(env: &JobEnv, job: &JobRow, vpc_id: VpcId) -> anyhow::Result<()> {
    let vpc = db::vpcs::get_by_id(&env.db, job.org_id, vpc_id).await?.context("the VPC is gone")?;
    env.plane.driver.create_network(&network_spec(&vpc)?).await?;
    db::vpcs::set_status(&env.db, job.org_id, vpc_id, VpcStatus::Available, env.clock.now()).await?;
    Ok(())
}

/// [`Step::RemoveNetwork`](super::Step::RemoveNetwork).
pub async fn remove_network(env: &JobEnv, job: &JobRow, vpc_id: VpcId) -> anyhow::Result<()> {
    env.plane.driver.remove_network(vpc_id).await?;
    db::vpcs::set_status(&env.db, job.org_id, vpc_id, VpcStatus::Deleted, env.clock.now()).await?;
    Ok(())
}

/// [`Step::ConnectPeering`](super::Step::ConnectPeering).
pub async fn connect_peering(env: &JobEnv, job: &JobRow, id: PeeringId) -> anyhow::Result<()> {
    let p = peering(env, job, id).await?;
    env.plane.driver.create_peering(&peering_spec(&env.db, &p).await?).await?;
    // Active before the firewalls are brought up to date (the next step), so that a node
    // made meanwhile either reads it or is there for that step.
    db::vpcs::set_peering_status(&env.db, job.org_id, id, PeeringStatus::Active, env.clock.now()).await?;
    Ok(())
}

/// [`Step::ApplyPeeringAccess`](super::Step::ApplyPeeringAccess).
pub async fn apply_peering_access(env: &JobEnv, job: &JobRow, id: PeeringId) -> anyhow::Result<()> {
    let now = env.clock.now();
    let p = peering(env, job, id).await?;
    let touched = db::vpcs::nodes_in(&env.db, &[p.vpc_id, p.peer_vpc_id]).await?;
    for (org_id, store_id, node_id) in touched {
        if let Some(spec) = env.plane.node_spec(&env.db, org_id, store_id, node_id, now).await? {
            env.plane.driver.apply_access(&spec).await?;
        }
    }
    Ok(())
}

/// [`Step::DisconnectPeering`](super::Step::DisconnectPeering).
pub async fn disconnect_peering(env: &JobEnv, job: &JobRow, id: PeeringId) -> anyhow::Result<()> {
    let p = peering(env, job, id).await?;
    env.plane.driver.remove_peering(&peering_spec(&env.db, &p).await?).await?;
    db::vpcs::set_peering_status(&env.db, job.org_id, id, PeeringStatus::Deleted, env.clock.now()).await?;
    Ok(())
}

async fn peering(env: &JobEnv, job: &JobRow, id: PeeringId) -> anyhow::Result<PeeringRow> {
    db::vpcs::peering_by_id(&env.db, job.org_id, id).await?.context("the peering is gone")
}

/// What a network job acts on: the id its first step names.
fn target(job: &JobRow) -> Option<Uuid> {
    job.steps.first().and_then(|s| Step::parse(s).ok()).and_then(|s| s.id())
}

/// A VPC's job that failed for good leaves the VPC `failed`: it can be deleted, which removes
/// whatever was made.
pub async fn fail_vpc(env: &JobEnv, job: &JobRow) -> anyhow::Result<()> {
    let Some(id) = target(job) else { return Ok(()) };
    db::vpcs::set_status(&env.db, job.org_id, id.into(), VpcStatus::Failed, env.clock.now()).await?;
    Ok(())
}

/// A peering's job that failed for good leaves the peering `failed`, like [`fail_vpc`].
pub async fn fail_peering(env: &JobEnv, job: &JobRow) -> anyhow::Result<()> {
    let Some(id) = target(job) else { return Ok(()) };
    db::vpcs::set_peering_status(&env.db, job.org_id, id.into(), PeeringStatus::Failed, env.clock.now())
        .await?;
    Ok(())
}

/// At start: removes the networks and links no table knows (a crash, a VPC deleted while this
/// host was down), then makes again those that should exist (after a reboot, none do). Before
/// the nodes start: a private node needs its network.
pub async fn at_start(env: &JobEnv) -> anyhow::Result<()> {
    let driver = env.plane.driver.as_ref();
    let vpcs = db::vpcs::all_live(&env.db).await?;
    // Those whose link exists, or may: on its way, in force, being removed, or failed half-way.
    let linked: Vec<PeeringStatus> = PeeringStatus::ALL.iter().copied().filter(|s| s.is_linked()).collect();
    let peerings = db::vpcs::all_peerings(&env.db, &linked).await?;
    let vpc_ids: Vec<VpcId> = vpcs.iter().map(|v| v.id).collect();
    let peering_ids: Vec<PeeringId> = peerings.iter().map(|p| p.id).collect();
    for what in driver.retain_networks(&vpc_ids, &peering_ids).await? {
        tracing::warn!(%what, "removed a network no VPC or peering knows");
    }
    // Those in `creating`, `deleting` or `provisioning` belong to their job, which finishes them.
    for vpc in vpcs.iter().filter(|v| v.status == VpcStatus::Available) {
        if let Err(e) = driver.create_network(&network_spec(vpc)?).await {
            tracing::error!(vpc = %vpc.id, error = %format!("{e:#}"), "restoring a VPC network");
        }
    }
    for p in peerings.iter().filter(|p| p.status == PeeringStatus::Active) {
        let restored = async { driver.create_peering(&peering_spec(&env.db, p).await?).await };
        if let Err(e) = restored.await {
            tracing::error!(peering = %p.id, error = %format!("{e:#}"), "restoring a VPC peering");
        }
    }
    Ok(())
}
