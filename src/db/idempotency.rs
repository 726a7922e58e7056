//! Idempotency keys: the first response to a POST with a key is stored in the transaction that
//! made the change, and replayed for the same key and body.

use sqlx::{Postgres, Transaction};
use time::OffsetDateTime;

use crate::domain::{Ctx, OrgId, UserId};

pub struct Stored {
    pub request_hash: Vec<u8>,
    pub status: i32,
    pub response: serde_json::Value,
}

/// Claims `key` in the transaction: `None` when it is new (the row stays locked until commit,
/// so a concurrent retry waits here for the outcome), or the stored first response.
pub async fn claim(
    tx: &mut Transaction<'_, Postgres>,
    ctx: &Ctx,
    key: &str,
    request_hash: &[u8],
    now: OffsetDateTime,
) -> sqlx::Result<Option<Stored>> {
    let inserted = sqlx::query!(
        "insert into idempotency_keys (org_id, user_id, key, request_hash, status, response, created_at)
         values ($1, $2, $3, $4, 0, 'null', $5) on conflict do nothing",
        ctx.org_id as OrgId,
        ctx.user_id as UserId,
        key,
        request_hash,
        now
    )
    .execute(&mut **tx)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(None);
    }
    sqlx::query_as!(
        Stored,
        "select request_hash, status, response from idempotency_keys where org_id = $1 and user_id = $2 and key = $3",
        ctx.org_id as OrgId,
        ctx.user_id as UserId,
        key
    )
    .fetch_optional(&mut **tx)
    .await
}

pub async fn complete(
    tx: &mut Transaction<'_, Postgres>,
    ctx: &Ctx,
    key: &str,
    status: u16,
    response: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update idempotency_keys set status = $4, response = $5 where org_id = $1 and user_id = $2 and key = $3",
        ctx.org_id as OrgId,
        ctx.user_id as UserId,
        key,
        i32::from(status),
        response
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn purge_before(ex: impl sqlx::PgExecutor<'_>, before: OffsetDateTime) -> sqlx::Result<u64> {
    let done = sqlx::query!("delete from idempotency_keys where created_at < $1", before).execute(ex).await?;
    Ok(done.rows_affected())
}
