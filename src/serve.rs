//! `berth serve`: the control database (embedded or given), migrations, first run, HTTP(S).

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use secrecy::ExposeSecret;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::Notify;

use crate::app::AppState;
use crate::bootstrap::{FirstRun, ensure_first_owner};
use crate::clock::SystemClock;
use crate::config::{
    AuthConfig, DbConfig, PlaneConfig, REMOTE_POOL_SIZE, ServeConfig, WorkerConfig, local_pool_size,
};
use crate::crypto::MasterKey;
use crate::http::build_router;
use crate::jobs::worker::Workers;
use crate::jobs::{JobEnv, reconcile};
use crate::pg::{EmbeddedOptions, EmbeddedPg, PgBinaries, RunAs};
use crate::provision::DataPlane;
use crate::provision::Provisioner;
use crate::provision::catalog::Catalog;
use crate::provision::local::LocalDriver;
use crate::{MIGRATOR, db};

/// The control database, and the embedded server behind it when Berth runs its own.
pub struct ControlDb {
    pub pool: PgPool,
    pub embedded: Option<EmbeddedPg>,
}

impl ControlDb {
    pub async fn open(cfg: &DbConfig) -> anyhow::Result<Self> {
        let (options, embedded, pool_size) = match &cfg.database_url {
            Some(url) => (
                PgConnectOptions::from_str(url.expose_secret())
                    .context("DATABASE_URL is not a PostgreSQL URL")?,
                None,
                REMOTE_POOL_SIZE,
            ),
            None => {
                let binaries = PgBinaries::locate(cfg.pg_bindir.as_deref())?;
                let run_as = RunAs::when_root(&cfg.pg_user)?;
                let pg = EmbeddedPg::start(EmbeddedOptions {
                    root: cfg.data_dir.clone(),
                    binaries,
                    run_as,
                    settings: vec![],
                    ephemeral: false,
                })
                .await
                .context("starting the embedded PostgreSQL")?;
                (pg.connect_options("berth"), Some(pg), local_pool_size())
            }
        };
        // No ping before every checkout: a broken connection fails its query and is replaced, and
        // every request saves a round trip.
        let pool = PgPoolOptions::new()
            .max_connections(cfg.db_max_connections.unwrap_or(pool_size))
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .context("connecting to the control database")?;
        MIGRATOR.run(&pool).await.context("applying the control database's migrations")?;
        Ok(Self { pool, embedded })
    }

    pub async fn close(self) {
        self.pool.close().await;
        if let Some(pg) = self.embedded {
            // Another Berth process on the same data folder still needs it.
            if let Ok(n @ 1..) = pg.other_clients().await {
                tracing::info!(connections = n, "leaving the embedded PostgreSQL to the other Berth process");
                return;
            }
            match pg.stop().await {
                Ok(()) => tracing::info!("stopped embedded PostgreSQL"),
                Err(e) => tracing::error!(error = %e, "stopping embedded PostgreSQL"),
            }
        }
    }
}

pub async fn migrate_only(cfg: DbConfig) -> anyhow::Result<()> {
    let db = ControlDb::open(&cfg).await?;
    println!("migrations applied");
    db.close().await;
    Ok(())
}

pub fn print_openapi() -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&crate::http::openapi_document())?);
    Ok(())
}

/// `berth quarantine list | purge <id>`: what the local driver set aside, on this host.
pub async fn quarantine(action: crate::cli::QuarantineAction) -> anyhow::Result<()> {
    use crate::cli::QuarantineAction::{List, Purge};
    let (List(db) | Purge { db, .. }) = &action;
    let driver = LocalDriver::discover(db.data_dir.clone(), db.pg_bindir.as_deref())?;
    match action {
        List(_) => {
            let entries = driver.quarantined()?;
            if entries.is_empty() {
                println!("nothing in quarantine");
            }
            for q in entries {
                println!(
                    "{}  store {}  node {}  {} MiB  {}",
                    q.id,
                    q.store_id,
                    q.node_id,
                    q.size_bytes.div_ceil(1 << 20),
                    q.volume.as_deref().unwrap_or(&q.path)
                );
            }
        }
        Purge { id, .. } => {
            let q = driver.purge_quarantined(&id).await?;
            tracing::warn!(id = %q.id, store_id = %q.store_id, node_id = %q.node_id, "purged from quarantine");
            println!("removed {} (store {}, node {}) for good", q.id, q.store_id, q.node_id);
        }
    }
    Ok(())
}

