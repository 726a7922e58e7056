//! Peerings: the state machine (which VPCs can be joined, who answers a request, what deleting
//! a peering means in each status) and the operations that walk it: asking, accepting,
//! rejecting and deleting, and what each side sees of a peering.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use sqlx::{PgExecutor, Postgres, Transaction};
use utoipa::ToSchema;

use crate::app::AppState;
use crate::audit::{Event, RequestMeta};
use crate::db;
use crate::db::jobs::JobRow;
use crate::db::vpcs::{PeeringRow, VpcRow};
use crate::domain::{Ctx, Error, OrgId, PeeringId, PeeringStatus, Result, VpcId, VpcStatus, on_constraint};
use crate::jobs::{Step, kinds};
use crate::service::jobs::{Enqueue, enqueue};
use crate::service::vpcs::{describe, ipv4};

/// A VPC a peering names that is not there: the tables disagree with themselves.
pub fn missing(id: VpcId) -> Error {
    anyhow::anyhow!("VPC {id} of a peering is missing").into()
}

/// Whether two VPCs can be joined: one cloud, one region, blocks apart. Each rule broken is a 422
/// naming both.
pub fn joinable(a: &VpcRow, b: &VpcRow) -> Result<()> {
    let rule = |message: String| Err(Error::field("peer_vpc_id", message));
    if a.cloud != b.cloud {
        return rule(format!(
            "a peering joins VPCs of one cloud: {} is on {}, {} on {}",
            describe(a),
            a.cloud,
            describe(b),
            b.cloud
        ));
    }
    if a.region != b.region {
        return rule(format!(
            "a peering joins VPCs of one region (no traffic crosses regions): {} is in {}, {} in {}",
            describe(a),
            a.region,
            describe(b),
            b.region
        ));
    }
    let overlap = match (ipv4(a.cidr), ipv4(b.cidr)) {
        (Some(x), Some(y)) => x.contains(&y) || y.contains(&x),
        _ => false,
    };
    if overlap {
        return rule(format!(
            "{} and {} overlap: overlapping blocks cannot be routed to each other",
            describe(a),
            describe(b)
        ));
    }
    Ok(())
}

fn pending_error(p: &PeeringRow) -> Error {
    Error::conflict("peering_not_pending", format!("the peering is {}, not pending acceptance", p.status))
}

pub fn available(v: &VpcRow) -> Result<()> {
    if v.status == VpcStatus::Available {
        Ok(())
    } else {
        Err(Error::conflict("vpc_not_available", format!("{} is {}", describe(v), v.status)))
    }
}

/// The side that answers a request from another organization: the peer VPC's.
pub fn answering(ctx: &Ctx, vpc_id: VpcId, p: &PeeringRow) -> Result<()> {
    if !(p.needs_acceptance() && p.peer_org_id == ctx.org_id && p.peer_vpc_id == vpc_id) {
        return Err(Error::Forbidden {
            code: "not_the_peer",
            detail:
                "only the organization of the peer VPC accepts or rejects a peering, and only one asked by \
                     another organization"
                    .into(),
        });
    }
    if p.status != PeeringStatus::PendingAcceptance {
        return Err(pending_error(p));
    }
    Ok(())
}

/// The steps that connect a peering's networks and open its access.
pub fn connect_steps(id: PeeringId) -> Vec<Step> {
    vec![Step::ConnectPeering(id), Step::ApplyPeeringAccess(id)]
}

/// The steps that close a peering's access and then take its link apart.
pub fn disconnect_steps(id: PeeringId) -> Vec<Step> {
    vec![Step::ApplyPeeringAccess(id), Step::DisconnectPeering(id)]
}

/// What deleting a peering does, by its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// Nothing was connected (asked, or refused): the peering is forgotten at once.
    Forget,
    /// A link exists, or failed part-way: a job removes it.
    Disconnect,
}

