//! The audit trail: who did what, to what, from where, with what outcome. Events are appended
//! to a per-organization hash chain (see `db::audit`), so tampering with history is detectable.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::db::audit::{EventRow, append};
use crate::domain::{AuthMethod, CredentialId, Ctx, OrgId, Principal, UserId};

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

    pub fn org(mut self, org_id: OrgId) -> Self {
        self.row.org_id = Some(org_id);
        self
    }

    /// The acting user (and credential, for a bearer token).
    pub fn by(mut self, principal: &Principal, method: &AuthMethod) -> Self {
        self.row.actor_user_id = Some(principal.user_id.into());
        self.row.actor = Some(principal.email.clone());
        self.row.credential_id = method.credential_id().map(Into::into);
        self
    }

    /// The acting user of an org-scoped request, in that organization's chain.
    pub fn in_ctx(mut self, ctx: &Ctx, email: &str) -> Self {
        self.row.org_id = Some(ctx.org_id);
        self.row.actor_user_id = Some(ctx.user_id.into());
        self.row.actor = Some(email.to_owned());
        self.row.credential_id = ctx.method.credential_id().map(Into::into);
        self
    }

    /// An actor known only by what it claimed (a login name, a client id).
    pub fn claimed_actor(mut self, actor: &str) -> Self {
        self.row.actor = Some(actor.to_owned());
        self
    }

    pub fn actor_user(mut self, user_id: UserId) -> Self {
        self.row.actor_user_id = Some(user_id.into());
        self
    }

    pub fn credential(mut self, credential_id: CredentialId) -> Self {
        self.row.credential_id = Some(credential_id.into());
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

    /// Counts the event in `refusals`, to be appended later as one event for its minute: for
    /// refusals anyone can repeat at will (garbage tokens, unknown clients, throttled attempts),
    /// which appended one by one would each take a connection and the chain's lock.
    pub fn tally(self, refusals: &Refusals, at: OffsetDateTime) {
        refusals.count(self.finish(at));
    }
}

/// The most buckets [`Refusals`] keeps apart; beyond them, refusals of a new subject are counted
/// together, so a flood of made-up subjects cannot grow the map.
const MAX_BUCKETS: usize = 10_000;

/// Refused authentications counted in memory, per minute and per everything their events say
/// but the request id, and appended by [`Refusals::flush`] as one event per bucket with its
/// `count`: a flood of them costs a map entry, not a write each.
#[derive(Debug, Clone, Default)]
pub struct Refusals {
    buckets: Arc<Mutex<HashMap<Bucket, Tally>>>,
}

/// What one aggregated event stands for: the event's fields (its time and request id blanked)
/// and its minute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Bucket {
    minute: i64,
    org_id: Option<OrgId>,
    actor_user_id: Option<Uuid>,
    actor: Option<String>,
    credential_id: Option<Uuid>,
    action: String,
    target: Option<String>,
    outcome: String,
    source_ip: Option<String>,
    details: String,
}

#[derive(Debug, Clone)]
struct Tally {
    count: u64,
    first: OffsetDateTime,
    last: OffsetDateTime,
    /// The first request's id, for finding one of them in the logs.
    request_id: Option<String>,
}

impl Bucket {
    fn of(row: EventRow) -> (Self, Tally) {
        let bucket = Self {
            minute: row.at.unix_timestamp().div_euclid(60),
            org_id: row.org_id,
            actor_user_id: row.actor_user_id,
            actor: row.actor,
            credential_id: row.credential_id,
            action: row.action,
            target: row.target,
            outcome: row.outcome,
            source_ip: row.source_ip,
            details: row.details,
        };
        (bucket, Tally { count: 1, first: row.at, last: row.at, request_id: row.request_id })
    }

    /// Where refusals go once [`MAX_BUCKETS`] are kept: the system chain, no subject.
    fn overflow(&self) -> Self {
        Self {
            minute: self.minute,
            org_id: None,
            actor_user_id: None,
            actor: None,
            credential_id: None,
            action: self.action.clone(),
            target: None,
            outcome: self.outcome.clone(),
            source_ip: None,
            details: serde_json::json!({"reason": "refusals of more subjects than are told apart"})
                .to_string(),
        }
    }

