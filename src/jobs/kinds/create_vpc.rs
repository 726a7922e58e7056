//! `create_vpc`: a VPC's network made.

use super::{JobKind, NoParams, unexpected};
use crate::db::jobs::JobRow;
use crate::jobs::{JobEnv, Step, network};

pub struct CreateVpc;

impl JobKind for CreateVpc {
    const KIND: &'static str = "create_vpc";
    /// Not cancellable: the request already set the VPC's status.
    const CANCELLABLE: bool = false;
    type Params = NoParams;

    async fn run(env: &JobEnv, job: &JobRow, _: &NoParams, step: Step) -> anyhow::Result<()> {
        match step {
            Step::CreateNetwork(vpc) => network::create_network(env, job, vpc).await,
            other => Err(unexpected::<Self>(other)),
        }
    }

    /// The VPC is left `failed`: it can be deleted, which removes whatever was made.
    async fn on_final_failure(env: &JobEnv, job: &JobRow) -> anyhow::Result<()> {
        network::fail_vpc(env, job).await
    }
}
