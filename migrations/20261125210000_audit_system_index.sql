-- The head of the system chain (events of no organization) is found by index too.
create index audit_events_system_idx on audit_events (id) where org_id is null;
