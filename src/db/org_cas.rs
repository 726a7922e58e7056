use sqlx::PgExecutor;
use time::OffsetDateTime;

use crate::domain::OrgId;

pub struct CaRow {
    pub cert_pem: String,
    pub key_enc: Vec<u8>,
}

pub async fn get(ex: impl PgExecutor<'_>, org_id: OrgId) -> sqlx::Result<Option<CaRow>> {
    sqlx::query_as!(CaRow, "select cert_pem, key_enc from org_cas where org_id = $1", org_id as OrgId)
        .fetch_optional(ex)
        .await
}

/// Stores a CA unless the organization has one already (two first uses at once keep one).
pub async fn insert_if_absent(
    ex: impl PgExecutor<'_>,
    org_id: OrgId,
    cert_pem: &str,
    key_enc: &[u8],
    now: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into org_cas (org_id, cert_pem, key_enc, created_at) values ($1, $2, $3, $4) on conflict do nothing",
        org_id as OrgId,
        cert_pem,
        key_enc,
        now
    )
    .execute(ex)
    .await?;
    Ok(())
}