/// Deleting `p`: refused while its job runs (`peering_busy`).
pub fn deletion(p: &PeeringRow) -> Result<Deletion> {
    match p.status {
        PeeringStatus::Provisioning | PeeringStatus::Deleting => Err(Error::conflict(
            "peering_busy",
            format!("the peering is {}; wait for its job to finish", p.status),
        )),
        PeeringStatus::PendingAcceptance | PeeringStatus::Rejected => Ok(Deletion::Forget),
        PeeringStatus::Active | PeeringStatus::Failed | PeeringStatus::Deleted => Ok(Deletion::Disconnect),
    }
}

// ---- Operations ------------------------------------------------------------------------------

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePeering {
    /// The VPC to join, of the same cloud and region, with a block that does not overlap.
    #[schema(value_type = Uuid)]
    pub peer_vpc_id: VpcId,
    /// The peer VPC's organization, when it is another one (which must accept). Omitted: this one.
    #[schema(value_type = Option<Uuid>)]
    pub peer_org_id: Option<OrgId>,
}

/// A peering as one organization sees it: its own block, and the peer's once it may know it.
#[derive(Debug, Clone)]
pub struct Peering {
    pub row: PeeringRow,
    /// The block of the VPC that asked.
    pub cidr: IpNet,
    /// The peer VPC's block: shown to the asking side once the peer's organization has accepted
    /// (or at once, in one organization); always to the peer's side.
    pub peer_cidr: Option<IpNet>,
}

/// Whether `ctx`'s organization may see the peer VPC of `p`: until a cross-organization request
/// is accepted, the asking side learns nothing of it.
pub fn peer_visible(ctx: &Ctx, p: &PeeringRow) -> bool {
    !p.needs_acceptance() || p.status.is_linked() || ctx.org_id == p.peer_org_id
}

/// What `ctx`'s organization sees of `p`.
pub async fn seen(db: &sqlx::PgPool, ctx: &Ctx, p: PeeringRow) -> Result<Peering> {
    let mine = db::vpcs::get_by_id(db, p.org_id, p.vpc_id).await?.ok_or_else(|| missing(p.vpc_id))?;
    let peer = match peer_visible(ctx, &p) {
        true => db::vpcs::get_by_id(db, p.peer_org_id, p.peer_vpc_id).await?,
        false => None,
    };
    Ok(Peering { row: p, cidr: mine.cidr, peer_cidr: peer.map(|v| v.cidr) })
}

/// The context's VPC `vpc_id`, or 404.
async fn vpc_of(ex: impl PgExecutor<'_>, ctx: &Ctx, vpc_id: VpcId) -> Result<VpcRow> {
    db::vpcs::get(ex, ctx, vpc_id).await?.ok_or(Error::NotFound("VPC"))
}

/// The peering `id` of the context's VPC `vpc_id`, as the context sees it.
async fn reread(state: &AppState, ctx: &Ctx, vpc_id: VpcId, id: PeeringId) -> Result<Peering> {
    let row = db::vpcs::peering(&state.db, ctx, vpc_id, id).await?.ok_or(Error::NotFound("peering"))?;
    seen(&state.db, ctx, row).await
}

/// The peerings of a VPC, on either side: those it asked for and those asked of it.
pub async fn list(state: &AppState, ctx: &Ctx, vpc_id: VpcId) -> Result<Vec<Peering>> {
    vpc_of(&state.db, ctx, vpc_id).await?;
    let mut items = vec![];
    for p in db::vpcs::peerings_of(&state.db, ctx, vpc_id).await? {
        items.push(seen(&state.db, ctx, p).await?);
    }
    Ok(items)
}

/// One peering of the VPC, seen from either side.
pub async fn get(state: &AppState, ctx: &Ctx, vpc_id: VpcId, id: PeeringId) -> Result<Peering> {
    vpc_of(&state.db, ctx, vpc_id).await?;
    reread(state, ctx, vpc_id, id).await
}

