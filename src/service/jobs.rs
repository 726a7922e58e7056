//! Enqueueing jobs: the one way a change to the data plane is asked for, in the transaction of
//! the change it serves, with a store's one-job-at-a-time rule answered the same everywhere.

use sqlx::PgConnection;

use crate::app::AppState;
use crate::db::jobs::JobRow;
use crate::domain::{Ctx, Error, Result};
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
