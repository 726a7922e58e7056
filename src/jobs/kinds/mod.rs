//! The kinds of job, one module each: its params, the steps it runs, whether it may be
//! cancelled and how that is undone, what its failure for good leaves, and its timeouts.
//!
//! [`of`] is the one place that reads a job's kind text: the worker and the routes ask it for
//! the kind's [`Kind`] and know nothing of kinds themselves.

pub mod add_node;
pub mod apply_ha;
pub mod apply_parameters;
pub mod backup;
pub mod create_peering;
pub mod create_store;
pub mod create_vpc;
pub mod delete_peering;
pub mod delete_store;
pub mod delete_vpc;
pub mod failover;
pub mod noop;
pub mod reinitialize_node;
pub mod remove_node;
pub mod repair_store;
pub mod resize_store;
pub mod restart_node;
pub mod restore;
pub mod rolling_restart;
pub mod start_node;
pub mod stop_node;
pub mod switchover;

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::PgConnection;
use time::OffsetDateTime;

pub use self::add_node::AddNode;
pub use self::apply_ha::ApplyHa;
pub use self::apply_parameters::ApplyParameters;
pub use self::backup::{Backup, BackupParams, BackupSource};
pub use self::create_peering::CreatePeering;
pub use self::create_store::{CreateStore, CreateStoreParams, RestoreFrom};
pub use self::create_vpc::CreateVpc;
pub use self::delete_peering::DeletePeering;
pub use self::delete_store::DeleteStore;
pub use self::delete_vpc::DeleteVpc;
pub use self::failover::{Failover, FailoverParams};
pub use self::noop::Noop;
pub use self::reinitialize_node::ReinitializeNode;
pub use self::remove_node::RemoveNode;
pub use self::repair_store::RepairStore;
pub use self::resize_store::ResizeStore;
pub use self::restart_node::RestartNode;
pub use self::restore::{Restore, RestoreParams};
pub use self::rolling_restart::RollingRestart;
pub use self::start_node::StartNode;
pub use self::stop_node::StopNode;
pub use self::switchover::{Switchover, SwitchoverParams};
use super::{JobEnv, Step};
use crate::db;
use crate::db::jobs::JobRow;
use crate::domain::StoreStatus;

