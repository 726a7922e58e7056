-- Firewall rules: the source networks allowed to connect to a store's nodes. Rendered into each
-- node's pg_hba.conf; anything not allowed is refused.

create table firewall_rules (
    id          uuid primary key,
    org_id      uuid not null,
    store_id    uuid not null,
    -- Canonical CIDR (host bits clear): 10.0.0.0/8, 2001:db8::/32, 127.0.0.2/32.
    source      cidr not null,
    description text not null default '',
    expires_at  timestamptz,
    created_at  timestamptz not null,
    constraint firewall_rules_store_fkey foreign key (store_id) references stores (id) on delete cascade,
    constraint firewall_rules_source_key unique (store_id, source)
);
create index firewall_rules_expires_idx on firewall_rules (expires_at) where expires_at is not null;