/// Asks to join the context's VPC `vpc_id` to another: within the organization, the peering is
/// `provisioning` and the job that connects the networks is returned; with another
/// organization's VPC, it is `pending_acceptance` (no job), whether or not such a VPC exists.
pub async fn create(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    vpc_id: VpcId,
    cmd: &CreatePeering,
) -> Result<(Peering, Option<JobRow>)> {
    let org_id = ctx.org_id;
    let peer_org = cmd.peer_org_id.unwrap_or(org_id);
    let peer_vpc = cmd.peer_vpc_id;
    if peer_vpc == vpc_id {
        return Err(Error::field("peer_vpc_id", "a VPC cannot be peered with itself"));
    }
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let cross_org = peer_org != org_id;
    if cross_org {
        // Only this side is ours to check: nothing is read of the other until it accepts.
        let mine = db::vpcs::get_for_update(&mut tx, ctx, vpc_id).await?.ok_or(Error::NotFound("VPC"))?;
        available(&mine)?;
    } else {
        let pair = db::vpcs::lock_pair(&mut tx, (org_id, vpc_id), (org_id, peer_vpc)).await?;
        let mine = pair.iter().find(|v| v.id == vpc_id).ok_or(Error::NotFound("VPC"))?;
        let peer = pair.iter().find(|v| v.id == peer_vpc).ok_or_else(|| {
            Error::field(
                "peer_vpc_id",
                format!(
                    "no VPC {peer_vpc} in this organization; to peer with another organization's VPC, give its peer_org_id"
                ),
            )
        })?;
        available(mine)?;
        available(peer)?;
        joinable(mine, peer)?;
    }
    let id = PeeringId::new();
    let status = if cross_org { PeeringStatus::PendingAcceptance } else { PeeringStatus::Provisioning };
    let new = db::vpcs::NewPeering {
        id,
        vpc_id,
        peer_org_id: peer_org,
        peer_vpc_id: peer_vpc,
        status,
        created_by: ctx.user_id,
        now,
    };
    db::vpcs::insert_peering(&mut *tx, ctx, new).await.map_err(|e| {
        on_constraint(e, |c| {
            (c == "vpc_peerings_pair_key").then(|| {
                Error::conflict("peering_exists", "these two VPCs are peered already, or asked to be")
            })
        })
    })?;
    let job = match cross_org {
        true => None,
        false => Some(
            enqueue(&mut tx, state, ctx, Enqueue::network_of::<kinds::CreatePeering>(connect_steps(id)))
                .await?,
        ),
    };
    Event::new("vpc.peering_requested", meta)
        .in_ctx(ctx, actor)
        .target(format!("vpc:{vpc_id}"))
        .detail("peering", id)
        .detail("peer_vpc_id", peer_vpc)
        .detail("peer_org_id", peer_org)
        .detail("job", job.as_ref().map(|j| j.id))
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    Ok((reread(state, ctx, vpc_id, id).await?, job))
}

/// The start of every change to a peering: the peering of one of the context's VPCs (seen from
/// that VPC) locked in a transaction.
async fn locked(
    state: &AppState,
    ctx: &Ctx,
    vpc_id: VpcId,
    id: PeeringId,
) -> Result<(Transaction<'static, Postgres>, PeeringRow)> {
    let mut tx = state.db.begin().await?;
    vpc_of(&mut *tx, ctx, vpc_id).await?;
    let p =
        db::vpcs::peering_for_update(&mut tx, ctx, vpc_id, id).await?.ok_or(Error::NotFound("peering"))?;
    Ok((tx, p))
}

