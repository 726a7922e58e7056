use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::db::jobs::WorkerRow;
use crate::domain::OrgId;
use crate::error::ApiResult;
use crate::http::extract::{AppJson, Authenticated};
use crate::service::system::{self, Isolation, Quarantined};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(version))
        .routes(routes!(health))
        .routes(routes!(system_status))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Alive {
    #[schema(example = true)]
    pub alive: bool,
}

/// Liveness: the process answers. Touches nothing else.
#[utoipa::path(get, path = "/api/status", tag = "system", responses((status = 200, body = Alive)))]
async fn status() -> AppJson<Alive> {
    AppJson(Alive { alive: true })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionInfo {
    /// Berth's version.
    #[schema(example = "0.1.0")]
    pub version: String,
    /// The commit it was built from, or `unknown`.
    pub git_commit: String,
    /// When it was built (RFC 3339), or `unknown`.
    pub build_date: String,
    /// The version of the API under `/api/v1`.
    #[schema(example = "1")]
    pub api_version: String,
    /// The oldest `berthctl` this server works with.
    #[schema(example = "0.1.0")]
    pub min_client_version: String,
}

/// What this Berth is: its version, commit and build date, the API's version, and the oldest
/// client it works with. Public, so that a client can check before it signs in.
#[utoipa::path(get, path = "/api/version", tag = "system", responses((status = 200, body = VersionInfo)))]
async fn version(State(state): State<AppState>) -> AppJson<VersionInfo> {
    use crate::version as v;
    AppJson(VersionInfo {
        version: v::VERSION.into(),
        git_commit: v::GIT_COMMIT.into(),
        build_date: v::BUILD_DATE.into(),
        api_version: v::API_VERSION.into(),
        min_client_version: state.auth.min_client_version.clone(),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DatabaseHealth {
    pub reachable: bool,
    /// The control database's `server_version` (authenticated callers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// Migrations applied to the control database.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migrations_applied: Option<i64>,
    /// Migrations this build of Berth carries.
    pub migrations_known: usize,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable` when the control database cannot be reached or no job worker
    /// is alive.
    pub status: String,
    /// Reachability and migrations only: versions, which tell an attacker what to try, are in
    /// the authenticated `GET /api/v1/system/status`.
    pub database: DatabaseHealth,
    /// Job workers heard from in the last 30 s, in every Berth process sharing the database.
    pub live_workers: Option<usize>,
}

/// Readiness: the control database answers, its migrations are applied, and at least one job
/// worker is alive. 503 otherwise.
#[utoipa::path(
    get, path = "/api/health", tag = "system",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "The control database is unreachable or not migrated, or no worker is alive", body = Health),
    )
)]
async fn health(State(state): State<AppState>) -> (StatusCode, AppJson<Health>) {
    let probe = system::readiness(&state).await;
    let ready = probe.ready();
    let health = Health {
        status: if ready { "ok" } else { "unavailable" }.into(),
        database: DatabaseHealth {
            reachable: probe.reached.is_some(),
            server_version: None,
            migrations_applied: probe.reached.map(|r| r.migrations_applied),
            migrations_known: probe.migrations_known,
        },
        live_workers: probe.reached.map(|r| r.live_workers),
    };
    (if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, AppJson(health))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerInfo {
    pub id: String,
    pub hostname: String,
    pub pid: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: time::OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub heartbeat_at: time::OffsetDateTime,
}

impl From<WorkerRow> for WorkerInfo {
    fn from(w: WorkerRow) -> Self {
        Self {
            id: w.id,
            hostname: w.hostname,
            pid: w.pid,
            started_at: w.started_at,
            heartbeat_at: w.heartbeat_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueInfo {
    pub queued: i64,
    pub running: i64,
    /// When the longest-waiting queued job was enqueued.
    #[serde(with = "time::serde::rfc3339::option")]
    pub oldest_queued_at: Option<time::OffsetDateTime>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DriverInfo {
    pub name: String,
    /// PostgreSQL major versions the driver can run here.
    pub postgres_versions: Vec<String>,
    /// What separates one store from another here.
    pub isolation: Isolation,
    /// Nodes found on the host that no store knows, set aside untouched rather than deleted:
    /// for an operator to take back or remove (`berth quarantine purge <id>`).
    pub quarantined: Vec<Quarantined>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgStores {
    #[schema(value_type = Uuid)]
    pub org_id: OrgId,
    /// Stores per status.
    pub stores: std::collections::BTreeMap<String, i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SystemStatus {
    /// Berth's version.
    pub version: String,
    pub database: DatabaseHealth,
    pub live_workers: usize,
    pub queue: QueueInfo,
    /// Details for owners and admins of at least one organization.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<Vec<WorkerInfo>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<DriverInfo>,
    /// The stores of the organizations the caller administers, by status.
    pub organizations: Vec<OrgStores>,
}

/// The state of this Berth: control database, workers, queue, driver, and the stores of the
/// organizations the caller administers.
#[utoipa::path(
    get, path = "/api/v1/system/status", tag = "system",
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 200, body = SystemStatus),
    )
)]
async fn system_status(
    State(state): State<AppState>,
    user: Authenticated,
) -> ApiResult<AppJson<SystemStatus>> {
    let s = system::status(&state, &user.principal).await?;
    let (workers, driver) = match s.admin {
        Some(a) => {
            let d = a.driver;
            let driver = DriverInfo {
                name: d.name,
                postgres_versions: d.postgres_versions,
                isolation: d.isolation,
                quarantined: d.quarantined,
            };
            (Some(a.workers.into_iter().map(Into::into).collect()), Some(driver))
        }
        None => (None, None),
    };
    Ok(AppJson(SystemStatus {
        version: env!("CARGO_PKG_VERSION").into(),
        database: DatabaseHealth {
            reachable: true,
            server_version: Some(s.server_version),
            migrations_applied: Some(s.migrations_applied),
            migrations_known: s.migrations_known,
        },
        live_workers: s.live_workers,
        queue: QueueInfo {
            queued: s.queue.queued,
            running: s.queue.running,
            oldest_queued_at: s.queue.oldest_queued,
        },
        workers,
        driver,
        organizations: s
            .organizations
            .into_iter()
            .map(|(org_id, stores)| OrgStores { org_id, stores })
            .collect(),
    }))
}
