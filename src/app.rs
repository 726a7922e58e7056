//! Application state: what every request and every worker of one process shares.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;

use sqlx::PgPool;
use tokio::sync::Notify;

use crate::audit::Refusals;
use crate::auth::token::{self, TagKey};
use crate::auth::{PasswordHasher, PgSessionStore};
use crate::clock::Clock;
use crate::config::AuthConfig;
use crate::jobs::JobEnv;
use crate::provision::DataPlane;

#[derive(Clone, FromRef)]
pub struct AppState {
    pub db: PgPool,
    pub auth: Arc<AuthConfig>,
    pub clock: Arc<dyn Clock>,
    pub hasher: PasswordHasher,
    pub sessions: PgSessionStore,
    pub plane: DataPlane,
    /// Wakes this process's idle workers when a job is enqueued here.
    pub wake: Arc<Notify>,
    /// Refused authentications waiting to be audited, one event per minute and subject.
    pub refusals: Refusals,
    /// Tags the secrets Berth makes, so that made-up ones are refused without a lookup.
    pub token_tags: TagKey,
}

impl AppState {
    pub fn new(db: PgPool, auth: AuthConfig, clock: Arc<dyn Clock>, plane: DataPlane) -> Self {
        let concurrency = auth
            .hash_concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let hasher = PasswordHasher::new(concurrency, auth.hash_nice);
        let sessions = PgSessionStore::new(
            db.clone(),
            clock.clone(),
            to_time(auth.session_idle_timeout),
            to_time(auth.session_absolute_timeout),
        );
        let token_tags = TagKey::new(&plane.master_key.derive(token::TAG_KEY_PURPOSE));
        Self {
            db,
            auth: Arc::new(auth),
            clock,
            hasher,
            sessions,
            plane,
            wake: Arc::new(Notify::new()),
            refusals: Refusals::default(),
            token_tags,
        }
    }

    /// What the workers of this process run with.
    pub fn job_env(&self) -> JobEnv {
        JobEnv { db: self.db.clone(), plane: self.plane.clone(), clock: self.clock.clone() }
    }
}

fn to_time(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}
