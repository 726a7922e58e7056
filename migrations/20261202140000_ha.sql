-- High availability: each store's HA settings and current timeline, what each node reported of
-- its replication at the last check, whether it is fenced or in maintenance, every promotion,
-- the store's events, and which Berth instance runs the failover monitor.

alter table stores
    -- The monitor promotes a replica when the primary is gone (stores with replicas only).
    add column auto_failover boolean not null default true,
    -- How long the primary must have failed every probe before a failover.
    add column failover_delay_seconds integer not null default 5,
    -- A replica further behind than this (received WAL, bytes) is never promoted automatically.
    add column max_lag_on_failover_bytes bigint not null default 1048576,
    -- `off`, `any_1` (a commit waits for one replica) or `quorum` (for a majority of the nodes).
    add column synchronous text not null default 'off',
    -- Set: the monitor leaves the store alone (a person paused it, or the failover limit did).
    add column ha_paused_at timestamptz,
    add column ha_paused_reason text,
    -- The timeline the control database's primary writes on: only it starts read-write.
    add column timeline integer not null default 1,
    add constraint stores_failover_delay_check check (failover_delay_seconds between 1 and 3600),
    add constraint stores_max_lag_check check (max_lag_on_failover_bytes >= 0),
    add constraint stores_synchronous_check check (synchronous in ('off', 'any_1', 'quorum'));

alter table store_nodes
    -- Stopped by a failover or switchover and not to run read-write until it rejoins.
    add column fenced boolean not null default false,
    -- Excluded from candidacy and from alerts.
    add column maintenance boolean not null default false,
    -- From the last check: the timeline, the WAL received (flushed) and replayed (replicas) or
    -- written (the primary), as byte positions; seconds since the last replayed commit; whether
    -- it streams from the primary; and its synchronous state as the primary sees it.
    add column timeline integer,
    add column received_lsn bigint,
    add column replayed_lsn bigint,
    add column lag_seconds double precision,
    add column streaming boolean,
    add column sync_state text;

-- The control database names one primary per store, whatever a crash interrupted.
create unique index store_nodes_one_primary_key on store_nodes (store_id) where role = 'primary';

-- Every promotion of a replica: by a switchover (planned, nothing lost) or a failover.
create table store_promotions (
    id            uuid primary key,
    org_id        uuid not null,
    store_id      uuid not null,
    kind          text not null,
    automatic     boolean not null,
    from_node_id  uuid,
    to_node_id    uuid not null,
    -- The timeline the promoted node writes on and where it forked off, once it reports them.
    timeline      integer,
    switch_lsn    bigint,
    -- WAL the old primary had written that the promoted node had not received (failovers).
    lost_bytes_estimate bigint,
    job_id        uuid,
    at            timestamptz not null,
    constraint store_promotions_store_fkey foreign key (store_id) references stores (id) on delete cascade,
    constraint store_promotions_kind_check check (kind in ('switchover', 'failover'))
);
create index store_promotions_store_idx on store_promotions (store_id, at desc, id desc);

-- What happened to a store, newest first.
create table store_events (
    id        uuid primary key,
    org_id    uuid not null,
    store_id  uuid not null,
    node_id   uuid,
    kind      text not null,
    message   text not null,
    -- The person who caused it, if one did.
    actor_id  uuid,
    at        timestamptz not null,
    constraint store_events_store_fkey foreign key (store_id) references stores (id) on delete cascade,
    constraint store_events_kind_check check (kind in ('node_down', 'node_up', 'failover', 'switchover',
        'switchover_aborted', 'fenced', 'rejoined', 'lag_over_threshold', 'lag_recovered', 'disk_full',
        'failover_blocked', 'ha_paused', 'ha_resumed', 'maintenance_on', 'maintenance_off'))
);
create index store_events_store_idx on store_events (store_id, at desc, id desc);

-- The one Berth instance that runs the failover monitor: it renews its lease; another takes
-- over once the lease has run out.
create table ha_leader (
    id         boolean primary key default true,
    holder     text not null,
    expires_at timestamptz not null,
    constraint ha_leader_one_row check (id)
);

-- A failover is never blocked by another job (a backup, say) of the store: the store's other
-- jobs wait for it or find the new primary when they retry. One failover at a time, though.
drop index jobs_one_active_per_store;
create unique index jobs_one_active_per_store on jobs (store_id)
    where status in ('queued', 'running') and kind <> 'failover';
create unique index jobs_one_failover_per_store on jobs (store_id)
    where status in ('queued', 'running') and kind = 'failover';
