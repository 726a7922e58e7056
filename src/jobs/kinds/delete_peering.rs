//! `delete_peering`: the firewalls of two VPCs' private stores closed to each other, then their link removed.

use super::{JobKind, NoParams, unexpected};
use crate::db::jobs::JobRow;
use crate::jobs::{JobEnv, Step, network};

pub struct DeletePeering;

impl JobKind for DeletePeering {
    const KIND: &'static str = "delete_peering";
    /// Not cancellable: the request already set the peering's status.
    const CANCELLABLE: bool = false;
    type Params = NoParams;

    async fn run(env: &JobEnv, job: &JobRow, _: &NoParams, step: Step) -> anyhow::Result<()> {
        match step {
            Step::ApplyPeeringAccess(p) => network::apply_peering_access(env, job, p).await,
            Step::DisconnectPeering(p) => network::disconnect_peering(env, job, p).await,
            other => Err(unexpected::<Self>(other)),
        }
    }

    /// The peering is left `failed`: it can be deleted, which removes whatever was made.
    async fn on_final_failure(env: &JobEnv, job: &JobRow) -> anyhow::Result<()> {
        network::fail_peering(env, job).await
    }
}
