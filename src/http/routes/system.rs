use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::MIGRATOR;
use crate::app::AppState;
use crate::db;
use crate::domain::Scope;
use crate::error::ApiResult;
use crate::http::extract::{AppJson, Authenticated};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(status)).routes(routes!(health)).routes(routes!(system_status))
}

/// A worker not heard from for this long is gone.
const WORKER_GONE: time::Duration = time::Duration::seconds(30);

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
    let probe = async {
        let applied: i64 = sqlx::query_scalar("select count(*) from _sqlx_migrations where success")
            .fetch_one(&state.db)
            .await?;
        let workers = db::jobs::live_workers(&state.db, state.clock.now() - WORKER_GONE).await?.len();
        Ok::<_, sqlx::Error>((applied, workers))
    };
    let mut live_workers = None;
    let known = MIGRATOR.iter().count();
    let (status, database) = match tokio::time::timeout(std::time::Duration::from_secs(3), probe).await {
        Ok(Ok((applied, workers))) => {
            live_workers = Some(workers);
            let ready = applied as usize >= known && workers > 0;
            (
                if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE },
                DatabaseHealth {
                    reachable: true,
                    server_version: None,
                    migrations_applied: Some(applied),
                    migrations_known: known,
                },
            )
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health probe failed");
            (StatusCode::SERVICE_UNAVAILABLE, unreachable(known))
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, unreachable(known)),
    };
    let health = Health {
        status: if status == StatusCode::OK { "ok" } else { "unavailable" }.into(),
        database,
        live_workers,
    };
    (status, AppJson(health))
}

fn unreachable(known: usize) -> DatabaseHealth {
    DatabaseHealth {
        reachable: false,
        server_version: None,
        migrations_applied: None,
        migrations_known: known,
    }
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
    pub isolation: crate::provision::Isolation,
    /// Nodes found on the host that no store knows, set aside untouched rather than deleted:
    /// for an operator to take back or remove (`berth quarantine purge <id>`).
    pub quarantined: Vec<crate::provision::Quarantined>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OrgStores {
    pub org_id: uuid::Uuid,
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
    let version: String = sqlx::query_scalar("show server_version").fetch_one(&state.db).await?;
    let applied: i64 = sqlx::query_scalar("select count(*) from _sqlx_migrations where success")
        .fetch_one(&state.db)
        .await?;
    let workers = db::jobs::live_workers(&state.db, state.clock.now() - WORKER_GONE).await?;
    let q = db::jobs::queue_stats(&state.db).await?;
    let admin_of: Vec<uuid::Uuid> =
        user.principal.orgs.iter().filter(|o| o.role.allows(Scope::OrgAdmin)).map(|o| o.id).collect();
    let is_admin = !admin_of.is_empty();
    let mut organizations: Vec<OrgStores> =
        admin_of.iter().map(|id| OrgStores { org_id: *id, stores: Default::default() }).collect();
    for (org, status, n) in db::stores::count_by_status(&state.db, &admin_of).await? {
        if let Some(o) = organizations.iter_mut().find(|o| o.org_id == org) {
            o.stores.insert(status.to_string(), n);
        }
    }
    Ok(AppJson(SystemStatus {
        version: env!("CARGO_PKG_VERSION").into(),
        database: DatabaseHealth {
            reachable: true,
            server_version: Some(version),
            migrations_applied: Some(applied),
            migrations_known: MIGRATOR.iter().count(),
        },
        live_workers: workers.len(),
        queue: QueueInfo { queued: q.queued, running: q.running, oldest_queued_at: q.oldest_queued },
        workers: is_admin.then(|| {
            workers
                .into_iter()
                .map(|w| WorkerInfo {
                    id: w.id,
                    hostname: w.hostname,
                    pid: w.pid,
                    started_at: w.started_at,
                    heartbeat_at: w.heartbeat_at,
                })
                .collect()
        }),
        driver: match is_admin {
            true => Some(DriverInfo {
                name: state.plane.driver.name().into(),
                postgres_versions: state.plane.driver.postgres_versions(),
                isolation: state.plane.driver.isolation(),
                quarantined: state.plane.driver.quarantined()?,
            }),
            false => None,
        },
        organizations,
    }))
}
