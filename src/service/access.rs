//! Who may connect to a store: its firewall rules and its database users' host networks, both
//! written into every node's `pg_hba.conf`. One place drives the data plane for it, so a change
//! of either fails the same way.

use crate::app::AppState;
use crate::db;
use crate::domain::{Ctx, Error, NodeState, Result, StoreId};

/// Writes the store's access into every node (but those being removed) and reloads it. The
/// change is saved before: a node that cannot take it now is `Unavailable` (it reads its access
/// when it next starts), never an internal error.
pub async fn apply(state: &AppState, ctx: &Ctx, store_id: StoreId) -> Result<()> {
    let nodes = db::stores::nodes(&state.db, ctx.org_id, &[store_id]).await?;
    for n in nodes.iter().filter(|n| n.state != NodeState::Removing) {
        let Some(spec) =
            state.plane.node_spec(&state.db, ctx.org_id, store_id, n.id, state.clock.now()).await?
        else {
            continue;
        };
        state.plane.driver.apply_access(&spec).await.map_err(|e| {
            tracing::error!(store = %store_id, node = %n.id, error = %format!("{e:#}"), "applying access");
            Error::Unavailable(format!(
                "the change is saved but node {} could not take it now; it is applied when it next starts",
                n.id
            ))
        })?;
    }
    Ok(())
}
