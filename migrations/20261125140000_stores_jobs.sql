-- Stores, their nodes, the durable job queue, its workers, and idempotency keys.

create table stores (
    id                  uuid primary key,
    org_id              uuid not null,
    name                text not null,
    vendor              text not null,
    version             text not null,
    instance_size       text not null,
    volume_size_gb      integer not null,
    cloud               text not null,
    region              text not null,
    -- How many nodes the store should have; the nodes table says how many it has.
    node_count          integer not null,
    tags                text[] not null default '{}',
    deletion_protection boolean not null default false,
    status              text not null,
    admin_user          text not null,
    database_name       text not null,
    -- The admin and replication passwords, encrypted with the master key (nonce || ciphertext).
    admin_password_enc  bytea not null,
    replication_password_enc bytea not null,
    -- Bumped by every change; the ETag of the store.
    revision            integer not null default 1,
    created_at          timestamptz not null,
    updated_at          timestamptz not null,
    deleted_at          timestamptz,
    constraint stores_org_fkey foreign key (org_id) references organizations (id) on delete cascade,
    constraint stores_status_check
        check (status in ('deploying', 'available', 'modifying', 'degraded', 'failed', 'deleting', 'deleted'))
);
-- A name is unique among an organization's stores that are not deleted.
create unique index stores_org_name_key on stores (org_id, name) where status <> 'deleted';
create index stores_org_idx on stores (org_id, created_at, id);

create table store_nodes (
    id         uuid primary key,
    store_id   uuid not null,
    org_id     uuid not null,
    role       text not null,
    host       text not null,
    port       integer not null,
    state      text not null,
    -- Last seen by the health check: WAL bytes received but not yet replayed (replicas).
    replication_lag_bytes bigint,
    checked_at timestamptz,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    constraint store_nodes_store_fkey foreign key (store_id) references stores (id) on delete cascade,
    constraint store_nodes_role_check check (role in ('primary', 'replica')),
    constraint store_nodes_state_check check (state in ('creating', 'running', 'stopped', 'failed', 'removing'))
);
create unique index store_nodes_host_port_key on store_nodes (host, port);
create index store_nodes_store_idx on store_nodes (store_id);

create table jobs (
    id            uuid primary key,
    org_id        uuid not null,
    store_id      uuid,
    kind          text not null,
    status        text not null,
    params        jsonb not null default '{}',
    -- The job's steps in order; `step` is the index of the next one to run.
    steps         text[] not null,
    step          integer not null default 0,
    attempts      integer not null default 0,
    max_attempts  integer not null default 5,
    run_after     timestamptz not null,
    locked_by     text,
    locked_until  timestamptz,
    cancel_requested boolean not null default false,
    error         text,
    created_by    uuid,
    created_at    timestamptz not null,
    started_at    timestamptz,
    finished_at   timestamptz,
    updated_at    timestamptz not null,
    constraint jobs_org_fkey foreign key (org_id) references organizations (id) on delete cascade,
    constraint jobs_store_fkey foreign key (store_id) references stores (id) on delete cascade,
    constraint jobs_status_check check (status in ('queued', 'running', 'succeeded', 'failed', 'cancelled'))
);
-- One mutating job per store at a time.
create unique index jobs_one_active_per_store on jobs (store_id) where status in ('queued', 'running');
create index jobs_claim_idx on jobs (run_after) where status in ('queued', 'running');
create index jobs_org_idx on jobs (org_id, created_at desc);

create table job_logs (
    id      bigint generated always as identity primary key,
    job_id  uuid not null,
    at      timestamptz not null,
    level   text not null,
    message text not null,
    constraint job_logs_job_fkey foreign key (job_id) references jobs (id) on delete cascade
);
create index job_logs_job_idx on job_logs (job_id, id);

create table workers (
    id           text primary key,
    hostname     text not null,
    pid          integer not null,
    started_at   timestamptz not null,
    heartbeat_at timestamptz not null
);

-- A POST with an Idempotency-Key: the first response is replayed for the same key and body.
create table idempotency_keys (
    org_id       uuid not null,
    user_id      uuid not null,
    key          text not null,
    request_hash bytea not null,
    status       integer not null,
    response     jsonb not null,
    created_at   timestamptz not null,
    constraint idempotency_keys_pkey primary key (org_id, user_id, key)
);
