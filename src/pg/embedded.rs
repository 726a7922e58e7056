use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use sqlx::PgConnection;
use sqlx::postgres::PgConnectOptions;

use super::server::{EPHEMERAL, Server, socket_dir_for};
use super::{PgBinaries, RunAs};

/// With Unix sockets only, the port just names the socket file: every instance has its own folder.
const PORT: u16 = 5432;

#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Berth's data folder; the cluster lives in `root/pg`.
    pub root: PathBuf,
    pub binaries: PgBinaries,
    pub run_as: Option<RunAs>,
    /// Extra `postgresql.conf` settings, rewritten at every start.
    pub settings: Vec<(String, String)>,
    /// Skip fsync at initdb and run with `fsync=off`: for throw-away test clusters only.
    pub ephemeral: bool,
}

/// A PostgreSQL server in Berth's data folder, listening only on a private Unix socket.
#[derive(Debug, Clone)]
pub struct EmbeddedPg {
    server: Server,
}

impl EmbeddedPg {
    /// Initialises the cluster on first use, then adopts the server if it is already running
    /// (Berth was killed) or starts it. A second start reuses the same data.
    pub async fn start(opts: EmbeddedOptions) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&opts.root)
            .with_context(|| format!("creating data folder {}", opts.root.display()))?;
        let root = std::fs::canonicalize(&opts.root)?;
        if let Some(run_as) = &opts.run_as {
            run_as.ensure_reachable(&root)?;
        }
        let server = Server {
            pgdata: root.join("pg"),
            socket_dir: socket_dir_for(&root),
            port: PORT,
            binaries: opts.binaries.clone(),
            run_as: opts.run_as.clone(),
            netns: None,
        };
        if !server.exists() {
            server.initdb(&["--auth=trust"], opts.ephemeral).await?;
        }
        let pg = Self { server };
        pg.check_version()?;
        pg.server.private_dir(&pg.server.socket_dir)?;
        pg.write_settings(&opts)?;
        let pgdata = pg.server.pgdata.display();
        if pg.server.start(&pg.server.pgdata.join("server.log")).await? {
            tracing::info!(%pgdata, version = %pg.server.binaries.version, "started embedded PostgreSQL");
        } else {
            tracing::info!(%pgdata, "adopted the running embedded PostgreSQL");
        }
        // An adopted server may still be recovering from the crash that stopped Berth.
        drop(pg.server.connect_when_ready("postgres", Duration::from_secs(120)).await?);
        pg.create_database("berth").await?;
        Ok(pg)
    }

    /// Connections of other Berth processes (`berth serve` and `berth worker` share one server).
    /// This process's own, even those still closing, do not count.
    pub async fn other_clients(&self) -> anyhow::Result<i64> {
        let mut conn = self.connect("postgres").await?;
        let n: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity
             where application_name like 'berth:%' and application_name <> $1 and backend_type = 'client backend'",
        )
        .bind(super::server::application_name())
        .fetch_one(&mut conn)
        .await?;
        Ok(n)
    }

    /// Fast shutdown: open transactions are rolled back, the data is consistent.
    pub async fn stop(&self) -> anyhow::Result<()> {
        self.server.stop("fast").await
    }

    pub fn pgdata(&self) -> &Path {
        &self.server.pgdata
    }

    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        self.server.connect_options(database)
    }

    pub async fn connect(&self, database: &str) -> sqlx::Result<PgConnection> {
        self.server.connect(database).await
    }

    pub async fn create_database(&self, name: &str) -> anyhow::Result<()> {
        let mut conn = self.connect("postgres").await?;
        let exists: bool = sqlx::query_scalar("select exists(select 1 from pg_database where datname = $1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await?;
        if !exists {
            // Identifiers cannot be bound; the name is quoted as an identifier.
            sqlx::query(&format!("create database \"{}\"", name.replace('"', "\"\"")))
                .execute(&mut conn)
                .await?;
        }
        Ok(())
    }

    fn check_version(&self) -> anyhow::Result<()> {
        let on_disk = self.server.major_on_disk().unwrap_or_default();
        let binaries = &self.server.binaries;
        if on_disk != binaries.major.to_string() {
            bail!(
                "{} was created by PostgreSQL {on_disk} but the binaries in {} are {}: \
                 point BERTH_PG_BINDIR at PostgreSQL {on_disk}, or upgrade the folder with pg_upgrade",
                self.server.pgdata.display(),
                binaries.bindir.display(),
                binaries.version
            );
        }
        Ok(())
    }

    fn write_settings(&self, opts: &EmbeddedOptions) -> anyhow::Result<()> {
        let mut settings = vec![("listen_addresses", String::new())];
        if opts.ephemeral {
            settings.extend(EPHEMERAL.map(|(k, v)| (k, v.to_owned())));
        }
        settings.extend(opts.settings.iter().map(|(k, v)| (k.as_str(), v.clone())));
        self.server.write_config(&settings)
    }
}
