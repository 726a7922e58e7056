//! Content for the UI: what can be deployed here.

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::error::Problem;
use crate::http::extract::{AppJson, Authenticated};
use crate::provision::catalog::DeployOptions;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(deploy_options))
}

/// Vendors and the versions installed on this host, clouds and regions, instance sizes (with
/// the server settings each stands for), volume sizes and node counts.
#[utoipa::path(
    get, path = "/api/v1/content/deploy-options", tag = "content",
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 200, body = DeployOptions),
        (status = 401, description = "Not authenticated", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn deploy_options(State(state): State<AppState>, _user: Authenticated) -> AppJson<DeployOptions> {
    AppJson(state.plane.catalog.options().clone())
}