    fn into_event(self, tally: &Tally) -> (Event, OffsetDateTime) {
        let details = serde_json::from_str(&self.details).unwrap_or_default();
        let mut ev = Event {
            row: EventRow {
                id: 0,
                org_id: self.org_id,
                at: tally.last,
                actor_user_id: self.actor_user_id,
                actor: self.actor,
                credential_id: self.credential_id,
                action: self.action,
                target: self.target,
                outcome: self.outcome,
                source_ip: self.source_ip,
                request_id: tally.request_id.clone(),
                details: String::new(),
                prev_hash: None,
                hash: vec![],
            },
            details,
        };
        ev = ev.detail("count", tally.count).detail("first_at", tally.first.unix_timestamp());
        (ev, tally.last)
    }
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.count += other.count;
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
        if self.request_id.is_none() {
            self.request_id.clone_from(&other.request_id);
        }
    }
}

impl Refusals {
    fn count(&self, row: EventRow) {
        let (bucket, tally) = Bucket::of(row);
        self.merge(bucket, &tally);
    }

    fn merge(&self, bucket: Bucket, tally: &Tally) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = if buckets.len() >= MAX_BUCKETS && !buckets.contains_key(&bucket) {
            bucket.overflow()
        } else {
            bucket
        };
        match buckets.get_mut(&bucket) {
            Some(t) => t.add(tally),
            None => {
                buckets.insert(bucket, tally.clone());
            }
        }
    }

    /// Appends one event for each bucket of a minute that ended by `before`, with how many
    /// refusals it counts (`count`) and when the first was (`first_at`); the event's time is the
    /// last one's. What cannot be written now is kept for the next flush.
    pub async fn flush(&self, pool: &PgPool, before: OffsetDateTime) -> sqlx::Result<usize> {
        let until = before.unix_timestamp().div_euclid(60);
        let due: Vec<(Bucket, Tally)> = {
            let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
            let keys: Vec<Bucket> = buckets.keys().filter(|b| b.minute < until).cloned().collect();
            keys.into_iter().filter_map(|k| buckets.remove_entry(&k)).collect()
        };
        let mut written = 0;
        let mut pending = due.into_iter();
        while let Some((bucket, tally)) = pending.next() {
            let (ev, at) = bucket.clone().into_event(&tally);
            if let Err(e) = ev.record(pool, at).await {
                self.merge(bucket, &tally);
                for (b, t) in pending {
                    self.merge(b, &t);
                }
                return Err(e);
            }
            written += 1;
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_of_one_subject_and_minute_share_a_bucket_and_new_subjects_stop_growing_the_map() {
        let refusals = Refusals::default();
        let at = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let meta = RequestMeta::default();
        for s in [0, 10, 59] {
            Event::new("token.refused", &meta)
                .claimed_actor("brc_a")
                .tally(&refusals, at + time::Duration::seconds(s));
        }
        Event::new("token.refused", &meta)
            .claimed_actor("brc_a")
            .tally(&refusals, at + time::Duration::seconds(60));
        {
            let buckets = refusals.buckets.lock().unwrap();
            assert_eq!(buckets.len(), 2, "one per minute");
            assert!(buckets.values().any(|t| t.count == 3));
        }
        for i in 0..MAX_BUCKETS + 500 {
            Event::new("token.refused", &meta).claimed_actor(&format!("brc_{i}")).tally(&refusals, at);
        }
        let buckets = refusals.buckets.lock().unwrap();
        assert_eq!(buckets.len(), MAX_BUCKETS + 1, "the ones kept apart and the overflow");
        let overflow: u64 = buckets.iter().filter(|(b, _)| b.actor.is_none()).map(|(_, t)| t.count).sum();
        assert_eq!(overflow, 502, "what did not fit, counted together");
    }
}
