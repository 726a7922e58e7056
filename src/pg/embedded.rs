use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};

use super::{PgBinaries, RunAs};

/// The superuser the embedded server is initialised with; it is reachable only through a Unix
/// socket in a folder that only the server's OS user (and root) can enter.
const SUPERUSER: &str = "berth";
/// With Unix sockets only, the port just names the socket file: every instance has its own folder.
const PORT: u16 = 5432;
/// A socket path longer than this does not fit `sockaddr_un` once `.s.PGSQL.5432` is added.
const MAX_SOCKET_DIR: usize = 90;

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
    pgdata: PathBuf,
    socket_dir: PathBuf,
    binaries: PgBinaries,
    run_as: Option<RunAs>,
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
        let pg = Self {
            pgdata: root.join("pg"),
            socket_dir: socket_dir_for(&root),
            binaries: opts.binaries.clone(),
            run_as: opts.run_as.clone(),
        };
        if !pg.pgdata.join("PG_VERSION").exists() {
            pg.initdb(&root, opts.ephemeral).await?;
        }
        pg.check_version()?;
        pg.private_dir(&pg.socket_dir)?;
        pg.write_settings(&opts)?;
        if pg.connect("postgres").await.is_ok() {
            tracing::info!(pgdata = %pg.pgdata.display(), "adopted the running embedded PostgreSQL");
        } else {
            pg.pg_ctl(&["start", "-w", "-t", "120", "-s", "-l"], Some(&pg.pgdata.join("server.log"))).await?;
            tracing::info!(pgdata = %pg.pgdata.display(), version = %pg.binaries.version, "started embedded PostgreSQL");
        }
        pg.create_database("berth").await?;
        Ok(pg)
    }

    /// Fast shutdown: open transactions are rolled back, the data is consistent.
    pub async fn stop(&self) -> anyhow::Result<()> {
        self.pg_ctl(&["stop", "-w", "-t", "60", "-s", "-m", "fast"], None).await
    }

    pub fn pgdata(&self) -> &Path {
        &self.pgdata
    }

    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .host(&self.socket_dir.to_string_lossy())
            .port(PORT)
            .username(SUPERUSER)
            .database(database)
            .application_name("berth")
    }

    pub async fn connect(&self, database: &str) -> sqlx::Result<PgConnection> {
        PgConnection::connect_with(&self.connect_options(database)).await
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

    async fn initdb(&self, root: &Path, ephemeral: bool) -> anyhow::Result<()> {
        let staging = root.join("pg.init");
        if staging.exists() {
            std::fs::remove_dir_all(&staging)?;
        }
        self.private_dir(&staging)?;
        let mut cmd = self.command("initdb");
        cmd.arg("-D")
            .arg(&staging)
            .args(["-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-locale"])
            .current_dir(root);
        if ephemeral {
            cmd.arg("--no-sync");
        }
        run(cmd, "initdb").await?;
        let conf = staging.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf)?;
        text.push_str(
            "\n# Settings managed by Berth, rewritten at every start.\ninclude_if_exists = 'berth.conf'\n",
        );
        std::fs::write(&conf, text)?;
        // Only a complete cluster gets the real name: an interrupted initdb is redone next time.
        std::fs::rename(&staging, &self.pgdata)?;
        Ok(())
    }

    fn check_version(&self) -> anyhow::Result<()> {
        let on_disk = std::fs::read_to_string(self.pgdata.join("PG_VERSION"))?;
        let on_disk = on_disk.trim();
        if on_disk != self.binaries.major.to_string() {
            bail!(
                "{} was created by PostgreSQL {on_disk} but the binaries in {} are {}: \
                 point BERTH_PG_BINDIR at PostgreSQL {on_disk}, or upgrade the folder with pg_upgrade",
                self.pgdata.display(),
                self.binaries.bindir.display(),
                self.binaries.version
            );
        }
        Ok(())
    }

    fn write_settings(&self, opts: &EmbeddedOptions) -> anyhow::Result<()> {
        let quote = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "''"));
        let mut text = String::from("# Written by Berth at every start; edits are overwritten.\n");
        text += "listen_addresses = ''\n";
        text += &format!("unix_socket_directories = {}\n", quote(&self.socket_dir.to_string_lossy()));
        text += &format!("port = {PORT}\n");
        if opts.ephemeral {
            text += "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n";
        }
        for (k, v) in &opts.settings {
            text += &format!("{k} = {}\n", quote(v));
        }
        let path = self.pgdata.join("berth.conf");
        std::fs::write(&path, text)?;
        if let Some(run_as) = &self.run_as {
            run_as.give(&path)?;
        }
        Ok(())
    }

    /// A folder only the server's user can enter.
    fn private_dir(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        if let Some(run_as) = &self.run_as {
            run_as.give(dir)?;
        }
        Ok(())
    }

    async fn pg_ctl(&self, args: &[&str], log: Option<&Path>) -> anyhow::Result<()> {
        let mut cmd = self.command("pg_ctl");
        cmd.args(args);
        if let Some(log) = log {
            cmd.arg(log);
        }
        cmd.arg("-D").arg(&self.pgdata).current_dir(&self.pgdata);
        run(cmd, "pg_ctl").await
    }

    fn command(&self, tool: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(self.binaries.tool(tool));
        for var in ["PGDATA", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGOPTIONS"] {
            cmd.env_remove(var);
        }
        cmd.stdin(Stdio::null());
        if let Some(run_as) = &self.run_as {
            run_as.apply(&mut cmd);
        }
        cmd
    }
}

async fn run(mut cmd: tokio::process::Command, what: &str) -> anyhow::Result<()> {
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .with_context(|| format!("{what} did not finish within 180 s"))?
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(())
}

fn socket_dir_for(root: &Path) -> PathBuf {
    let near = root.join("run");
    if near.as_os_str().len() <= MAX_SOCKET_DIR {
        return near;
    }
    let digest = Sha256::digest(root.as_os_str().as_encoded_bytes());
    std::env::temp_dir().join(format!("berth-{}", &hex::encode(digest)[..16]))
}
