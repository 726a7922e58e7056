//! Content for the UI: what can be deployed here.

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::extract::{AppJson, Authenticated};
use crate::provision::catalog::{DeployOptions, VpcSupport};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(deploy_options))
}

/// Vendors and the versions installed on this host, clouds and regions (with whether VPCs can be
/// made there, and why not), instance sizes (with the server settings each stands for), volume
/// sizes and node counts.
#[utoipa::path(
    get, path = "/api/v1/content/deploy-options", tag = "content",
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 200, body = DeployOptions),
    )
)]
async fn deploy_options(State(state): State<AppState>, _user: Authenticated) -> AppJson<DeployOptions> {
    let mut options = state.plane.catalog.options().clone();
    // One driver serves every cloud of the catalog: the host decides for all of them.
    let vpcs = VpcSupport::from(state.plane.driver.networks_available());
    let isolation = state.plane.driver.isolation();
    for cloud in &mut options.clouds {
        cloud.vpcs = vpcs.clone();
        cloud.isolation = isolation.clone();
    }
    AppJson(options)
}