/// The data plane: the local driver, the catalog, and the master key.
pub fn data_plane(db: &DbConfig, plane: &PlaneConfig) -> anyhow::Result<DataPlane> {
    std::fs::create_dir_all(&db.data_dir).with_context(|| format!("creating {}", db.data_dir.display()))?;
    let master_key = match (&plane.master_key, &db.database_url) {
        (Some(k), _) => MasterKey::from_base64(k.expose_secret())?,
        (None, None) => MasterKey::load_or_create(&db.data_dir.join("master.key"))?,
        (None, Some(_)) => bail!(
            "BERTH_MASTER_KEY is required with DATABASE_URL (32 random bytes in base64: `openssl rand -base64 32`); \
             keep it safe: the store passwords cannot be read without it"
        ),
    };
    // As root, each store's OS user passes through the data folder into its own store's folder.
    let driver = LocalDriver::discover(db.data_dir.clone(), db.pg_bindir.as_deref())?;
    let backup_dir = plane.backup_dir.clone().unwrap_or_else(|| db.data_dir.join("backups"));
    let backups = Arc::new(crate::backup::LocalBackupStore::new(backup_dir, &driver.isolation())?);
    let catalog = Catalog::load(plane.catalog.as_deref(), driver.postgres_versions())?;
    Ok(DataPlane {
        driver: Arc::new(driver),
        catalog: Arc::new(catalog),
        master_key,
        ports: plane.node_ports.clone(),
        quotas: (&plane.quotas).into(),
        backup_min_interval: plane.backup_min_interval,
        backups,
    })
}

/// Starts this process's workers after bringing the host and the tables into agreement.
async fn start_workers(
    env: JobEnv,
    plane: &PlaneConfig,
    count: usize,
    wake: Arc<Notify>,
) -> anyhow::Result<Option<Workers>> {
    if count == 0 {
        return Ok(None);
    }
    let retention = time::Duration::try_from(plane.stats_retention).unwrap_or(time::Duration::days(7));
    tokio::spawn(crate::jobs::stats::collector_loop(env.clone(), plane.stats_interval, retention));
    if let Err(e) = reconcile::at_start(&env).await {
        tracing::error!(error = %e, "reconciling store nodes at start");
    }
    tokio::spawn(reconcile::health_loop(env.clone(), Duration::from_secs(10)));
    let monitor = crate::jobs::monitor::MonitorSettings {
        probe_interval: plane.ha.probe_interval,
        max_failovers: plane.ha.max_failovers,
        failover_window: plane.ha.failover_window,
    };
    tokio::spawn(crate::jobs::monitor::Monitor::new(env.clone(), monitor).run());
    // Cron has minute resolution: a tick every 15 s starts a due backup within that of its time.
    tokio::spawn(crate::jobs::schedule::scheduler_loop(env.clone(), Duration::from_secs(15)));
    Ok(Some(Workers::start(env, count, wake).await?))
}

async fn stop_workers(workers: Option<Workers>) {
    if let Some(w) = workers {
        // A step in progress finishes, up to a point; an unfinished job is resumed by the next
        // worker once its lease runs out.
        if tokio::time::timeout(Duration::from_secs(20), w.shutdown()).await.is_err() {
            tracing::warn!("a job step is still running; it will be resumed after its lease expires");
        }
    }
}

pub async fn serve(cfg: ServeConfig) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let plane = data_plane(&cfg.db, &cfg.plane)?;
    let control = ControlDb::open(&cfg.db).await?;
    let result = run(&cfg, control.pool.clone(), plane).await;
    control.close().await;
    result
}

pub async fn worker(cfg: WorkerConfig) -> anyhow::Result<()> {
    let plane = data_plane(&cfg.db, &cfg.plane)?;
    let control = ControlDb::open(&cfg.db).await?;
    let env = JobEnv { db: control.pool.clone(), plane, clock: Arc::new(SystemClock) };
    let workers = start_workers(env, &cfg.plane, cfg.plane.workers.max(1), Arc::new(Notify::new())).await;
    match workers {
        Ok(workers) => {
            println!("Berth worker running; stop with Ctrl-C or SIGTERM");
            wait_for_signal().await;
            stop_workers(workers).await;
            control.close().await;
            Ok(())
        }
        Err(e) => {
            control.close().await;
            Err(e)
        }
    }
}

