//! Sessions kept in Postgres, behind tower-sessions' cookie handling.
//!
//! The cookie holds a random 128-bit id; the table keys on its SHA-256. An authenticated request
//! reads its principal with [`PgSessionStore::principal`]: one read that checks the idle and
//! absolute timeouts against the injected clock and returns the user with their organizations, so
//! it costs one round trip; a second, a write, touches `last_seen_at` at most once a minute.
//! tower-sessions' own `load`, for the few requests that change the session (login, logout),
//! reads the session's data beside it. Nothing is cached in the process: a revoked session is
//! refused at the next request by every instance sharing the database.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::Duration;
use tower_sessions::session::{Id, Record};
use tower_sessions::{SessionStore, session_store};
use uuid::Uuid;

use crate::clock::Clock;
use crate::db;
use crate::domain::Principal;

/// Where the principal loaded with the session is put in the session's data; never stored.
pub const PRINCIPAL_KEY: &str = "_principal";
pub const USER_ID_KEY: &str = "user_id";
/// `last_seen_at` is written at most this often, to keep most reads free of writes.
const TOUCH_EVERY: Duration = Duration::MINUTE;

pub fn session_hash(id: &Id) -> Vec<u8> {
    Sha256::digest(id.0.to_le_bytes()).to_vec()
}

#[derive(Debug, Clone)]
pub struct PgSessionStore {
    pool: PgPool,
    clock: Arc<dyn Clock>,
    idle: Duration,
    absolute: Duration,
}

impl PgSessionStore {
    pub fn new(pool: PgPool, clock: Arc<dyn Clock>, idle: Duration, absolute: Duration) -> Self {
        Self { pool, clock, idle, absolute }
    }

    /// The user of a live session, read straight into a `Principal`: what every
    /// cookie-authenticated request needs, without a round trip through the session's JSON data.
    /// `None` when there is no such session or either timeout has passed.
    pub async fn principal(&self, id: &Id) -> sqlx::Result<Option<Principal>> {
        let now = self.clock.now();
        let hash = session_hash(id);
        let Some(found) =
            db::sessions::load_active(&self.pool, &hash, now - self.idle, now - self.absolute).await?
        else {
            return Ok(None);
        };
        if found.last_seen_at < now - TOUCH_EVERY {
            db::sessions::touch(&self.pool, &hash, now, now - TOUCH_EVERY).await?;
        }
        Ok(Some(found.principal))
    }
}

fn backend(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

/// The data to persist: everything but the principal, which is loaded fresh each time.
fn stored(record: &Record) -> session_store::Result<(Uuid, serde_json::Value)> {
    let mut data = record.data.clone();
    data.remove(PRINCIPAL_KEY);
    let user_id = data
        .get(USER_ID_KEY)
        .and_then(|v| v.as_str())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| session_store::Error::Encode("a session needs a user".into()))?;
    let json = serde_json::to_value(data).map_err(|e| session_store::Error::Encode(e.to_string()))?;
    Ok((user_id, json))
}

#[async_trait]
impl SessionStore for PgSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let (user_id, data) = stored(record)?;
        let now = self.clock.now();
        // A collision of 128-bit random ids is all but impossible; if it happens, draw again.
        while !db::sessions::insert(&self.pool, &session_hash(&record.id), user_id, &data, now)
            .await
            .map_err(backend)?
        {
            record.id = Id::default();
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let (_, data) = stored(record)?;
        db::sessions::update_data(&self.pool, &session_hash(&record.id), &data).await.map_err(backend)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let Some(principal) = self.principal(id).await.map_err(backend)? else {
            return Ok(None);
        };
        // Gone in between (a logout on another instance): as if it had not been found.
        let Some(data) = db::sessions::data(&self.pool, &session_hash(id)).await.map_err(backend)? else {
            return Ok(None);
        };
        let mut data: HashMap<String, serde_json::Value> =
            serde_json::from_value(data).map_err(|e| session_store::Error::Decode(e.to_string()))?;
        data.insert(
            PRINCIPAL_KEY.into(),
            serde_json::to_value(principal).map_err(|e| session_store::Error::Decode(e.to_string()))?,
        );
        Ok(Some(Record { id: *id, data, expiry_date: self.clock.now() + self.idle }))
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        db::sessions::delete(&self.pool, &session_hash(id)).await.map_err(backend)
    }
}
