//! Application state and the router that tests and `serve` both drive.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use axum::http::{HeaderName, HeaderValue, header};
use sqlx::PgPool;
use tokio::sync::Notify;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};
use utoipa_swagger_ui::SwaggerUi;

use crate::audit::Refusals;
use crate::auth::token::{self, TagKey};
use crate::auth::{PasswordHasher, PgSessionStore};
use crate::clock::Clock;
use crate::config::AuthConfig;
use crate::error::ApiError;
use crate::http::{self, middleware};
use crate::jobs::{DataPlane, JobEnv};

#[derive(Clone, FromRef)]
pub struct AppState {
    pub db: PgPool,
    pub auth: Arc<AuthConfig>,
    pub clock: Arc<dyn Clock>,
    pub hasher: PasswordHasher,
    pub sessions: PgSessionStore,
    pub plane: DataPlane,
    /// Wakes this process's idle workers when a job is enqueued here.
    pub wake: Arc<Notify>,
    /// Refused authentications waiting to be audited, one event per minute and subject.
    pub refusals: Refusals,
    /// Tags the secrets Berth makes, so that made-up ones are refused without a lookup.
    pub token_tags: TagKey,
}

impl AppState {
    pub fn new(db: PgPool, auth: AuthConfig, clock: Arc<dyn Clock>, plane: DataPlane) -> Self {
        let concurrency = auth
            .hash_concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let hasher = PasswordHasher::new(concurrency, auth.hash_nice);
        let sessions = PgSessionStore::new(
            db.clone(),
            clock.clone(),
            to_time(auth.session_idle_timeout),
            to_time(auth.session_absolute_timeout),
        );
        let token_tags = TagKey::new(&plane.master_key.derive(token::TAG_KEY_PURPOSE));
        Self {
            db,
            auth: Arc::new(auth),
            clock,
            hasher,
            sessions,
            plane,
            wake: Arc::new(Notify::new()),
            refusals: Refusals::default(),
            token_tags,
        }
    }

    /// What the workers of this process run with.
    pub fn job_env(&self) -> JobEnv {
        JobEnv { db: self.db.clone(), plane: self.plane.clone(), clock: self.clock.clone() }
    }
}

fn to_time(d: Duration) -> time::Duration {
    time::Duration::try_from(d).unwrap_or(time::Duration::MAX)
}

pub fn build_router(state: AppState) -> Router {
    let (api, openapi) = http::api_router().split_for_parts();

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
        .layer(sessions)
        .layer(axum::middleware::from_fn_with_state(state.auth.clone(), middleware::csrf_guard))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));

    let swagger: Router<AppState> = SwaggerUi::new("/api/swagger").url("/api/openapi.json", openapi).into();
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
        .fallback(|| async { ApiError::NotFound("route") })
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
