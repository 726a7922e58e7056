-- Database users of stores. The roles and their passwords live on the nodes only (PostgreSQL
-- keeps SCRAM verifiers); Berth records what it granted and where the user may connect from.

create table db_users (
    id         uuid primary key,
    org_id     uuid not null,
    store_id   uuid not null,
    name       text not null,
    privilege  text not null,
    -- null: every database.
    database   text,
    -- null: wherever the store's firewall allows.
    host       cidr,
    created_at timestamptz not null,
    constraint db_users_store_fkey foreign key (store_id) references stores (id) on delete cascade,
    constraint db_users_name_key unique (store_id, name),
    constraint db_users_privilege_check check (privilege in ('read', 'readwrite', 'admin'))
);
