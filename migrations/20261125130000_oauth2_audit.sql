-- OAuth2 client credentials, the tokens they are issued, throttling of client authentication,
-- and the tamper-evident audit trail.

create table credentials (
    id           uuid primary key,
    org_id       uuid not null,
    created_by   uuid not null,
    -- Public identifier, `brc_…`.
    client_id    text not null,
    -- SHA-256 of the secret: it carries 256 random bits, so no slow hash is needed.
    secret_hash  bytea not null,
    description  text not null,
    scopes       text[] not null,
    created_at   timestamptz not null,
    expires_at   timestamptz not null,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    constraint credentials_client_id_key unique (client_id),
    constraint credentials_org_fkey foreign key (org_id) references organizations (id) on delete cascade,
    constraint credentials_creator_fkey foreign key (created_by) references users (id) on delete cascade
);
create index credentials_org_id_idx on credentials (org_id, created_at);

-- Access and refresh tokens, stored as SHA-256. A refresh token's family is every token issued
-- from one client_credentials grant through its chain of refreshes.
create table oauth_tokens (
    token_hash    bytea primary key,
    kind          text not null,
    credential_id uuid not null,
    family_id     uuid not null,
    scopes        text[] not null,
    created_at    timestamptz not null,
    expires_at    timestamptz not null,
    used_at       timestamptz,
    revoked_at    timestamptz,
    constraint oauth_tokens_kind_check check (kind in ('access', 'refresh')),
    constraint oauth_tokens_credential_fkey foreign key (credential_id) references credentials (id) on delete cascade
);
create index oauth_tokens_family_idx on oauth_tokens (family_id);
create index oauth_tokens_credential_idx on oauth_tokens (credential_id);
create index oauth_tokens_expires_at_idx on oauth_tokens (expires_at);

-- Failed logins and failed client authentications share one throttle table, keyed by subject
-- (`login:<email>`, `client:<client_id>`).
alter table login_failures rename to auth_failures;
alter table auth_failures rename column login to subject;
alter index login_failures_login_idx rename to auth_failures_subject_idx;

-- Each event carries the hash of the one before it in its organization's chain (org_id null:
-- the system chain, for events that belong to no organization), so that editing or deleting
-- history breaks the chain where it was touched.
create table audit_events (
    id             bigint generated always as identity primary key,
    org_id         uuid,
    at             timestamptz not null,
    actor_user_id  uuid,
    actor          text,
    credential_id  uuid,
    action         text not null,
    target         text,
    outcome        text not null,
    source_ip      text,
    request_id     text,
    details        text not null default '{}',
    prev_hash      bytea,
    hash           bytea not null,
    constraint audit_events_outcome_check check (outcome in ('success', 'failure', 'denied'))
);
create index audit_events_org_idx on audit_events (org_id, id);
