//! The HTTP API: one router per resource, all of it described in the OpenAPI document.

pub mod extract;
pub mod middleware;
pub mod openapi;
pub mod page;
pub mod respond;
pub mod rfc6749;
mod router;
pub mod routes;
pub mod views;

pub use router::build_router;

use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;

/// The API's routes and the OpenAPI document that describes them, complete: every operation
/// with the problems its shape answers ([`openapi::document_problems`]), every string with the
/// characters it may not hold ([`openapi::document_no_nul`]).
pub fn api() -> (Router<AppState>, serde_json::Value) {
    let (router, mut doc) = api_router().split_for_parts();
    openapi::document_problems(&mut doc);
    let mut doc = serde_json::to_value(doc).expect("an OpenAPI document serializes");
    openapi::document_no_nul(&mut doc);
    (router, doc)
}

fn api_router() -> OpenApiRouter<AppState> {
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
        .merge(routes::nodes::router())
        .merge(routes::jobs::router())
        .merge(routes::ha::router())
        .merge(routes::firewall::router())
        .merge(routes::dbs::router())
        .merge(routes::ca::router())
        .merge(routes::parameters::router())
        .merge(routes::stats::router())
        .merge(routes::backups::router())
        .merge(routes::vpcs::router())
}

/// The OpenAPI document as served at `/api/openapi.json` and committed in `openapi/openapi.json`.
pub fn openapi_document() -> serde_json::Value {
    api().1
}
