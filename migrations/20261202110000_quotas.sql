-- Per-organization quotas: an organization's own limits, each overriding the operator's default
-- (BERTH_QUOTA_*) where it is set. No row, or a null, means the default.

create table org_quotas (
    org_id       uuid not null,
    stores       bigint,
    nodes        bigint,
    vpcs         bigint,
    -- Bytes of succeeded backups the organization may keep before a new backup is refused.
    backup_bytes bigint,
    updated_at   timestamptz not null default now(),
    constraint org_quotas_pkey primary key (org_id),
    constraint org_quotas_org_fkey foreign key (org_id) references organizations (id) on delete cascade,
    constraint org_quotas_stores_check check (stores >= 0),
    constraint org_quotas_nodes_check check (nodes >= 0),
    constraint org_quotas_vpcs_check check (vpcs >= 0),
    constraint org_quotas_backup_bytes_check check (backup_bytes >= 0)
);
