-- A backup schedule must let old backups go. Not validated against existing rows: a schedule
-- saved without a retention before this rule keeps working until it is next changed.
alter table backup_schedules add constraint backup_schedules_retention_check
    check (retention_count is not null or retention_days is not null) not valid;
