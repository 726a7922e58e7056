//! Jobs: enqueueing them (the one way a change to the data plane is asked for, in the
//! transaction of the change it serves, with a store's one-job-at-a-time rule answered the same
//! everywhere), reading them, and cancelling one that has not started.

use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::{Event, RequestMeta};
use crate::db;
use crate::db::jobs::{JobRow, LogRow};
use crate::domain::{Ctx, Error, JobId, JobStatus, Result, StoreId};
use crate::jobs::{self, NotEnqueued};

pub use crate::jobs::Enqueue;

/// Enqueues `job` in the caller's transaction, as the context's user; a store with a job in
/// progress refuses it with [`busy`] naming that job.
pub async fn enqueue(tx: &mut PgConnection, state: &AppState, ctx: &Ctx, job: Enqueue<'_>) -> Result<JobRow> {
    match jobs::enqueue(tx, ctx.org_id, Some(ctx.user_id), state.clock.now(), job).await {
        Ok(job) => Ok(job),
        Err(NotEnqueued::Blocked(active)) => Err(busy(active.as_deref())),
        Err(NotEnqueued::Db(e)) => Err(e.into()),
    }
}

/// 409 naming the job in progress on a store (or just saying one is).
pub fn busy(active: Option<&JobRow>) -> Error {
    let what =
        active.map_or_else(|| "a job".to_owned(), |j| format!("job {} ({}, {})", j.id, j.kind, j.status));
    Error::conflict("job_in_progress", format!("{what} is in progress on this store; wait for it to finish"))
}

/// Where a page of a list ordered by creation starts, and how many rows to read.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// The creation time and id of the previous page's last row.
    pub after: Option<(OffsetDateTime, Uuid)>,
    /// One more than the page, to know whether another follows.
    pub fetch: i64,
}

/// The organization's jobs (of one of its stores, if given: 404 for none), newest first.
pub async fn list(state: &AppState, ctx: &Ctx, store_id: Option<StoreId>, page: Page) -> Result<Vec<JobRow>> {
    if let Some(store_id) = store_id {
        db::stores::get(&state.db, ctx, store_id).await?.ok_or(Error::NotFound("store"))?;
    }
    Ok(db::jobs::list(&state.db, ctx, store_id, page.after, page.fetch).await?)
}

/// One job of the organization, with its log.
pub async fn get(state: &AppState, ctx: &Ctx, job_id: JobId) -> Result<(JobRow, Vec<LogRow>)> {
    let job = db::jobs::get(&state.db, ctx, job_id).await?.ok_or(Error::NotFound("job"))?;
    let log = db::jobs::logs(&state.db, ctx, job_id).await?;
    Ok((job, log))
}

/// A job of kind `kind` may be cancelled at all (its kind says).
pub fn cancellable(kind: &str) -> Result<()> {
    if jobs::cancellable(kind) {
        Ok(())
    } else {
        Err(Error::conflict("not_cancellable", format!("a {kind} job cannot be cancelled")))
    }
}

/// Why `job`, of a cancellable kind, could not be cancelled: it has started, ended, or already
/// acted on the host in a failed attempt.
pub fn not_cancellable(job: &JobRow) -> Error {
    let why = if job.status == JobStatus::Queued && job.attempts > 0 {
        // Its failed attempt may have made servers or folders that only its retry finishes or
        // its own failure handling removes: cancelling now would leave them orphaned.
        format!(
            "the job's attempt {} already acted on the host and failed; it will be retried \
             (see its error), and cannot be cancelled half-done",
            job.attempts
        )
    } else {
        format!(
            "the job is {} at step {}; only a job that has not started can be cancelled",
            job.status, job.step
        )
    };
    Error::conflict("not_cancellable", why)
}

/// Cancels a job that has not started yet, undoing what its request did beside it (its kind
/// says what); a job that has begun, or whose first attempt failed, runs to its end.
pub async fn cancel(
    state: &AppState,
    meta: &RequestMeta,
    ctx: &Ctx,
    actor: &str,
    job_id: JobId,
) -> Result<JobRow> {
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let found = db::jobs::get(&mut *tx, ctx, job_id).await?.ok_or(Error::NotFound("job"))?;
    cancellable(&found.kind)?;
    let Some(job) = db::jobs::cancel_queued(&mut *tx, ctx, job_id, now).await? else {
        let job = db::jobs::get(&mut *tx, ctx, job_id).await?.ok_or(Error::NotFound("job"))?;
        return Err(not_cancellable(&job));
    };
    jobs::undo_cancelled(&mut tx, &job, now).await?;
    Event::new("job.cancelled", meta)
        .in_ctx(ctx, actor)
        .target(format!("job:{job_id}"))
        .detail("kind", &job.kind)
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    Ok(job)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::JobKind;

    fn job(kind: &str, status: JobStatus, step: i32, attempts: i32) -> JobRow {
        let at = OffsetDateTime::UNIX_EPOCH;
        JobRow {
            id: JobId(Uuid::nil()),
            org_id: crate::domain::OrgId(Uuid::nil()),
            store_id: None,
            kind: kind.into(),
            status,
            params: serde_json::Value::Null,
            steps: vec![],
            step,
            attempts,
            max_attempts: 5,
            run_after: at,
            locked_by: None,
            locked_until: None,
            cancel_requested: false,
            error: None,
            created_by: None,
            created_at: at,
            started_at: None,
            finished_at: None,
            updated_at: at,
        }
    }

    fn detail(e: Error) -> String {
        match e {
            Error::Conflict { code: "not_cancellable", detail } => detail,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_kinds_that_can_be_undone_are_cancellable() {
        assert!(cancellable(jobs::kinds::Noop::KIND).is_ok());
        let refused = detail(cancellable(jobs::kinds::CreateVpc::KIND).unwrap_err());
        assert_eq!(refused, "a create_vpc job cannot be cancelled");
    }

    #[test]
    fn a_refusal_says_whether_the_job_started_or_already_failed_once() {
        let retried = detail(not_cancellable(&job(jobs::kinds::Noop::KIND, JobStatus::Queued, 0, 2)));
        assert!(retried.contains("attempt 2 already acted on the host"), "{retried}");
        let running = detail(not_cancellable(&job(jobs::kinds::Noop::KIND, JobStatus::Running, 1, 1)));
        assert!(running.contains("is running at step 1"), "{running}");
    }
}
