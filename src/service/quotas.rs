//! The organization's quotas and what it uses of them (the operator sets them).

use crate::app::AppState;
use crate::db;
use crate::domain::{Ctx, Result};
use crate::quota::{self, Quota};

/// One quota: the most the organization may have (the operator's default or its own), and what
/// it has now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    pub quota: Quota,
    pub limit: i64,
    pub usage: i64,
}

/// Every quota of the context's organization, with its usage.
pub async fn list(state: &AppState, ctx: &Ctx) -> Result<Vec<Standing>> {
    let limits = quota::limits(&state.db, &state.plane.quotas, ctx.org_id).await?;
    let usage = db::quotas::usage(&state.db, ctx.org_id).await?;
    Ok(Quota::ALL
        .iter()
        .map(|&q| Standing { quota: q, limit: limits.limit(q), usage: usage.of(q) })
        .collect())
}
