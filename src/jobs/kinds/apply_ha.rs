//! `apply_ha`: a new synchronous mode written into the primary's configuration and reloaded.

use super::{JobKind, NoParams, unexpected};
use crate::db::jobs::JobRow;
use crate::jobs::steps::ha;
use crate::jobs::{JobEnv, Step};

pub struct ApplyHa;

impl JobKind for ApplyHa {
    const KIND: &'static str = "apply_ha";
    /// The settings stay as the PATCH wrote them; the primary takes them at its next start.
    const CANCELLABLE: bool = true;
    type Params = NoParams;

    async fn run(env: &JobEnv, job: &JobRow, _: &NoParams, step: Step) -> anyhow::Result<()> {
        match step {
            Step::Reconfigure(node) => ha::reconfigure(env, job, node).await,
            other => Err(unexpected::<Self>(other)),
        }
    }
}
