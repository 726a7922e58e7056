//! Enqueueing jobs: the one way a change to the data plane is asked for, in the transaction of
//! the change it serves, with a store's one-job-at-a-time rule answered the same everywhere.

use sqlx::PgConnection;
use uuid::Uuid;

use crate::app::AppState;
use crate::db;
use crate::db::jobs::JobRow;
use crate::domain::{Ctx, Error, Result};

/// A job to enqueue.
pub struct Enqueue<'a> {
    /// The store it changes; none for a VPC's or a peering's.
    pub store_id: Option<Uuid>,
    pub kind: &'a str,
    pub steps: Vec<String>,
    /// What its steps read back.
    pub params: serde_json::Value,
}

impl<'a> Enqueue<'a> {
    /// A job of a store, without parameters.
    pub fn store(store_id: Uuid, kind: &'a str, steps: Vec<String>) -> Self {
        Self { store_id: Some(store_id), kind, steps, params: serde_json::json!({}) }
    }

    /// A job of a VPC or a peering.
    pub fn network(kind: &'a str, steps: Vec<String>) -> Self {
        Self { store_id: None, kind, steps, params: serde_json::json!({}) }
    }

    pub fn with_params(self, params: serde_json::Value) -> Self {
        Self { params, ..self }
    }
}

/// Enqueues `job` in the caller's transaction, as the context's user; a store with a job in
/// progress refuses it with [`busy`] naming that job (read outside it: the transaction is aborted).
pub async fn enqueue(tx: &mut PgConnection, state: &AppState, ctx: &Ctx, job: Enqueue<'_>) -> Result<JobRow> {
    let now = state.clock.now();
    let id = Uuid::now_v7();
    let insert = db::jobs::insert(
        &mut *tx,
        ctx.org_id,
        db::jobs::NewJob {
            id,
            store_id: job.store_id,
            kind: job.kind,
            params: job.params,
            steps: &job.steps,
            created_by: Some(ctx.user_id),
            now,
        },
    )
    .await;
    if let Err(e) = insert {
        let busy_store =
            matches!(&e, sqlx::Error::Database(d) if d.constraint() == Some("jobs_one_active_per_store"));
        if let (true, Some(store_id)) = (busy_store, job.store_id) {
            let active = db::jobs::active_for_store(&state.db, ctx.org_id, store_id).await?;
            return Err(busy(active.as_ref()));
        }
        return Err(e.into());
    }
    db::jobs::get(&mut *tx, ctx, id).await?.ok_or_else(|| anyhow::anyhow!("job vanished").into())
}

/// 409 naming the job in progress on a store (or just saying one is).
pub fn busy(active: Option<&JobRow>) -> Error {
    let what =
        active.map_or_else(|| "a job".to_owned(), |j| format!("job {} ({}, {})", j.id, j.kind, j.status));
    Error::conflict("job_in_progress", format!("{what} is in progress on this store; wait for it to finish"))
}