/// One kind of job, as its module declares it.
pub trait JobKind: Send + Sync + 'static {
    /// The kind as stored in `jobs.kind`.
    const KIND: &'static str;
    /// May a job of this kind be cancelled before its first step? Only when its request changed
    /// nothing that [`JobKind::undo_cancelled`] cannot undo.
    const CANCELLABLE: bool;
    /// Does the job write its progress to its log? (A no-op job, for measuring the queue, does
    /// not.)
    const LOGGED: bool = true;
    /// Does the job stop a store's nodes on purpose (a restart, a restore, a switchover)? The
    /// failover monitor leaves the store alone while it runs.
    const STOPS_NODES: bool = false;
    /// What its steps read, stored as `jobs.params` (JSON).
    type Params: Serialize + DeserializeOwned + Send + Sync;

    /// Runs one of its steps.
    fn run(
        env: &JobEnv,
        job: &JobRow,
        params: &Self::Params,
        step: Step,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Undoes what the request that enqueued the job did beside it, for a job cancelled before
    /// its first step (nothing had reached the host yet); by default the store's status settles
    /// from its nodes'.
    fn undo_cancelled(
        tx: &mut PgConnection,
        job: &JobRow,
        now: OffsetDateTime,
    ) -> impl Future<Output = anyhow::Result<()>> + Send {
        settle(tx, job, now)
    }

    /// What the job leaves behind once it has failed for good: never a store stuck in a
    /// transitional state. By default the store is `degraded`.
    fn on_final_failure(env: &JobEnv, job: &JobRow) -> impl Future<Output = anyhow::Result<()>> + Send {
        store_status(env, job, StoreStatus::Degraded)
    }

    /// The longest one of its steps may take.
    fn timeout(step: &Step) -> Duration {
        step.timeout()
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Params of a kind that needs none: `{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NoParams {}

/// A kind whatever its params: what the worker and the routes hold.
pub trait Kind: Send + Sync {
    fn name(&self) -> &'static str;
    fn cancellable(&self) -> bool;
    fn logged(&self) -> bool;
    fn stops_nodes(&self) -> bool;
    fn timeout(&self, step: &Step) -> Duration;
    /// Runs `step` of `job`, with the job's params read as the kind's.
    fn run<'a>(&'a self, env: &'a JobEnv, job: &'a JobRow, step: Step) -> BoxFuture<'a, anyhow::Result<()>>;
    fn undo_cancelled<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        job: &'a JobRow,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
    fn on_final_failure<'a>(&'a self, env: &'a JobEnv, job: &'a JobRow) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// The kind `job` is, or [`Unknown`]: the one `match` on the kind text.
pub fn of(kind: &str) -> &'static dyn Kind {
    match kind {
        CreateStore::KIND => Registered::<CreateStore>::IT,
        DeleteStore::KIND => Registered::<DeleteStore>::IT,
        AddNode::KIND => Registered::<AddNode>::IT,
        RemoveNode::KIND => Registered::<RemoveNode>::IT,
        RestartNode::KIND => Registered::<RestartNode>::IT,
        StopNode::KIND => Registered::<StopNode>::IT,
        StartNode::KIND => Registered::<StartNode>::IT,
        ReinitializeNode::KIND => Registered::<ReinitializeNode>::IT,
        RepairStore::KIND => Registered::<RepairStore>::IT,
        ResizeStore::KIND => Registered::<ResizeStore>::IT,
        ApplyParameters::KIND => Registered::<ApplyParameters>::IT,
        Backup::KIND => Registered::<Backup>::IT,
        Restore::KIND => Registered::<Restore>::IT,
        CreateVpc::KIND => Registered::<CreateVpc>::IT,
        DeleteVpc::KIND => Registered::<DeleteVpc>::IT,
        CreatePeering::KIND => Registered::<CreatePeering>::IT,
        DeletePeering::KIND => Registered::<DeletePeering>::IT,
        Noop::KIND => Registered::<Noop>::IT,
        Switchover::KIND => Registered::<Switchover>::IT,
        Failover::KIND => Registered::<Failover>::IT,
        ApplyHa::KIND => Registered::<ApplyHa>::IT,
        RollingRestart::KIND => Registered::<RollingRestart>::IT,
        _ => Registered::<Unknown>::IT,
    }
}

struct Registered<K>(PhantomData<fn() -> K>);

impl<K: JobKind> Registered<K> {
    const IT: &'static dyn Kind = &Registered::<K>(PhantomData);
}

impl<K: JobKind> Kind for Registered<K> {
    fn name(&self) -> &'static str {
        K::KIND
    }

    fn cancellable(&self) -> bool {
        K::CANCELLABLE
    }

    fn logged(&self) -> bool {
        K::LOGGED
    }

    fn stops_nodes(&self) -> bool {
        K::STOPS_NODES
    }

    fn timeout(&self, step: &Step) -> Duration {
        K::timeout(step)
    }

    fn run<'a>(&'a self, env: &'a JobEnv, job: &'a JobRow, step: Step) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let params =
                <K::Params as serde::Deserialize>::deserialize(&job.params).context("the job's params")?;
            K::run(env, job, &params, step).await
        })
    }

    fn undo_cancelled<'a>(
        &'a self,
        tx: &'a mut PgConnection,
        job: &'a JobRow,
        now: OffsetDateTime,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(K::undo_cancelled(tx, job, now))
    }

    fn on_final_failure<'a>(&'a self, env: &'a JobEnv, job: &'a JobRow) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(K::on_final_failure(env, job))
    }
}

/// A kind this Berth does not know (a row written by a newer one): its steps fail, and it may
/// be cancelled, its store settled.
pub struct Unknown;

impl JobKind for Unknown {
    const KIND: &'static str = "";
    const CANCELLABLE: bool = true;
    type Params = serde_json::Value;

    async fn run(_: &JobEnv, job: &JobRow, _: &serde_json::Value, step: Step) -> anyhow::Result<()> {
        anyhow::bail!("unknown job kind {}: cannot run step {step}", job.kind)
    }
}

/// The error of a step its kind does not run.
fn unexpected<K: JobKind>(step: Step) -> anyhow::Error {
    anyhow::anyhow!("a {} job has no step {step}", K::KIND)
}

/// The job's steps that parse (a kind's undo and failure handling pass over any other).
fn steps(job: &JobRow) -> impl Iterator<Item = Step> + '_ {
    job.steps.iter().filter_map(|s| Step::parse(s).ok())
}

/// The store's status settled from its nodes'.
async fn settle(tx: &mut PgConnection, job: &JobRow, now: OffsetDateTime) -> anyhow::Result<()> {
    if let Some(store_id) = job.store_id {
        db::stores::settle(&mut *tx, job.org_id, store_id, now).await?;
    }
    Ok(())
}

/// The store's status set to `status`.
async fn store_status(env: &JobEnv, job: &JobRow, status: StoreStatus) -> anyhow::Result<()> {
    if let Some(store_id) = job.store_id {
        db::stores::set_status(&env.db, job.org_id, store_id, status, env.clock.now()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
