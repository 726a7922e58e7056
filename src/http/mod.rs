//! The HTTP API: one router per resource, all of it described in the OpenAPI document.

pub mod extract;
pub mod middleware;
pub mod openapi;
pub mod routes;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;

pub fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(routes::system::router())
        .merge(routes::auth::router())
        .merge(routes::users::router())
        .merge(routes::orgs::router())
        .merge(routes::quotas::router())
        .merge(routes::invitations::router())
        .merge(routes::oauth2::router())
        .merge(routes::credentials::router())
        .merge(routes::audit::router())
        .merge(routes::content::router())
        .merge(routes::stores::router())
        .merge(routes::jobs::router())
        .merge(routes::firewall::router())
        .merge(routes::dbs::router())
        .merge(routes::ca::router())
        .merge(routes::parameters::router())
        .merge(routes::stats::router())
        .merge(routes::backups::router())
        .merge(routes::vpcs::router())
}

/// The OpenAPI document as served at `/api/openapi.json` and committed in `openapi/openapi.json`.
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    api_router().into_openapi()
}
