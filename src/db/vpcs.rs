use ipnet::IpNet;
use sqlx::{PgConnection, PgExecutor, Postgres, Transaction};
use time::OffsetDateTime;

use crate::domain::{Ctx, NodeId, OrgId, PeeringId, PeeringStatus, StoreId, UserId, VpcId, VpcStatus};

#[derive(Debug, Clone)]
pub struct VpcRow {
    pub id: VpcId,
    pub org_id: OrgId,
    pub name: String,
    pub cloud: String,
    pub region: String,
    pub cidr: IpNet,
    pub status: VpcStatus,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

pub struct NewVpc<'a> {
    pub id: VpcId,
    pub name: &'a str,
    pub cloud: &'a str,
    pub region: &'a str,
    pub cidr: IpNet,
    pub now: OffsetDateTime,
}

/// Serializes the changes that must see every VPC of the organization (overlap checks) for the
/// rest of the transaction.
pub async fn lock_org(tx: &mut PgConnection, ctx: &Ctx) -> sqlx::Result<()> {
    sqlx::query!(
        "select pg_advisory_xact_lock(hashtextextended('berth.vpcs:' || $1::uuid, 0))",
        ctx.org_id as OrgId
    )
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn insert(ex: impl PgExecutor<'_>, ctx: &Ctx, v: NewVpc<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into vpcs (id, org_id, name, cloud, region, cidr, status, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, 'creating', $7, $7)",
        v.id as VpcId,
        ctx.org_id as OrgId,
        v.name,
        v.cloud,
        v.region,
        v.cidr as IpNet,
        v.now
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// A VPC of the context's organization that is not deleted.
pub async fn get(ex: impl PgExecutor<'_>, ctx: &Ctx, id: VpcId) -> sqlx::Result<Option<VpcRow>> {
    sqlx::query_as!(
        VpcRow,
        r#"select id, org_id, name, cloud, region, cidr as "cidr: IpNet", status as "status: VpcStatus", created_at, updated_at
           from vpcs where org_id = $1 and id = $2 and status <> 'deleted'"#,
        ctx.org_id as OrgId,
        id as VpcId
    )
    .fetch_optional(ex)
    .await
}

/// The same, locked for the rest of the transaction.
pub async fn get_for_update(
    tx: &mut Transaction<'_, Postgres>,
    ctx: &Ctx,
    id: VpcId,
) -> sqlx::Result<Option<VpcRow>> {
    sqlx::query_as!(
        VpcRow,
        r#"select id, org_id, name, cloud, region, cidr as "cidr: IpNet", status as "status: VpcStatus", created_at, updated_at
           from vpcs where org_id = $1 and id = $2 and status <> 'deleted' for update"#,
        ctx.org_id as OrgId,
        id as VpcId
    )
    .fetch_optional(&mut **tx)
    .await
}

/// For the jobs, which act for an organization they read from their rows; deleted ones too.
pub async fn get_by_id(ex: impl PgExecutor<'_>, org_id: OrgId, id: VpcId) -> sqlx::Result<Option<VpcRow>> {
    sqlx::query_as!(
        VpcRow,
        r#"select id, org_id, name, cloud, region, cidr as "cidr: IpNet", status as "status: VpcStatus", created_at, updated_at
           from vpcs where org_id = $1 and id = $2"#,
        org_id as OrgId,
        id as VpcId
    )
    .fetch_optional(ex)
    .await
}

/// The organization's VPCs that are not deleted, oldest first.
pub async fn list(ex: impl PgExecutor<'_>, ctx: &Ctx) -> sqlx::Result<Vec<VpcRow>> {
    sqlx::query_as!(
        VpcRow,
        r#"select id, org_id, name, cloud, region, cidr as "cidr: IpNet", status as "status: VpcStatus", created_at, updated_at
           from vpcs where org_id = $1 and status <> 'deleted' order by created_at, id"#,
        ctx.org_id as OrgId
    )
    .fetch_all(ex)
    .await
}

/// Every VPC that is not deleted, of every organization: what should exist on the host.
pub async fn all_live(ex: impl PgExecutor<'_>) -> sqlx::Result<Vec<VpcRow>> {
    sqlx::query_as!(
        VpcRow,
        r#"select id, org_id, name, cloud, region, cidr as "cidr: IpNet", status as "status: VpcStatus", created_at, updated_at
           from vpcs where status <> 'deleted' order by created_at, id"#
    )
    .fetch_all(ex)
    .await
}

pub async fn set_status(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    id: VpcId,
    status: VpcStatus,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update vpcs set status = $3, updated_at = $4,
                deleted_at = case when $3 = 'deleted' then $4 else deleted_at end
         where org_id = $1 and id = $2",
        org_id as OrgId,
        id as VpcId,
        status.as_str(),
        now
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// `(id, name)` of the stores placed in the VPC that are not deleted.
pub async fn stores_in(
    ex: impl PgExecutor<'_>,
    ctx: &Ctx,
    vpc_id: VpcId,
) -> sqlx::Result<Vec<(StoreId, String)>> {
    let rows = sqlx::query!(
        "select id, name from stores where org_id = $1 and vpc_id = $2 and status <> 'deleted' order by name",
        ctx.org_id as OrgId,
        vpc_id as VpcId
    )
    .fetch_all(ex)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id.into(), r.name)).collect())
}

