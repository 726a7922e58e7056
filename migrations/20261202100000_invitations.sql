-- Invitations to join an organization, by e-mail address. The account with that address becomes
-- a member only by accepting. Kept by address rather than by account, so that inviting creates
-- the same row, and tells the inviter the same, whether or not an account exists.
create table invitations (
    id          uuid primary key,
    org_id      uuid not null,
    -- Lower-cased, like users.email.
    email       text not null,
    role        text not null,
    invited_by  uuid,
    -- Not stored: `expired`, a pending invitation past expires_at.
    status      text not null default 'pending',
    created_at  timestamptz not null,
    expires_at  timestamptz not null,
    -- When it was accepted, declined or revoked.
    answered_at timestamptz,
    constraint invitations_org_fkey foreign key (org_id) references organizations (id) on delete cascade,
    constraint invitations_inviter_fkey foreign key (invited_by) references users (id) on delete set null,
    constraint invitations_role_check check (role in ('owner', 'admin', 'member', 'viewer')),
    constraint invitations_status_check check (status in ('pending', 'accepted', 'declined', 'revoked')),
    constraint invitations_email_lower check (email = lower(email)),
    constraint invitations_answered_check check ((status = 'pending') = (answered_at is null))
);
-- One open invitation per address and organization: inviting again renews it.
create unique index invitations_pending_key on invitations (org_id, email) where status = 'pending';
create index invitations_email_idx on invitations (email) where status = 'pending';
create index invitations_org_idx on invitations (org_id, created_at);