/// Accepts a peering another organization asked of the context's VPC `vpc_id`: it becomes
/// `provisioning`, and the job that connects the networks is returned.
pub async fn accept(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    vpc_id: VpcId,
    id: PeeringId,
) -> Result<(Peering, JobRow)> {
    let (mut tx, p) = locked(state, ctx, vpc_id, id).await?;
    answering(ctx, vpc_id, &p)?;
    let pair = db::vpcs::lock_pair(&mut tx, (p.org_id, p.vpc_id), (ctx.org_id, vpc_id)).await?;
    let asking = pair.iter().find(|v| v.id == p.vpc_id).ok_or_else(|| missing(p.vpc_id))?;
    let mine = pair.iter().find(|v| v.id == vpc_id).ok_or(Error::NotFound("VPC"))?;
    available(asking)?;
    available(mine)?;
    joinable(asking, mine)?;
    let now = state.clock.now();
    db::vpcs::set_peering_status(&mut *tx, ctx.org_id, id, PeeringStatus::Provisioning, now).await?;
    let job =
        enqueue(&mut tx, state, ctx, Enqueue::network_of::<kinds::CreatePeering>(connect_steps(id))).await?;
    Event::new("vpc.peering_accepted", meta)
        .in_ctx(ctx, actor)
        .target(format!("vpc:{vpc_id}"))
        .detail("peering", id)
        .detail("requested_by_org", p.org_id)
        .detail("job", job.id)
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    Ok((reread(state, ctx, vpc_id, id).await?, job))
}

/// Rejects a peering another organization asked of the context's VPC `vpc_id`: nothing is
/// connected, and the asking side sees it `rejected`.
pub async fn reject(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    vpc_id: VpcId,
    id: PeeringId,
) -> Result<Peering> {
    let (mut tx, p) = locked(state, ctx, vpc_id, id).await?;
    answering(ctx, vpc_id, &p)?;
    let now = state.clock.now();
    db::vpcs::set_peering_status(&mut *tx, ctx.org_id, id, PeeringStatus::Rejected, now).await?;
    Event::new("vpc.peering_rejected", meta)
        .in_ctx(ctx, actor)
        .target(format!("vpc:{vpc_id}"))
        .detail("peering", id)
        .detail("requested_by_org", p.org_id)
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    reread(state, ctx, vpc_id, id).await
}

