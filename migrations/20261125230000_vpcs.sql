-- VPCs: private networks that stores are placed in, and the peerings that join two of them.

create table vpcs (
    id          uuid primary key,
    org_id      uuid not null,
    name        text not null,
    cloud       text not null,
    region      text not null,
    -- A canonical private (RFC 1918) IPv4 block, /16 to /28.
    cidr        cidr not null,
    status      text not null,
    created_at  timestamptz not null,
    updated_at  timestamptz not null,
    deleted_at  timestamptz,
    constraint vpcs_org_fkey foreign key (org_id) references organizations (id) on delete cascade,
    constraint vpcs_status_check
        check (status in ('creating', 'available', 'deleting', 'failed', 'deleted')),
    constraint vpcs_cidr_check check (family(cidr) = 4 and masklen(cidr) between 16 and 28)
);
-- A name is unique among an organization's VPCs that are not deleted.
create unique index vpcs_org_name_key on vpcs (org_id, name) where status <> 'deleted';
create index vpcs_org_idx on vpcs (org_id, created_at, id);

-- A peering joins the requester's VPC (`org_id`, `vpc_id`) to a peer VPC. The peer may belong to
-- another organization, which must accept; until it does, nothing says whether the peer exists,
-- so `peer_org_id` and `peer_vpc_id` are what the requester claimed, without foreign keys.
create table vpc_peerings (
    id          uuid primary key,
    org_id      uuid not null,
    vpc_id      uuid not null,
    peer_org_id uuid not null,
    peer_vpc_id uuid not null,
    status      text not null,
    created_by  uuid,
    created_at  timestamptz not null,
    updated_at  timestamptz not null,
    deleted_at  timestamptz,
    constraint vpc_peerings_org_fkey foreign key (org_id) references organizations (id) on delete cascade,
    constraint vpc_peerings_vpc_fkey foreign key (vpc_id) references vpcs (id) on delete cascade,
    constraint vpc_peerings_self_check check (vpc_id <> peer_vpc_id),
    constraint vpc_peerings_status_check check (status in
        ('pending_acceptance', 'provisioning', 'active', 'rejected', 'failed', 'deleting', 'deleted'))
);
-- At most one peering in force (or on its way) between two VPCs, whichever side asked.
create unique index vpc_peerings_pair_key
    on vpc_peerings (least(vpc_id, peer_vpc_id), greatest(vpc_id, peer_vpc_id))
    where status in ('pending_acceptance', 'provisioning', 'active', 'failed', 'deleting');
create index vpc_peerings_vpc_idx on vpc_peerings (org_id, vpc_id);
create index vpc_peerings_peer_idx on vpc_peerings (peer_org_id, peer_vpc_id);

-- A private store lives in a VPC; its nodes take addresses from the VPC's block, one each.
alter table stores add column vpc_id uuid,
    add constraint stores_vpc_fkey foreign key (vpc_id) references vpcs (id);
create index stores_vpc_idx on stores (vpc_id) where vpc_id is not null;

alter table store_nodes add column vpc_id uuid,
    add constraint store_nodes_vpc_fkey foreign key (vpc_id) references vpcs (id);
create unique index store_nodes_vpc_host_key on store_nodes (vpc_id, host) where vpc_id is not null;
