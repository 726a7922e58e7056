use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgExecutor};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{Ctx, OrgId};

/// One audit event as stored. `details` is JSON text, hashed exactly as stored.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub id: i64,
    pub org_id: Option<OrgId>,
    pub at: OffsetDateTime,
    pub actor_user_id: Option<Uuid>,
    pub actor: Option<String>,
    pub credential_id: Option<Uuid>,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
    pub details: String,
    pub prev_hash: Option<Vec<u8>>,
    pub hash: Vec<u8>,
}

impl EventRow {
    /// The event's link in its chain: SHA-256 of the previous hash and every stored field.
    pub fn compute_hash(&self, prev: Option<&[u8]>) -> Vec<u8> {
        let fields = serde_json::json!([
            self.org_id,
            (self.at.unix_timestamp_nanos() / 1000) as i64,
            self.actor_user_id,
            self.actor,
            self.credential_id,
            self.action,
            self.target,
            self.outcome,
            self.source_ip,
            self.request_id,
            self.details,
        ]);
        let mut h = Sha256::new();
        h.update(prev.unwrap_or_default());
        h.update(fields.to_string().as_bytes());
        h.finalize().to_vec()
    }
}

/// Appends an event to its organization's chain. Must run in a transaction: appends to one chain
/// take turns on an advisory lock so that each links to the true previous event.
pub async fn append(conn: &mut PgConnection, mut ev: EventRow) -> sqlx::Result<()> {
    // timestamptz keeps microseconds: hash what will be read back.
    let micros = ev.at.unix_timestamp_nanos() / 1000;
    ev.at = OffsetDateTime::from_unix_timestamp_nanos(micros * 1000).unwrap_or(ev.at);
    let chain = ev.org_id.map_or_else(|| "audit:system".to_owned(), |o| format!("audit:{o}"));
    sqlx::query!("select pg_advisory_xact_lock(hashtext($1))", chain).execute(&mut *conn).await?;
    // Two statements rather than `is not distinct from`, which no index serves.
    let prev = match ev.org_id {
        Some(org) => {
            sqlx::query_scalar!(
                "select hash from audit_events where org_id = $1 order by id desc limit 1",
                org as OrgId
            )
            .fetch_optional(&mut *conn)
            .await?
        }
        None => {
            sqlx::query_scalar!("select hash from audit_events where org_id is null order by id desc limit 1")
                .fetch_optional(&mut *conn)
                .await?
        }
    };
    ev.hash = ev.compute_hash(prev.as_deref());
    sqlx::query!(
        "insert into audit_events (org_id, at, actor_user_id, actor, credential_id, action, target, outcome,
                                   source_ip, request_id, details, prev_hash, hash)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        ev.org_id as Option<OrgId>,
        ev.at,
        ev.actor_user_id,
        ev.actor,
        ev.credential_id,
        ev.action,
        ev.target,
        ev.outcome,
        ev.source_ip,
        ev.request_id,
        ev.details,
        prev,
        ev.hash
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub struct Filter<'a> {
    pub actor: Option<&'a str>,
    pub action: Option<&'a str>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    /// Events older than this id (the cursor of the previous page).
    pub before_id: Option<i64>,
    pub limit: i64,
}

/// The organization's events, newest first. `actor` matches the actor's user id or e-mail;
/// `action` an action or, ending in `.`, every action with that prefix.
pub async fn list(ex: impl PgExecutor<'_>, ctx: &Ctx, f: &Filter<'_>) -> sqlx::Result<Vec<EventRow>> {
    sqlx::query_as!(
        EventRow,
        r#"select id, org_id as "org_id: OrgId", at, actor_user_id, actor, credential_id, action, target, outcome,
                source_ip, request_id, details, prev_hash, hash
         from audit_events
         where org_id = $1
           and ($2::text is null or actor = $2 or actor_user_id::text = $2)
           and ($3::text is null or action = $3 or (right($3, 1) = '.' and starts_with(action, $3)))
           and ($4::timestamptz is null or at >= $4)
           and ($5::timestamptz is null or at < $5)
           and ($6::bigint is null or id < $6)
         order by id desc
         limit $7"#,
        ctx.org_id as OrgId,
        f.actor,
        f.action,
        f.from,
        f.to,
        f.before_id,
        f.limit
    )
    .fetch_all(ex)
    .await
}

/// The organization's whole chain, oldest first, for verification.
pub async fn chain(ex: impl PgExecutor<'_>, ctx: &Ctx) -> sqlx::Result<Vec<EventRow>> {
    sqlx::query_as!(
        EventRow,
        r#"select id, org_id as "org_id: OrgId", at, actor_user_id, actor, credential_id, action, target, outcome,
                source_ip, request_id, details, prev_hash, hash
         from audit_events where org_id = $1 order by id"#,
        ctx.org_id as OrgId
    )
    .fetch_all(ex)
    .await
}
