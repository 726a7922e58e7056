use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::MIGRATOR;
use crate::app::AppState;
use crate::http::extract::AppJson;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(status)).routes(routes!(health))
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
pub struct DatabaseHealth {
    pub reachable: bool,
    /// The control database's `server_version`.
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
    /// `ok`, or `unavailable` when the control database cannot be reached.
    pub status: String,
    /// Berth's version.
    pub version: String,
    pub database: DatabaseHealth,
}

/// Readiness: the control database answers and its migrations are applied. 503 otherwise.
#[utoipa::path(
    get, path = "/api/health", tag = "system",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "The control database is unreachable or not migrated", body = Health),
    )
)]
async fn health(State(state): State<AppState>) -> (StatusCode, AppJson<Health>) {
    let probe = async {
        let version: String = sqlx::query_scalar("show server_version").fetch_one(&state.db).await?;
        let applied: i64 = sqlx::query_scalar("select count(*) from _sqlx_migrations where success")
            .fetch_one(&state.db)
            .await?;
        Ok::<_, sqlx::Error>((version, applied))
    };
    let known = MIGRATOR.iter().count();
    let (status, database) = match tokio::time::timeout(std::time::Duration::from_secs(3), probe).await {
        Ok(Ok((version, applied))) => {
            let ready = applied as usize >= known;
            (
                if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE },
                DatabaseHealth {
                    reachable: true,
                    server_version: Some(version),
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
        version: env!("CARGO_PKG_VERSION").into(),
        database,
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
