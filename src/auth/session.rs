//! Sessions kept in Postgres, behind tower-sessions' cookie handling.
//!
//! The cookie holds a random 128-bit id; the table keys on its SHA-256. An authenticated request
//! reads its principal with [`PgSessionStore::principal`]: one read that checks the idle and
//! absolute timeouts against the injected clock and returns the user with their organizations,
//! shared with the other requests that arrive meanwhile, so it costs at most one round trip; a
//! second, a write, touches `last_seen_at` at most once a minute. tower-sessions' own `load`, for
//! the few requests that change the session (login, logout), reads the session's data beside it.
//! Nothing is cached in the process: a revoked session is refused at the next request by every
//! instance sharing the database.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tower_sessions::session::{Id, Record};
use tower_sessions::{SessionStore, session_store};

use crate::clock::Clock;
use crate::db;
use crate::db::sessions::LoadedSession;
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
    /// Where [`PgSessionStore::principal`] queues its lookups; the reader is started at the first.
    lookups: Arc<OnceLock<mpsc::UnboundedSender<Lookup>>>,
}

/// A session's id hash, and where its live session (or its absence) is to be sent.
type Lookup = (Vec<u8>, oneshot::Sender<Result<Option<LoadedSession>, Arc<sqlx::Error>>>);

/// The most sessions one statement reads.
const MAX_BATCH: usize = 64;

impl PgSessionStore {
    pub fn new(pool: PgPool, clock: Arc<dyn Clock>, idle: Duration, absolute: Duration) -> Self {
        Self { pool, clock, idle, absolute, lookups: Arc::default() }
    }

    /// The user of a live session, read straight into a `Principal`: what every
    /// cookie-authenticated request needs, without a round trip through the session's JSON data.
    /// `None` when there is no such session or either timeout has passed.
    ///
    /// Lookups of concurrent requests are read together: a request's session is read by a
    /// statement that starts after the request did, alone when Berth is quiet and with up to
    /// [`MAX_BATCH`] others when it is busy, so a revoked session is refused as surely as with a
    /// statement of its own, and a busy Berth pays Postgres a fraction of a round trip per request.
    pub async fn principal(&self, id: &Id) -> sqlx::Result<Option<Principal>> {
        let hash = session_hash(id);
        let (answer, answered) = oneshot::channel();
        let queue = self.lookups.get_or_init(|| self.start_reader());
        queue.send((hash.clone(), answer)).map_err(|_| sqlx::Error::WorkerCrashed)?;
        let found = answered.await.map_err(|_| sqlx::Error::WorkerCrashed)?.map_err(|e| copy_error(&e))?;
        let Some(found) = found else {
            return Ok(None);
        };
        let now = self.clock.now();
        if found.last_seen_at < now - TOUCH_EVERY {
            db::sessions::touch(&self.pool, &hash, now, now - TOUCH_EVERY).await?;
        }
        Ok(Some(found.principal))
    }

    /// Starts the task that turns queued lookups into statements, on the caller's runtime. It
    /// holds no sender, so it ends when the last clone of this store is dropped.
    fn start_reader(&self) -> mpsc::UnboundedSender<Lookup> {
        let (queue, lookups) = mpsc::unbounded_channel();
        // Half the pool at most, so that a flood of checks leaves connections to everything else.
        let in_flight = (self.pool.options().get_max_connections() / 2).max(1) as usize;
        let reader = Reader {
            pool: self.pool.clone(),
            clock: self.clock.clone(),
            idle: self.idle,
            absolute: self.absolute,
        };
        tokio::spawn(reader.run(lookups, in_flight));
        queue
    }
}

struct Reader {
    pool: PgPool,
    clock: Arc<dyn Clock>,
    idle: Duration,
    absolute: Duration,
}

impl Reader {
    async fn run(self, mut lookups: mpsc::UnboundedReceiver<Lookup>, in_flight: usize) {
        let reader = Arc::new(self);
        let statements = Arc::new(Semaphore::new(in_flight));
        loop {
            // While every statement is out, lookups queue up and the next statement takes them all.
            let Ok(permit) = statements.clone().acquire_owned().await else { return };
            let mut batch = Vec::new();
            if lookups.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return;
            }
            let reader = reader.clone();
            tokio::spawn(async move {
                reader.read(batch).await;
                drop(permit);
            });
        }
    }

    async fn read(&self, batch: Vec<Lookup>) {
        // The clock is read after every lookup of the batch was queued: no timeout is missed.
        let now = self.clock.now();
        let hashes: Vec<Vec<u8>> = batch.iter().map(|(hash, _)| hash.clone()).collect();
        match db::sessions::load_active(&self.pool, hashes, now - self.idle, now - self.absolute).await {
            Ok(found) => {
                for (hash, answer) in batch {
                    // A request that went away no longer waits for its answer. Requests with the
                    // same cookie share a batch often: each gets its own copy.
                    let _ = answer.send(Ok(found.get(&hash).cloned()));
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for (_, answer) in batch {
                    let _ = answer.send(Err(e.clone()));
                }
            }
        }
    }
}

/// The error of a statement shared by a batch, for each of its requests: unavailability stays
/// unavailability (a 503), anything else keeps its message.
fn copy_error(e: &sqlx::Error) -> sqlx::Error {
    match e {
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        sqlx::Error::Io(io) => sqlx::Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        other => sqlx::Error::Protocol(other.to_string()),
    }
}

fn backend(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

/// The data to persist: everything but the principal, which is loaded fresh each time.
fn stored(record: &Record) -> session_store::Result<(crate::domain::UserId, serde_json::Value)> {
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
