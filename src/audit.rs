//! The audit trail: who did what, to what, from where, with what outcome. Events are appended
//! to a per-organization hash chain (see `db::audit`), so tampering with history is detectable.

use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::audit::{EventRow, append};
use crate::domain::{AuthMethod, Ctx, Principal};

/// Where a request came from, for the trail.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub source_ip: Option<String>,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }
}

/// An event being built; `record` stamps and appends it.
#[derive(Debug, Clone)]
pub struct Event {
    row: EventRow,
    details: serde_json::Map<String, serde_json::Value>,
}

impl Event {
    pub fn new(action: &str, meta: &RequestMeta) -> Self {
        Self {
            row: EventRow {
                id: 0,
                org_id: None,
                at: OffsetDateTime::UNIX_EPOCH,
                actor_user_id: None,
                actor: None,
                credential_id: None,
                action: action.to_owned(),
                target: None,
                outcome: Outcome::Success.as_str().to_owned(),
                source_ip: meta.source_ip.clone(),
                request_id: meta.request_id.clone(),
                details: String::new(),
                prev_hash: None,
                hash: vec![],
            },
            details: Default::default(),
        }
    }

    pub fn org(mut self, org_id: Uuid) -> Self {
        self.row.org_id = Some(org_id);
        self
    }

    /// The acting user (and credential, for a bearer token).
    pub fn by(mut self, principal: &Principal, method: &AuthMethod) -> Self {
        self.row.actor_user_id = Some(principal.user_id);
        self.row.actor = Some(principal.email.clone());
        self.row.credential_id = method.credential_id();
        self
    }

    /// The acting user of an org-scoped request, in that organization's chain.
    pub fn in_ctx(mut self, ctx: &Ctx, email: &str) -> Self {
        self.row.org_id = Some(ctx.org_id);
        self.row.actor_user_id = Some(ctx.user_id);
        self.row.actor = Some(email.to_owned());
        self.row.credential_id = ctx.method.credential_id();
        self
    }

    /// An actor known only by what it claimed (a login name, a client id).
    pub fn claimed_actor(mut self, actor: &str) -> Self {
        self.row.actor = Some(actor.to_owned());
        self
    }

    pub fn actor_user(mut self, user_id: Uuid) -> Self {
        self.row.actor_user_id = Some(user_id);
        self
    }

    pub fn credential(mut self, credential_id: Uuid) -> Self {
        self.row.credential_id = Some(credential_id);
        self
    }

    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.row.target = Some(target.into());
        self
    }

    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.row.outcome = outcome.as_str().to_owned();
        self
    }

    pub fn detail(mut self, key: &str, value: impl Serialize) -> Self {
        self.details.insert(key.to_owned(), serde_json::to_value(value).unwrap_or_default());
        self
    }

    fn finish(mut self, at: OffsetDateTime) -> EventRow {
        self.row.at = at;
        self.row.details = serde_json::Value::Object(self.details).to_string();
        self.row
    }

    /// Appends inside the caller's transaction: the event and the change commit together.
    pub async fn record_in(self, tx: &mut PgConnection, at: OffsetDateTime) -> sqlx::Result<()> {
        append(tx, self.finish(at)).await
    }

    /// Appends in a transaction of its own (for events with no change beside them).
    pub async fn record(self, pool: &PgPool, at: OffsetDateTime) -> sqlx::Result<()> {
        let mut tx = pool.begin().await?;
        append(&mut tx, self.finish(at)).await?;
        tx.commit().await
    }
}