/// Deletes a peering, from either side: one never connected is forgotten at once (no job); one
/// connected, or failed part-way, is taken apart by the job returned.
pub async fn delete(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    vpc_id: VpcId,
    id: PeeringId,
) -> Result<Option<JobRow>> {
    let (mut tx, p) = locked(state, ctx, vpc_id, id).await?;
    let now = state.clock.now();
    let job = match deletion(&p)? {
        Deletion::Forget => {
            db::vpcs::set_peering_status(&mut *tx, ctx.org_id, id, PeeringStatus::Deleted, now).await?;
            None
        }
        Deletion::Disconnect => {
            db::vpcs::set_peering_status(&mut *tx, ctx.org_id, id, PeeringStatus::Deleting, now).await?;
            let job = Enqueue::network_of::<kinds::DeletePeering>(disconnect_steps(id));
            Some(enqueue(&mut tx, state, ctx, job).await?)
        }
    };
    Event::new("vpc.peering_deleted", meta)
        .in_ctx(ctx, actor)
        .target(format!("vpc:{vpc_id}"))
        .detail("peering", id)
        .detail("job", job.as_ref().map(|j| j.id))
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    Ok(job)
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;
    use uuid::Uuid;

    use super::*;
    use crate::domain::{AuthMethod, Role};

    fn vpc(cloud: &str, region: &str, cidr: &str) -> VpcRow {
        VpcRow {
            id: VpcId::new(),
            org_id: OrgId(Uuid::nil()),
            name: "v".into(),
            cloud: cloud.into(),
            region: region.into(),
            cidr: cidr.parse().unwrap(),
            status: VpcStatus::Available,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn peering(status: PeeringStatus, asked_by: OrgId, peer_org: OrgId, peer_vpc: VpcId) -> PeeringRow {
        PeeringRow {
            id: PeeringId::new(),
            org_id: asked_by,
            vpc_id: VpcId::new(),
            peer_org_id: peer_org,
            peer_vpc_id: peer_vpc,
            status,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn vpcs_join_within_one_cloud_and_region_and_apart() {
        let a = vpc("local", "local-1", "10.1.0.0/24");
        assert!(joinable(&a, &vpc("local", "local-1", "10.2.0.0/24")).is_ok());
        for (b, word) in [
            (vpc("other", "local-1", "10.2.0.0/24"), "cloud"),
            (vpc("local", "local-2", "10.2.0.0/24"), "region"),
            (vpc("local", "local-1", "10.1.0.128/25"), "overlap"),
        ] {
            let Err(Error::Invalid { errors, .. }) = joinable(&a, &b) else { panic!("{word}: joined") };
            assert_eq!(errors[0].field, "peer_vpc_id");
            assert!(errors[0].message.contains(word), "{}", errors[0].message);
        }
    }

    #[test]
    fn only_the_peer_answers_and_deleting_follows_the_status() {
        let (us, them, their_vpc) = (OrgId::new(), OrgId::new(), VpcId::new());
        let asked = peering(PeeringStatus::PendingAcceptance, us, them, their_vpc);
        let ctx = |org_id| Ctx {
            user_id: crate::domain::UserId(Uuid::nil()),
            org_id,
            role: Role::Owner,
            method: AuthMethod::Session,
        };
        assert!(answering(&ctx(them), their_vpc, &asked).is_ok());
        assert!(matches!(answering(&ctx(us), their_vpc, &asked), Err(Error::Forbidden { .. })));
        let active = peering(PeeringStatus::Active, us, them, their_vpc);
        assert!(matches!(answering(&ctx(them), their_vpc, &active), Err(Error::Conflict { .. })));

        let deletion_of = |s| deletion(&peering(s, us, them, their_vpc));
        assert_eq!(deletion_of(PeeringStatus::PendingAcceptance).unwrap(), Deletion::Forget);
        assert_eq!(deletion_of(PeeringStatus::Rejected).unwrap(), Deletion::Forget);
        assert_eq!(deletion_of(PeeringStatus::Active).unwrap(), Deletion::Disconnect);
        assert_eq!(deletion_of(PeeringStatus::Failed).unwrap(), Deletion::Disconnect);
        assert!(deletion_of(PeeringStatus::Provisioning).is_err());
        assert!(deletion_of(PeeringStatus::Deleting).is_err());
    }

    #[test]
    fn the_asking_side_sees_the_peer_only_once_it_is_accepted() {
        let (us, them, their_vpc) = (OrgId::new(), OrgId::new(), VpcId::new());
        let ctx = |org_id| Ctx {
            user_id: crate::domain::UserId(Uuid::nil()),
            org_id,
            role: Role::Owner,
            method: AuthMethod::Session,
        };
        let asked = peering(PeeringStatus::PendingAcceptance, us, them, their_vpc);
        assert!(!peer_visible(&ctx(us), &asked));
        assert!(peer_visible(&ctx(them), &asked));
        assert!(!peer_visible(&ctx(us), &peering(PeeringStatus::Rejected, us, them, their_vpc)));
        assert!(peer_visible(&ctx(us), &peering(PeeringStatus::Active, us, them, their_vpc)));
        // Within one organization, at once.
        assert!(peer_visible(&ctx(us), &peering(PeeringStatus::Provisioning, us, us, their_vpc)));
    }

    #[test]
    fn access_opens_after_the_link_and_closes_before_it_goes() {
        let id = PeeringId::new();
        assert_eq!(connect_steps(id), vec![Step::ConnectPeering(id), Step::ApplyPeeringAccess(id)]);
        assert_eq!(disconnect_steps(id), vec![Step::ApplyPeeringAccess(id), Step::DisconnectPeering(id)]);
    }
}
