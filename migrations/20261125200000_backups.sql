-- Backups: real archives on disk with their checksum, and the store status of an in-place restore.

create table backups (
    id          uuid primary key,
    org_id      uuid not null,
    store_id    uuid not null,
    kind        text not null,
    status      text not null,
    -- The node the backup was read from.
    node_id     uuid,
    size_bytes  bigint,
    sha256      text,
    -- Where the backup store keeps it (a key, relative to the store's root).
    location    text,
    start_lsn   text,
    end_lsn     text,
    error       text,
    created_at  timestamptz not null,
    finished_at timestamptz,
    constraint backups_store_fkey foreign key (store_id) references stores (id),
    constraint backups_kind_check check (kind in ('full', 'logical')),
    constraint backups_status_check check (status in ('running', 'succeeded', 'failed'))
);
create index backups_store_idx on backups (store_id, created_at desc);

alter table stores drop constraint stores_status_check;
alter table stores add constraint stores_status_check
    check (status in ('deploying', 'available', 'modifying', 'degraded', 'failed', 'deleting', 'deleted', 'restoring'));
