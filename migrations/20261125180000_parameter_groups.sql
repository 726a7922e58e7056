-- Parameter groups: named sets of database parameters, applied to stores.

create table parameter_groups (
    id          uuid primary key,
    org_id      uuid not null,
    name        text not null,
    vendor      text not null,
    version     text not null,
    description text not null default '',
    -- parameter name → the setting as PostgreSQL reports it (validated against the catalog).
    parameters  jsonb not null default '{}',
    created_at  timestamptz not null,
    updated_at  timestamptz not null,
    constraint parameter_groups_org_fkey foreign key (org_id) references organizations (id) on delete cascade,
    constraint parameter_groups_name_key unique (org_id, name)
);

alter table stores add column parameter_group_id uuid;
alter table stores add constraint stores_parameter_group_fkey
    foreign key (parameter_group_id) references parameter_groups (id) on delete restrict;
