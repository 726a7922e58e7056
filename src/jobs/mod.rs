//! Durable jobs: rows in `jobs`, written in the same transaction as the change they serve,
//! claimed by workers with `for update skip locked` under a lease, heartbeated, retried with
//! backoff, and made of idempotent steps, so that a crash anywhere only repeats a step.
//!
//! - [`enqueue`] (in `queue.rs`) writes a job, or names the job that blocks it;
//! - [`kinds`]: one module per kind of job, declaring its params, its steps, whether it may be
//!   cancelled and how that is undone, and what its failure leaves; [`kinds::of`] maps the
//!   stored kind text to it, in one place;
//! - [`Step`] (in `step.rs`): a step, read from and written to its stored text in one place,
//!   with what a crash does to it and how long it may take;
//! - `steps/` and [`network`]: what each step does;
//! - [`worker`]: claims jobs and walks their steps, asking the kind to run each;
//! - [`monitor`]: the failover monitor, run by one Berth instance at a time.

pub mod ha;
pub mod kinds;
pub mod monitor;
pub mod network;
mod queue;
pub mod reconcile;
pub mod schedule;
mod spec;
pub mod stats;
pub mod step;
mod steps;
pub mod worker;

use std::sync::Arc;

use crate::clock::Clock;
use crate::db;

pub use self::kinds::JobKind;
pub use self::queue::{Enqueue, NotEnqueued, enqueue};
pub use self::step::Step;
pub use crate::provision::DataPlane;

/// A step's refusal for good: the job fails at once instead of spending its other attempts
/// (a switchover whose candidate did not receive the old primary's last WAL: the old primary
/// was started again as the primary, and another try would only stop it again).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Abort(pub String);

/// Picks `n` ports of the plane's range that no node row holds and nothing listens on, under a
/// transaction-scoped lock so that two requests cannot pick the same. A range used up is the
/// operator's capacity running out, not a fault of the request: `capacity_exhausted` (503).
pub async fn allocate_ports(
    tx: &mut sqlx::PgConnection,
    range: std::ops::RangeInclusive<u16>,
    n: usize,
) -> crate::domain::Result<Vec<u16>> {
    sqlx::query("select pg_advisory_xact_lock(hashtext('berth.ports'))").execute(&mut *tx).await?;
    let used: std::collections::HashSet<i32> = db::stores::used_ports(&mut *tx).await?.into_iter().collect();
    let mut out = Vec::with_capacity(n);
    for port in range {
        if out.len() == n {
            break;
        }
        if used.contains(&i32::from(port)) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            out.push(port);
        }
    }
    if out.len() < n {
        tracing::warn!(
            wanted = n,
            free = out.len(),
            "no free port left for store nodes; widen BERTH_NODE_PORTS"
        );
        return Err(crate::domain::Error::CapacityExhausted(format!(
            "this Berth has {} free node port(s) and the request needs {n}; try again later, or ask the operator for more",
            out.len()
        )));
    }
    Ok(out)
}

/// Everything a worker needs.
#[derive(Debug, Clone)]
pub struct JobEnv {
    pub db: sqlx::PgPool,
    pub plane: DataPlane,
    pub clock: Arc<dyn Clock>,
}

/// Undoes what the request that enqueued a job did beside it, for a job cancelled before its
/// first step: nothing had reached the host yet. What that is, the job's kind says.
pub async fn undo_cancelled(
    tx: &mut sqlx::PgConnection,
    job: &db::jobs::JobRow,
    now: time::OffsetDateTime,
) -> anyhow::Result<()> {
    kinds::of(&job.kind).undo_cancelled(tx, job, now).await
}

/// Kinds whose request changed nothing that cancelling could not undo.
pub fn cancellable(kind: &str) -> bool {
    kinds::of(kind).cancellable()
}
