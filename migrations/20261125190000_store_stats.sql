-- Samples of each node's statistics, taken by the collector on an interval and kept for a while.

create table store_stats (
    id                    bigint generated always as identity primary key,
    org_id                uuid not null,
    store_id              uuid not null,
    node_id               uuid not null,
    at                    timestamptz not null,
    connections           bigint not null,
    xact_commit           bigint not null,
    xact_rollback         bigint not null,
    tup_fetched           bigint not null,
    tup_inserted          bigint not null,
    tup_updated           bigint not null,
    tup_deleted           bigint not null,
    db_size_bytes         bigint not null,
    cache_hit_ratio       double precision,
    replication_lag_bytes bigint,
    constraint store_stats_store_fkey foreign key (store_id) references stores (id) on delete cascade
);
create index store_stats_store_at_idx on store_stats (store_id, at);
create index store_stats_at_idx on store_stats (at);
