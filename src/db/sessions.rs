use std::collections::HashMap;

use sqlx::PgExecutor;
use time::OffsetDateTime;

use super::users::membership;
use crate::domain::{Principal, UserId};

#[derive(Debug, Clone)]
pub struct LoadedSession {
    pub principal: Principal,
    pub last_seen_at: OffsetDateTime,
}

/// Inserts a new session; `false` if the id is taken.
pub async fn insert(
    ex: impl PgExecutor<'_>,
    id_hash: &[u8],
    user_id: UserId,
    data: &serde_json::Value,
    now: OffsetDateTime,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "insert into sessions (id_hash, user_id, data, created_at, last_seen_at)
         values ($1, $2, $3, $4, $4)
         on conflict (id_hash) do nothing",
        id_hash,
        user_id as UserId,
        data,
        now
    )
    .execute(ex)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn update_data(
    ex: impl PgExecutor<'_>,
    id_hash: &[u8],
    data: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query!("update sessions set data = $2 where id_hash = $1", id_hash, data).execute(ex).await?;
    Ok(())
}

/// The live sessions among `keys` (id hashes) with their users, in one round trip (a read only):
/// those whose idle and absolute timeouts have not passed, keyed by id hash.
pub async fn load_active(
    ex: impl PgExecutor<'_>,
    mut keys: Vec<Vec<u8>>,
    idle_cutoff: OffsetDateTime,
    absolute_cutoff: OffsetDateTime,
) -> sqlx::Result<HashMap<Vec<u8>, LoadedSession>> {
    keys.sort_unstable();
    keys.dedup();
    // One row per membership, flat: nested index lookups that cost Postgres about half what a
    // correlated `json_agg` subquery did (its hash join and aggregate were most of the check's
    // database time). Each session is read by its key in a lateral subquery: joined to the keys
    // directly, a table of a few thousand sessions was scanned whole, by the generic plan as much
    // as by the custom one, because the planner thought it cheaper than the index.
    let rows = sqlx::query!(
        r#"select s.id_hash, s.last_seen_at, u.id, u.email, u.first_name, u.last_name, u.origin,
                  u.must_change_password, u.created_at, u.updated_at,
                  o.id as "org_id?", o.name as "org_name?", m.role as "role?",
                  o.created_at as "org_created_at?", o.updated_at as "org_updated_at?"
           from unnest($1::bytea[]) k(id_hash)
           cross join lateral (
               select id_hash, user_id, last_seen_at from sessions
               where id_hash = k.id_hash and last_seen_at > $2 and created_at > $3
               limit 1
           ) s
           join users u on u.id = s.user_id
           left join memberships m on m.user_id = u.id
           left join organizations o on o.id = m.org_id
           order by s.id_hash, o.name, o.id"#,
        &keys,
        idle_cutoff,
        absolute_cutoff
    )
    .fetch_all(ex)
    .await?;
    let mut found: HashMap<Vec<u8>, LoadedSession> = HashMap::with_capacity(keys.len());
    for r in rows {
        let org =
            membership(r.org_id.map(Into::into), &r.org_name, &r.role, r.org_created_at, r.org_updated_at)?;
        let session = found.entry(r.id_hash).or_insert_with(|| LoadedSession {
            last_seen_at: r.last_seen_at,
            principal: Principal {
                user_id: r.id.into(),
                email: r.email,
                first_name: r.first_name,
                last_name: r.last_name,
                origin: r.origin,
                must_change_password: r.must_change_password,
                created_at: r.created_at,
                updated_at: r.updated_at,
                orgs: Vec::new(),
            },
        });
        session.principal.orgs.extend(org);
    }
    Ok(found)
}

/// What the session keeps beside its user (tower-sessions' data), for the rare request that
/// reads or changes it.
pub async fn data(ex: impl PgExecutor<'_>, id_hash: &[u8]) -> sqlx::Result<Option<serde_json::Value>> {
    sqlx::query_scalar!("select data from sessions where id_hash = $1", id_hash).fetch_optional(ex).await
}

pub async fn delete(ex: impl PgExecutor<'_>, id_hash: &[u8]) -> sqlx::Result<()> {
    sqlx::query!("delete from sessions where id_hash = $1", id_hash).execute(ex).await?;
    Ok(())
}

/// Ends every session of a user but the one given (a password change keeps the caller's).
pub async fn delete_others(
    ex: impl PgExecutor<'_>,
    user_id: UserId,
    keep: Option<&[u8]>,
) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "delete from sessions where user_id = $1 and id_hash is distinct from $2",
        user_id as UserId,
        keep
    )
    .execute(ex)
    .await?;
    Ok(done.rows_affected())
}

/// Removes sessions past either timeout; they are refused anyway, this only reclaims space.
pub async fn purge_expired(
    ex: impl PgExecutor<'_>,
    idle_cutoff: OffsetDateTime,
    absolute_cutoff: OffsetDateTime,
) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "delete from sessions where last_seen_at <= $1 or created_at <= $2",
        idle_cutoff,
        absolute_cutoff
    )
    .execute(ex)
    .await?;
    Ok(done.rows_affected())
}

/// Records that the session was used, if it was last recorded before `stale`. Concurrent
/// requests do not queue behind each other on the row: one writes, the others skip it.
pub async fn touch(
    ex: impl PgExecutor<'_>,
    id_hash: &[u8],
    now: OffsetDateTime,
    stale: OffsetDateTime,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update sessions set last_seen_at = $2
         where id_hash = (select id_hash from sessions where id_hash = $1 and last_seen_at < $3
                          for update skip locked)",
        id_hash,
        now,
        stale
    )
    .execute(ex)
    .await?;
    Ok(())
}
