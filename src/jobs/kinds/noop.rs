//! `noop`: does nothing, for measuring the queue itself.

use super::{JobKind, NoParams, unexpected};
use crate::db::jobs::JobRow;
use crate::jobs::{JobEnv, Step};

pub struct Noop;

impl JobKind for Noop {
    const KIND: &'static str = "noop";
    /// Nothing to undo.
    const CANCELLABLE: bool = true;
    /// Its thousands of runs would flood the log.
    const LOGGED: bool = false;
    type Params = NoParams;

    async fn run(_: &JobEnv, _: &JobRow, _: &NoParams, step: Step) -> anyhow::Result<()> {
        match step {
            Step::Noop => Ok(()),
            other => Err(unexpected::<Self>(other)),
        }
    }
}
