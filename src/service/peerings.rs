//! The peering state machine: which VPCs can be joined, who answers a request, and what
//! deleting a peering means in each status.

use uuid::Uuid;

use crate::db::vpcs::{PeeringRow, VpcRow};
use crate::domain::{Ctx, Error, PeeringStatus, Result, VpcStatus};
use crate::jobs::step;
use crate::service::vpcs::{describe, ipv4};

/// A VPC a peering names that is not there: the tables disagree with themselves.
pub fn missing(id: Uuid) -> Error {
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
pub fn answering(ctx: &Ctx, vpc_id: Uuid, p: &PeeringRow) -> Result<()> {
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
pub fn connect_steps(id: Uuid) -> Vec<String> {
    vec![step::on(step::CONNECT_PEERING, id), step::on(step::APPLY_PEERING_ACCESS, id)]
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

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;
    use crate::domain::{AuthMethod, Role};

    fn vpc(cloud: &str, region: &str, cidr: &str) -> VpcRow {
        VpcRow {
            id: Uuid::now_v7(),
            org_id: Uuid::nil(),
            name: "v".into(),
            cloud: cloud.into(),
            region: region.into(),
            cidr: cidr.parse().unwrap(),
            status: VpcStatus::Available,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    fn peering(status: PeeringStatus, asked_by: Uuid, peer_org: Uuid, peer_vpc: Uuid) -> PeeringRow {
        PeeringRow {
            id: Uuid::now_v7(),
            org_id: asked_by,
            vpc_id: Uuid::now_v7(),
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
        let (us, them, their_vpc) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let asked = peering(PeeringStatus::PendingAcceptance, us, them, their_vpc);
        let ctx =
            |org_id| Ctx { user_id: Uuid::nil(), org_id, role: Role::Owner, method: AuthMethod::Session };
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
}
