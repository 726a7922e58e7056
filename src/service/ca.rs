//! The organization's certificate authority, which signs its nodes' TLS certificates.

use crate::app::AppState;
use crate::domain::{Ctx, Result};

/// The CA certificate (PEM) of the context's organization, made on first use.
pub async fn certificate(state: &AppState, ctx: &Ctx) -> Result<String> {
    let (pem, _) = state.plane.org_ca(&state.db, ctx.org_id, state.clock.now()).await?;
    Ok(pem)
}