async fn run(cfg: &ServeConfig, pool: PgPool, plane: DataPlane) -> anyhow::Result<()> {
    let auth = AuthConfig { serves_tls: cfg.tls_cert.is_some(), ..cfg.auth.clone() };
    let state = AppState::new(pool, auth, Arc::new(SystemClock), plane);
    match ensure_first_owner(&state, &cfg.admin_email, cfg.admin_password.clone(), &cfg.admin_org).await? {
        FirstRun::AlreadySetUp => {}
        FirstRun::Created { email, generated_password } => {
            tracing::info!(%email, org = %cfg.admin_org, "created the first owner");
            // Printed on stdout, once, and never logged: this is the only copy.
            if let Some(p) = generated_password {
                println!(
                    "\nFirst owner: {email}\nPassword:    {}\n(shown this once; sign in and change it with POST /api/v1/users/me/password)\n",
                    p.expose_secret()
                );
            }
        }
    }
    state.hasher.warm_up().await;
    tokio::spawn(purge_loop(state.clone()));
    tokio::spawn(flush_refusals_loop(state.clone()));
    let at_exit = state.clone();
    let workers = start_workers(state.job_env(), &cfg.plane, cfg.plane.workers, state.wake.clone()).await?;

    let handle = axum_server::Handle::new();
    tokio::spawn(shutdown_on_signal(handle.clone()));
    let scheme = if cfg.tls_cert.is_some() { "https" } else { "http" };
    let listening = handle.clone();
    tokio::spawn(async move {
        if let Some(addr) = listening.listening().await {
            println!("Berth is listening on {scheme}://{addr}; Swagger UI: {scheme}://{addr}/api/swagger/");
        }
    });

    let app = build_router(state).into_make_service_with_connect_info::<SocketAddr>();
    let served = match (&cfg.tls_cert, &cfg.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                .await
                .context("loading BERTH_TLS_CERT / BERTH_TLS_KEY")?;
            axum_server::bind_rustls(cfg.listen, tls).handle(handle).serve(app).await
        }
        _ => axum_server::bind(cfg.listen).handle(handle).serve(app).await,
    }
    .with_context(|| format!("serving on {}", cfg.listen));
    // The current minute's refusals too: nothing counted is lost to a restart.
    let later = at_exit.clock.now() + time::Duration::MINUTE;
    if let Err(e) = at_exit.refusals.flush(&at_exit.db, later).await {
        tracing::warn!(error = %e, "auditing refused authentications at shutdown");
    }
    stop_workers(workers).await;
    served
}

async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

async fn shutdown_on_signal(handle: axum_server::Handle) {
    wait_for_signal().await;
    tracing::info!("shutting down");
    handle.graceful_shutdown(Some(Duration::from_secs(10)));
}

/// Appends the refused authentications counted in memory, each minute's once it has ended.
async fn flush_refusals_loop(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tick.tick().await;
        if let Err(e) = state.refusals.flush(&state.db, state.clock.now()).await {
            tracing::warn!(error = %e, "auditing refused authentications; kept for the next try");
        }
    }
}

/// Reclaims expired sessions and old login failures; both are refused anyway.
async fn purge_loop(state: AppState) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        let now = state.clock.now();
        let idle = time::Duration::try_from(state.auth.session_idle_timeout).unwrap_or(time::Duration::DAY);
        let absolute =
            time::Duration::try_from(state.auth.session_absolute_timeout).unwrap_or(time::Duration::DAY);
        let window = crate::auth::throttle::longest_window(&state.auth);
        if let Err(e) = db::sessions::purge_expired(&state.db, now - idle, now - absolute).await {
            tracing::warn!(error = %e, "purging expired sessions");
        }
        if let Err(e) = db::tokens::purge_expired(&state.db, now).await {
            tracing::warn!(error = %e, "purging expired tokens");
        }
        if let Err(e) = db::auth_attempts::purge_before(&state.db, now - window).await {
            tracing::warn!(error = %e, "purging old authentication attempts");
        }
        if let Err(e) = db::idempotency::purge_before(&state.db, now - time::Duration::DAY).await {
            tracing::warn!(error = %e, "purging old idempotency keys");
        }
    }
}
