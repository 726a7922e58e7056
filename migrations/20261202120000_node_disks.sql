-- A node's volume as the last health check saw it: its size and use, and whether it is full
-- (writes on it fail, or are about to). NULL sizes: volumes are not the node's own here.
alter table store_nodes
    add column disk_size_bytes bigint,
    add column disk_used_bytes bigint,
    add column disk_full boolean not null default false;
