//! Enqueueing: a job written in the caller's transaction, beside the change it serves, with a
//! store's one-job-at-a-time rule (`jobs_one_active_per_store`) answered in this one place.

use sqlx::{Connection, PgConnection};
use time::OffsetDateTime;

use super::Step;
use super::kinds::{JobKind, NoParams};
use crate::db;
use crate::db::jobs::JobRow;
use crate::domain::{JobId, OrgId, StoreId, UserId};

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct Enqueue<'a> {
    /// The store it changes; none for a VPC's or a peering's.
    pub store_id: Option<StoreId>,
    pub kind: &'a str,
    pub steps: Vec<String>,
    /// What its steps read back.
    pub params: serde_json::Value,
    /// Not before this; at once if none.
    pub run_after: Option<OffsetDateTime>,
}

impl Enqueue<'static> {
    /// A job of kind `K` on a store, with its params and steps.
    pub fn typed<K: JobKind>(store_id: StoreId, params: K::Params, steps: Vec<Step>) -> Self {
        Self::build::<K>(Some(store_id), &params, &steps)
    }

    /// A job of kind `K`, which has no params, on a store.
    pub fn of<K: JobKind<Params = NoParams>>(store_id: StoreId, steps: Vec<Step>) -> Self {
        Self::build::<K>(Some(store_id), &NoParams {}, &steps)
    }

    /// A job of kind `K`, which has no params, on a VPC or a peering.
    pub fn network_of<K: JobKind<Params = NoParams>>(steps: Vec<Step>) -> Self {
        Self::build::<K>(None, &NoParams {}, &steps)
    }

    fn build<K: JobKind>(store_id: Option<StoreId>, params: &K::Params, steps: &[Step]) -> Self {
        // Params are plain structs of ids, strings and times: they always make JSON.
        let params = serde_json::to_value(params).expect("job params serialize to JSON");
        Self { store_id, kind: K::KIND, steps: Step::render_all(steps), params, run_after: None }
    }
}

impl Enqueue<'_> {
    /// The job, to run no sooner than `at` (none: at once).
    pub fn at(self, at: Option<OffsetDateTime>) -> Self {
        Self { run_after: at, ..self }
    }
}

/// Why a job was not enqueued.
#[derive(Debug, thiserror::Error)]
pub enum NotEnqueued {
    /// The store has a job queued or running: this one (read after the refusal; none if it
    /// ended meanwhile).
    #[error("a job is in progress on the store")]
    Blocked(Option<Box<JobRow>>),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Enqueues `job` in the caller's transaction, for `org_id`, as `created_by` (none for Berth's
/// own, such as scheduled backups). A store with a job in progress refuses it with
/// [`NotEnqueued::Blocked`]; the caller's transaction stays usable either way (the insert runs
/// in a savepoint).
pub async fn enqueue(
    tx: &mut PgConnection,
    org_id: OrgId,
    created_by: Option<UserId>,
    now: OffsetDateTime,
    job: Enqueue<'_>,
) -> Result<JobRow, NotEnqueued> {
    let id = JobId::new();
    let new = db::jobs::NewJob {
        id,
        store_id: job.store_id,
        kind: job.kind,
        params: job.params,
        steps: &job.steps,
        created_by,
        now,
        run_after: job.run_after,
    };
    // A failover runs beside whatever job it found; nothing new starts beside it.
    if let (Some(store_id), false) = (job.store_id, job.kind == super::kinds::Failover::KIND) {
        if let Some(active) = db::jobs::active_for_store(&mut *tx, org_id, store_id).await? {
            if active.kind == super::kinds::Failover::KIND {
                return Err(NotEnqueued::Blocked(Some(Box::new(active))));
            }
        }
    }
    let mut sp = tx.begin().await?;
    match db::jobs::insert(&mut *sp, org_id, new).await {
        Ok(()) => sp.commit().await?,
        Err(sqlx::Error::Database(d))
            if matches!(
                d.constraint(),
                Some("jobs_one_active_per_store" | "jobs_one_failover_per_store")
            ) =>
        {
            sp.rollback().await?;
            let active = match job.store_id {
                Some(store_id) => db::jobs::active_for_store(&mut *tx, org_id, store_id).await?,
                None => None,
            };
            return Err(NotEnqueued::Blocked(active.map(Box::new)));
        }
        Err(e) => return Err(e.into()),
    }
    db::jobs::get_in_org(&mut *tx, org_id, id).await?.ok_or(NotEnqueued::Db(sqlx::Error::RowNotFound))
}
