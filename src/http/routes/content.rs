//! Content for the UI: what can be deployed here.

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::extract::{AppJson, Authenticated};
use crate::service::system::{self, DeployOptions};

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
    AppJson(system::deploy_options(&state))
}
