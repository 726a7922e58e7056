-- Throttle windows, one row per subject (`login:<email>`, `addr:<ip>`, `client:<client_id>`):
-- the times of the attempts still counted against it. One row per subject is what lets one
-- statement count and reserve an attempt atomically: `insert ... on conflict do update` locks
-- the row and sees its latest version, however many requests arrive at once. The old table
-- kept a row per failure, so a count and the insert after it could interleave.
create table auth_attempts (
    subject  text not null,
    attempts timestamptz[] not null,
    constraint auth_attempts_pkey primary key (subject)
);

drop table auth_failures;
