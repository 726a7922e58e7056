-- A node's volume as the last health check saw it: its size and use (NULL: volumes are not the
-- node's own here), and when it was last seen full or a write on it failed for lack of space.
alter table store_nodes
    add column disk_size_bytes bigint,
    add column disk_used_bytes bigint,
    add column disk_full_at timestamptz;
