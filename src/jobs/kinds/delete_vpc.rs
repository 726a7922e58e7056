//! `delete_vpc`: a VPC's network removed.

use super::{JobKind, NoParams, unexpected};
use crate::db::jobs::JobRow;
use crate::jobs::{JobEnv, Step, network};

pub struct DeleteVpc;

impl JobKind for DeleteVpc {
    const KIND: &'static str = "delete_vpc";
    /// Not cancellable: the request already set the VPC's status.
    const CANCELLABLE: bool = false;
    type Params = NoParams;

    async fn run(env: &JobEnv, job: &JobRow, _: &NoParams, step: Step) -> anyhow::Result<()> {
        match step {
            Step::RemoveNetwork(vpc) => network::remove_network(env, job, vpc).await,
            other => Err(unexpected::<Self>(other)),
        }
    }

    /// The VPC is left `failed`: it can be deleted, which removes whatever was made.
    async fn on_final_failure(env: &JobEnv, job: &JobRow) -> anyhow::Result<()> {
        network::fail_vpc(env, job).await
    }
}