/// Places a store in a VPC: at creation, in the same transaction.
pub async fn place_store(
    ex: impl PgExecutor<'_>,
    ctx: &Ctx,
    store_id: StoreId,
    vpc_id: VpcId,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update stores set vpc_id = $3 where org_id = $1 and id = $2",
        ctx.org_id as OrgId,
        store_id as StoreId,
        vpc_id as VpcId
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// The addresses the VPC's nodes hold.
pub async fn used_addresses(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    vpc_id: VpcId,
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "select host from store_nodes where org_id = $1 and vpc_id = $2",
        org_id as OrgId,
        vpc_id as VpcId
    )
    .fetch_all(ex)
    .await
}

/// Gives a node its address in the VPC.
pub async fn place_node(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    node_id: NodeId,
    vpc_id: VpcId,
    host: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update store_nodes set vpc_id = $3, host = $4 where org_id = $1 and id = $2",
        org_id as OrgId,
        node_id as NodeId,
        vpc_id as VpcId,
        host
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// The networks a private store admits when it has no firewall rules: its VPC's block and the
/// block of every VPC joined to it by an active peering (of whichever organization).
pub async fn default_sources(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    vpc_id: VpcId,
) -> sqlx::Result<Vec<IpNet>> {
    sqlx::query_scalar!(
        r#"select v.cidr as "cidr!: IpNet" from vpcs v where v.org_id = $1 and v.id = $2
           union
           select o.cidr from vpc_peerings p
             join vpcs o on (o.id, o.org_id) = (case when p.vpc_id = $2 then (p.peer_vpc_id, p.peer_org_id)
                                                     else (p.vpc_id, p.org_id) end)
           where p.status = 'active'
             and ((p.org_id = $1 and p.vpc_id = $2) or (p.peer_org_id = $1 and p.peer_vpc_id = $2))
           order by 1"#,
        org_id as OrgId,
        vpc_id as VpcId
    )
    .fetch_all(ex)
    .await
}

/// `(org_id, store_id, node_id)` of every node of the private stores in these VPCs.
pub async fn nodes_in(
    ex: impl PgExecutor<'_>,
    vpc_ids: &[VpcId],
) -> sqlx::Result<Vec<(OrgId, StoreId, NodeId)>> {
    let rows = sqlx::query!(
        "select n.org_id, n.store_id, n.id from store_nodes n join stores s on s.id = n.store_id
         where s.vpc_id = any($1) and s.status <> 'deleted' order by n.store_id, n.id",
        vpc_ids as &[VpcId]
    )
    .fetch_all(ex)
    .await?;
    Ok(rows.into_iter().map(|r| (r.org_id.into(), r.store_id.into(), r.id.into())).collect())
}

#[derive(Debug, Clone)]
pub struct PeeringRow {
    pub id: PeeringId,
    /// The side that asked.
    pub org_id: OrgId,
    pub vpc_id: VpcId,
    /// The side asked, as the requester named it.
    pub peer_org_id: OrgId,
    pub peer_vpc_id: VpcId,
    pub status: PeeringStatus,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl PeeringRow {
    /// The organization that must accept: the peer, when it is another one.
    pub fn needs_acceptance(&self) -> bool {
        self.org_id != self.peer_org_id
    }
}

pub struct NewPeering {
    pub id: PeeringId,
    pub vpc_id: VpcId,
    pub peer_org_id: OrgId,
    pub peer_vpc_id: VpcId,
    pub status: PeeringStatus,
    pub created_by: UserId,
    pub now: OffsetDateTime,
}

pub async fn insert_peering(ex: impl PgExecutor<'_>, ctx: &Ctx, p: NewPeering) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into vpc_peerings (id, org_id, vpc_id, peer_org_id, peer_vpc_id, status, created_by, created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        p.id as PeeringId,
        ctx.org_id as OrgId,
        p.vpc_id as VpcId,
        p.peer_org_id as OrgId,
        p.peer_vpc_id as VpcId,
        p.status.as_str(),
        p.created_by as UserId,
        p.now
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// The peerings of one of the organization's VPCs, on either side, that are not deleted. (The
/// caller has checked that the VPC is the organization's.)
pub async fn peerings_of(ex: impl PgExecutor<'_>, ctx: &Ctx, vpc_id: VpcId) -> sqlx::Result<Vec<PeeringRow>> {
    sqlx::query_as!(
        PeeringRow,
        r#"select id, org_id, vpc_id, peer_org_id, peer_vpc_id, status as "status: PeeringStatus", created_at,
                updated_at
         from vpc_peerings
         where ((org_id = $1 and vpc_id = $2) or (peer_org_id = $1 and peer_vpc_id = $2)) and status <> 'deleted'
         order by created_at, id"#,
        ctx.org_id as OrgId,
        vpc_id as VpcId
    )
    .fetch_all(ex)
    .await
}

/// One peering of one of the organization's VPCs.
pub async fn peering(
    ex: impl PgExecutor<'_>,
    ctx: &Ctx,
    vpc_id: VpcId,
    id: PeeringId,
) -> sqlx::Result<Option<PeeringRow>> {
    sqlx::query_as!(
        PeeringRow,
        r#"select id, org_id, vpc_id, peer_org_id, peer_vpc_id, status as "status: PeeringStatus", created_at,
                updated_at
         from vpc_peerings
         where ((org_id = $1 and vpc_id = $2) or (peer_org_id = $1 and peer_vpc_id = $2))
           and id = $3 and status <> 'deleted'"#,
        ctx.org_id as OrgId,
        vpc_id as VpcId,
        id as PeeringId
    )
    .fetch_optional(ex)
    .await
}

/// One peering of one of the organization's VPCs, locked for the rest of the transaction.
pub async fn peering_for_update(
    tx: &mut Transaction<'_, Postgres>,
    ctx: &Ctx,
    vpc_id: VpcId,
    id: PeeringId,
) -> sqlx::Result<Option<PeeringRow>> {
    sqlx::query_as!(
        PeeringRow,
        r#"select id, org_id, vpc_id, peer_org_id, peer_vpc_id, status as "status: PeeringStatus", created_at,
                updated_at
         from vpc_peerings
         where ((org_id = $1 and vpc_id = $2) or (peer_org_id = $1 and peer_vpc_id = $2))
           and id = $3 and status <> 'deleted'
         for update"#,
        ctx.org_id as OrgId,
        vpc_id as VpcId,
        id as PeeringId
    )
    .fetch_optional(&mut **tx)
    .await
}

/// For the jobs: a peering one of whose sides is `org_id`.
pub async fn peering_by_id(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    id: PeeringId,
) -> sqlx::Result<Option<PeeringRow>> {
    sqlx::query_as!(
        PeeringRow,
        r#"select id, org_id, vpc_id, peer_org_id, peer_vpc_id, status as "status: PeeringStatus", created_at,
                updated_at
         from vpc_peerings where id = $2 and (org_id = $1 or peer_org_id = $1)"#,
        org_id as OrgId,
        id as PeeringId
    )
    .fetch_optional(ex)
    .await
}

/// Every peering in these states, of every organization.
pub async fn all_peerings(
    ex: impl PgExecutor<'_>,
    statuses: &[PeeringStatus],
) -> sqlx::Result<Vec<PeeringRow>> {
    let statuses: Vec<String> = statuses.iter().map(|s| s.as_str().to_owned()).collect();
    sqlx::query_as!(
        PeeringRow,
        r#"select id, org_id, vpc_id, peer_org_id, peer_vpc_id, status as "status: PeeringStatus", created_at,
                updated_at
         from vpc_peerings where status = any($1) order by created_at, id"#,
        &statuses
    )
    .fetch_all(ex)
    .await
}

/// Sets the status of a peering one of whose sides is `org_id`.
pub async fn set_peering_status(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    id: PeeringId,
    status: PeeringStatus,
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update vpc_peerings set status = $3, updated_at = $4,
                deleted_at = case when $3 = 'deleted' then $4 else deleted_at end
         where id = $2 and (org_id = $1 or peer_org_id = $1)",
        org_id as OrgId,
        id as PeeringId,
        status.as_str(),
        now
    )
    .execute(ex)
    .await?;
    Ok(())
}

/// Two VPCs, each of its own organization, that are not deleted, locked in id order (so that
/// two requests locking the same pair cannot deadlock). One not found is missing from the answer.
pub async fn lock_pair(
    tx: &mut Transaction<'_, Postgres>,
    (org_a, vpc_a): (OrgId, VpcId),
    (org_b, vpc_b): (OrgId, VpcId),
) -> sqlx::Result<Vec<VpcRow>> {
    sqlx::query_as!(
        VpcRow,
        r#"select id, org_id, name, cloud, region, cidr as "cidr: IpNet", status as "status: VpcStatus", created_at, updated_at
           from vpcs where ((org_id = $1 and id = $2) or (org_id = $3 and id = $4)) and status <> 'deleted'
           order by id for update"#,
        org_a as OrgId,
        vpc_a as VpcId,
        org_b as OrgId,
        vpc_b as VpcId
    )
    .fetch_all(&mut **tx)
    .await
}
