-- Users, organizations, memberships, sessions and login throttling.

create table users (
    id                   uuid primary key,
    -- Stored lower-cased: the login is case-insensitive.
    email                text not null,
    first_name           text not null default '',
    last_name            text not null default '',
    origin               text not null default 'local',
    password_hash        text not null,
    must_change_password boolean not null default false,
    created_at           timestamptz not null default now(),
    updated_at           timestamptz not null default now(),
    constraint users_email_key unique (email),
    constraint users_email_lower check (email = lower(email))
);

create table organizations (
    id         uuid primary key,
    name       text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create table memberships (
    org_id     uuid not null,
    user_id    uuid not null,
    role       text not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint memberships_pkey primary key (org_id, user_id),
    constraint memberships_org_fkey foreign key (org_id) references organizations (id) on delete cascade,
    constraint memberships_user_fkey foreign key (user_id) references users (id) on delete cascade,
    constraint memberships_role_check check (role in ('owner', 'admin', 'member', 'viewer'))
);
create index memberships_user_id_idx on memberships (user_id);

-- Browser sessions. The cookie carries a random id; only its SHA-256 is stored, so a copy of
-- this table opens no session.
create table sessions (
    id_hash      bytea primary key,
    user_id      uuid not null,
    data         jsonb not null default '{}',
    created_at   timestamptz not null,
    last_seen_at timestamptz not null,
    constraint sessions_user_fkey foreign key (user_id) references users (id) on delete cascade
);
create index sessions_user_id_idx on sessions (user_id);
create index sessions_last_seen_at_idx on sessions (last_seen_at);

-- Failed logins per login name (known or not), for throttling across every Berth instance.
create table login_failures (
    id        bigint generated always as identity primary key,
    login     text not null,
    failed_at timestamptz not null
);
create index login_failures_login_idx on login_failures (login, failed_at);
