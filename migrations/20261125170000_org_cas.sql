-- Each organization's certificate authority: it signs the TLS certificates of the organization's
-- store nodes. The private key is encrypted with the master key.

create table org_cas (
    org_id     uuid primary key,
    cert_pem   text not null,
    key_enc    bytea not null,
    created_at timestamptz not null,
    constraint org_cas_org_fkey foreign key (org_id) references organizations (id) on delete cascade
);
