-- Backup schedules: when each store is backed up, how long backups are kept, and where the
-- scheduler is. A row per store, made with the store; the scheduler claims due rows with
-- `for update skip locked` and moves `next_*_at` in the same transaction as the job it starts,
-- so that a due backup starts once however many Berth instances run.

create table backup_schedules (
    store_id         uuid primary key,
    org_id           uuid not null,
    -- Five-field cron expressions, in UTC. No logical schedule when null.
    full_cron        text not null,
    logical_cron     text,
    -- A backup is pruned when `retention_count` newer backups of its kind exist, or when it is
    -- older than `retention_days`; the newest good full backup is never pruned.
    retention_count  integer,
    retention_days   integer,
    -- Which node backups are read from: a replica when one runs, or always the primary.
    source           text not null default 'replica',
    paused           boolean not null default false,
    next_full_at     timestamptz,
    next_logical_at  timestamptz,
    updated_at       timestamptz not null,
    constraint backup_schedules_store_fkey foreign key (store_id) references stores (id),
    constraint backup_schedules_source_check check (source in ('primary', 'replica')),
    constraint backup_schedules_retention_count_check check (retention_count is null or retention_count >= 1),
    constraint backup_schedules_retention_days_check check (retention_days is null or retention_days >= 1)
);
create index backup_schedules_next_full_idx on backup_schedules (next_full_at) where not paused;
create index backup_schedules_next_logical_idx on backup_schedules (next_logical_at) where not paused;

-- Every store has a schedule: daily full backups at 03:00 UTC, kept for seven days. The
-- scheduler works out the first due time of a row whose `next_*_at` is null.
insert into backup_schedules (store_id, org_id, full_cron, retention_count, retention_days, updated_at)
select id, org_id, '0 3 * * *', 7, 7, now() from stores where status <> 'deleted';

-- How a backup came to be, and the source it was meant to be read from.
alter table backups add column trigger text not null default 'manual';
alter table backups add constraint backups_trigger_check check (trigger in ('manual', 'schedule'));
