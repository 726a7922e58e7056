//! The whole HTTP surface that tests and `serve` both drive: the API, the Swagger UI, and the
//! layers every response passes through.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, header};
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};
use utoipa_swagger_ui::SwaggerUi;

use crate::app::AppState;
use crate::error::ApiError;
use crate::http::{self, middleware};

pub fn build_router(state: AppState) -> Router {
    let (api, openapi) = http::api();

    let store = state.sessions.clone();
    // The cookie lives as long as the browser session; the server enforces the idle and
    // absolute timeouts itself, whatever the browser keeps.
    let sessions = SessionManagerLayer::new(store)
        .with_name(state.auth.cookie_name())
        .with_secure(state.auth.cookie_secure)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path("/")
        .with_expiry(Expiry::OnSessionEnd);

    let api = api
        .layer(DefaultBodyLimit::max(http::extract::MAX_JSON_BODY))
        .layer(sessions)
        .layer(axum::middleware::from_fn_with_state(state.auth.clone(), middleware::csrf_guard))
        .layer(axum::middleware::from_fn_with_state(state.auth.clone(), middleware::slow_refusals))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));

    let swagger: Router<AppState> =
        SwaggerUi::new("/api/swagger").external_url_unchecked("/api/openapi.json", openapi).into();
    let swagger = swagger.layer(SetResponseHeaderLayer::overriding(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(middleware::SWAGGER_CSP),
    ));

    let request_id = HeaderName::from_static("x-request-id");
    let hsts = state.auth.serves_tls.then(|| {
        SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static(middleware::HSTS),
        )
    });
    Router::new()
        .merge(api)
        .merge(swagger)
        .fallback(|| async { ApiError::not_found("route") })
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(request_id.clone(), MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(middleware::request_span))
                .layer(PropagateRequestIdLayer::new(request_id))
                // On every response, the fallback's and the errors' too; the Swagger UI's own
                // policy, set inside, stays.
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(middleware::API_CSP),
                ))
                .layer(SetResponseHeaderLayer::overriding(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                .layer(SetResponseHeaderLayer::overriding(
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                ))
                .option_layer(hsts),
        )
        .with_state(state)
}
