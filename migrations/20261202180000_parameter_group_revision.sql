-- A parameter group's revision, its ETag: a change made on what was read (If-Match) cannot
-- silently undo another made meanwhile.
alter table parameter_groups add column revision integer not null default 1;
