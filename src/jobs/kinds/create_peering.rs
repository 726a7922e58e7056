//! `create_peering`: two VPCs linked, then the firewalls of their private stores opened to each other.

use super::{JobKind, NoParams, unexpected};
use crate::db::jobs::JobRow;
use crate::jobs::{JobEnv, Step, network};

pub struct CreatePeering;

impl JobKind for CreatePeering {
    const KIND: &'static str = "create_peering";
    /// Not cancellable: the request already set the peering's status.
    const CANCELLABLE: bool = false;
    type Params = NoParams;

    async fn run(env: &JobEnv, job: &JobRow, _: &NoParams, step: Step) -> anyhow::Result<()> {
        match step {
            Step::ConnectPeering(p) => network::connect_peering(env, job, p).await,
            Step::ApplyPeeringAccess(p) => network::apply_peering_access(env, job, p).await,
            other => Err(unexpected::<Self>(other)),
        }
    }

    /// The peering is left `failed`: it can be deleted, which removes whatever was made.
    async fn on_final_failure(env: &JobEnv, job: &JobRow) -> anyhow::Result<()> {
        network::fail_peering(env, job).await
    }
}
