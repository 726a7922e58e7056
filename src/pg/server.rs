//! One PostgreSQL server in a data folder, driven through `initdb` and `pg_ctl`: the embedded
//! control database and every store node of the local driver are one of these.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

use super::{PgBinaries, RunAs};

/// The superuser every Berth-made cluster is initialised with. It is reachable only through the
/// Unix socket, in a folder that only the server's OS user (and root) can enter.
pub const SUPERUSER: &str = "berth";
/// A socket path longer than this does not fit `sockaddr_un` once `/.s.PGSQL.65535` is added.
pub const MAX_SOCKET_DIR: usize = 90;
/// How long `pg_ctl start` may wait for the server to accept connections (crash recovery included).
const START_TIMEOUT_SECS: u64 = 120;
/// Durability traded for speed, for throw-away clusters (tests) only.
pub const EPHEMERAL: [(&str, &str); 3] =
    [("fsync", "off"), ("synchronous_commit", "off"), ("full_page_writes", "off")];
/// Environment variables that would redirect or alter what the PostgreSQL tools do.
const PG_ENV: [&str; 12] = [
    "PGDATA",
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGDATABASE",
    "PGOPTIONS",
    "PGPASSWORD",
    "PGPASSFILE",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGSSLMODE",
];

/// A PostgreSQL server: its data folder, the private folder of its Unix socket, and the binaries
/// and OS user it runs with.
#[derive(Debug, Clone)]
pub struct Server {
    pub pgdata: PathBuf,
    pub socket_dir: PathBuf,
    /// The TCP port when the server listens on one; in any case the name of its socket file.
    pub port: u16,
    pub binaries: PgBinaries,
    pub run_as: Option<RunAs>,
    /// The network namespace the server runs in, when not the host's own.
    pub netns: Option<Netns>,
}

/// A network namespace, entered with `nsenter`. Only the network is entered: the server keeps
/// the host's files, so its Unix socket (Berth's superuser path) works from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Netns {
    pub nsenter: PathBuf,
    /// `/run/netns/<name>`.
    pub path: PathBuf,
}

impl Server {
    /// The cluster exists: only a complete `initdb` or copy is ever given the real folder name.
    pub fn exists(&self) -> bool {
        self.pgdata.join("PG_VERSION").is_file()
    }

    /// The major version the data folder was made by, if it exists.
    pub fn major_on_disk(&self) -> Option<String> {
        std::fs::read_to_string(self.pgdata.join("PG_VERSION")).ok().map(|v| v.trim().to_owned())
    }

    /// Where a new cluster is assembled before it gets the real name, so that an interrupted
    /// `initdb` or base backup is recognised and made again.
    pub fn staging(&self) -> PathBuf {
        let mut name = self.pgdata.file_name().unwrap_or_default().to_owned();
        name.push(".init");
        self.pgdata.with_file_name(name)
    }

    /// An empty, private staging folder; whatever an earlier attempt left there is discarded.
    pub fn fresh_staging(&self) -> anyhow::Result<PathBuf> {
        let staging = self.staging();
        if staging.exists() {
            std::fs::remove_dir_all(&staging)
                .with_context(|| format!("removing the half-made {}", staging.display()))?;
        }
        self.private_dir(&staging)?;
        Ok(staging)
    }

    /// Runs `initdb` with the superuser [`SUPERUSER`] and the given authentication options, makes
    /// `postgresql.conf` include Berth's `berth.conf`, and only then moves the cluster into place.
    pub async fn initdb(&self, auth: &[&str], no_sync: bool) -> anyhow::Result<()> {
        let staging = self.fresh_staging()?;
        let mut cmd = self.command("initdb");
        cmd.arg("-D")
            .arg(&staging)
            .args(["-U", SUPERUSER])
            .args(auth)
            .args(["-E", "UTF8", "--no-locale"])
            .current_dir(self.pgdata.parent().context("data folder without a parent")?);
        if no_sync {
            cmd.arg("--no-sync");
        }
        run(cmd, "initdb").await?;
        let conf = staging.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf)?;
        text.push_str(
            "\n# Settings managed by Berth, rewritten at every start.\ninclude_if_exists = 'berth.conf'\n",
        );
        std::fs::write(&conf, text)?;
        self.put_in_place(&staging)
    }

    /// Gives a complete cluster in `staging` the real folder name.
    pub fn put_in_place(&self, staging: &Path) -> anyhow::Result<()> {
        std::fs::rename(staging, &self.pgdata)
            .with_context(|| format!("moving {} to {}", staging.display(), self.pgdata.display()))
    }

    /// Rewrites `berth.conf`: the socket folder and port, then `settings` in order (a later
    /// setting wins). Values are written as quoted strings, which PostgreSQL accepts for any type.
    pub fn write_config(&self, settings: &[(&str, String)]) -> anyhow::Result<()> {
        let mut text = String::from("# Written by Berth at every start; edits are overwritten.\n");
        text += &format!("unix_socket_directories = {}\n", conf_quote(&self.socket_dir.to_string_lossy()));
        text += &format!("port = {}\n", self.port);
        for (k, v) in settings {
            text += &format!("{k} = {}\n", conf_quote(v));
        }
        self.write_file("berth.conf", &text)
    }

    /// Writes a file into the data folder, owned by the server's user.
    pub fn write_file(&self, name: &str, text: &str) -> anyhow::Result<()> {
        let path = self.pgdata.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        if let Some(run_as) = &self.run_as {
            run_as.give(&path)?;
        }
        Ok(())
    }

    /// A file only the server's user can read (a private key: PostgreSQL insists).
    pub fn write_private_file(&self, name: &str, text: &str) -> anyhow::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.pgdata.join(name);
        let _ = std::fs::remove_file(&path);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("writing {}", path.display()))?;
        f.write_all(text.as_bytes())?;
        if let Some(run_as) = &self.run_as {
            run_as.give(&path)?;
        }
        Ok(())
    }

    /// A folder only the server's user can enter.
    pub fn private_dir(&self, dir: &Path) -> anyhow::Result<()> {
        if let Ok(meta) = std::fs::symlink_metadata(dir) {
            // The socket folder may be under the shared temp folder: never follow a planted link.
            if !meta.is_dir() {
                bail!("{} exists and is not a folder", dir.display());
            }
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        if let Some(run_as) = &self.run_as {
            run_as.give(dir)?;
        }
        Ok(())
    }

    /// The postmaster's pid if one runs on this data folder. A `postmaster.pid` left by a killed
    /// server may name a pid that another process has since taken (after a reboot, often another
    /// node's server, of the same OS user): on Linux only a process working in this very folder
    /// counts.
    pub fn postmaster_pid(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.pgdata.join("postmaster.pid")).ok()?;
        let pid: i32 = text.lines().next()?.trim().parse().ok()?;
        if pid <= 0 {
            return None;
        }
        if Path::new("/proc/self/cwd").exists() {
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
            let ours = std::fs::canonicalize(&self.pgdata).ok()?;
            return (cwd == ours).then_some(pid);
        }
        use nix::errno::Errno;
        match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
            Ok(()) | Err(Errno::EPERM) => Some(pid),
            Err(_) => None,
        }
    }

    /// Starts the server unless it already runs; `Ok(true)` when this call started it. `pg_ctl`
    /// puts the postmaster in a session of its own, so it outlives Berth and Berth's signals.
    pub async fn start(&self, log: &Path) -> anyhow::Result<bool> {
        if self.postmaster_pid().is_some() {
            return Ok(false);
        }
        let pid_file = self.pgdata.join("postmaster.pid");
        if pid_file.exists() {
            // Stale (see `postmaster_pid`); the postmaster itself would refuse a pid that is alive.
            std::fs::remove_file(&pid_file)
                .with_context(|| format!("removing stale {}", pid_file.display()))?;
        }
        let timeout = START_TIMEOUT_SECS.to_string();
        // The postmaster and its children live where pg_ctl starts: in the namespace, if any.
        let mut cmd = self.networked_command("pg_ctl");
        cmd.args(["start", "-w", "-t", &timeout, "-s", "-l"])
            .arg(log)
            .arg("-D")
            .arg(&self.pgdata)
            .current_dir(&self.pgdata);
        run(cmd, "pg_ctl start").await.with_context(|| {
            // The server says why in its log: the last lines are the useful ones.
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(6).collect::<Vec<_>>().into_iter().rev().collect();
            format!(
                "starting PostgreSQL in {} (its log, {}, ends: {})",
                self.pgdata.display(),
                log.display(),
                tail.join(" | ")
            )
        })?;
        Ok(true)
    }

    /// Stops the server if it runs: `fast` rolls back open transactions and leaves the data
    /// consistent, `immediate` does not wait for anything and recovers at the next start.
    pub async fn stop(&self, mode: &str) -> anyhow::Result<()> {
        self.stop_within(mode, Duration::from_secs(60)).await
    }

    /// [`Server::stop`], failing when the server has not stopped within `limit`.
    pub async fn stop_within(&self, mode: &str, limit: Duration) -> anyhow::Result<()> {
        if self.postmaster_pid().is_none() {
            return Ok(());
        }
        let secs = limit.as_secs().max(1).to_string();
        let mut cmd = self.command("pg_ctl");
        cmd.args(["stop", "-w", "-t", &secs, "-s", "-m", mode])
            .arg("-D")
            .arg(&self.pgdata)
            .current_dir(&self.pgdata);
        match run(cmd, "pg_ctl stop").await {
            // It may have stopped on its own between the check and the signal.
            Err(_) if self.postmaster_pid().is_none() => Ok(()),
            other => {
                other.map(drop).with_context(|| format!("stopping PostgreSQL in {}", self.pgdata.display()))
            }
        }
    }

    /// Every process working in this data folder (its current directory): the postmaster and its
    /// children, and the backends a killed postmaster left behind. Zombies have no folder.
    pub fn processes_in_data(&self) -> Vec<i32> {
        let Ok(ours) = std::fs::canonicalize(&self.pgdata) else { return vec![] };
        let Ok(entries) = std::fs::read_dir("/proc") else { return vec![] };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == ours))
            .collect()
    }

    /// SIGKILLs the postmaster and every process working in the data folder, and waits until none
    /// is left (up to `limit`). The next start recovers from the crash.
    pub async fn kill_all(&self, limit: Duration) -> anyhow::Result<()> {
        use nix::sys::signal::{Signal, kill};
        let deadline = Instant::now() + limit;
        loop {
            let mut pids = self.processes_in_data();
            pids.extend(self.postmaster_pid());
            if pids.is_empty() {
                return self.remove_stale_locks();
            }
            if Instant::now() >= deadline {
                bail!("processes {pids:?} still work in {} after SIGKILL", self.pgdata.display());
            }
            for pid in pids {
                let _ = kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// With nothing working on the data any more: the lock files a killed postmaster left. Until
    /// its parent reaps it, a killed postmaster is a zombie whose pid still answers signals, and
    /// PostgreSQL (a start, or pg_rewind's recovery) would take its lock files for a live server's.
    fn remove_stale_locks(&self) -> anyhow::Result<()> {
        let pid_file = self.pgdata.join("postmaster.pid");
        let Ok(text) = std::fs::read_to_string(&pid_file) else { return Ok(()) };
        let pid = text.lines().next().unwrap_or_default().trim().to_owned();
        let socket = self.socket_dir.join(format!(".s.PGSQL.{}", self.port));
        let lock = socket.with_file_name(format!(".s.PGSQL.{}.lock", self.port));
        // The socket's lock, only if it is this postmaster's: the folder is shared by a store's nodes.
        let ours =
            std::fs::read_to_string(&lock).is_ok_and(|t| t.lines().next().map(str::trim) == Some(&pid));
        if ours {
            let _ = std::fs::remove_file(&socket);
            remove_if_present(&lock)?;
        }
        remove_if_present(&pid_file)
    }

    /// What `pg_controldata` says of the (stopped) data folder: `(cluster state, latest
    /// checkpoint location)`, e.g. `("shut down", "0/3000028")`.
    pub async fn control_data(&self) -> anyhow::Result<(String, String)> {
        let mut cmd = self.command("pg_controldata");
        cmd.arg("-D").arg(&self.pgdata).env("LC_ALL", "C").current_dir(&self.pgdata);
        let out = run(cmd, "pg_controldata").await?;
        let text = String::from_utf8_lossy(&out.stdout);
        let field = |name: &str| {
            text.lines()
                .find_map(|l| {
                    l.strip_prefix(name)?.trim_start().strip_prefix(':').map(|v| v.trim().to_owned())
                })
                .with_context(|| format!("pg_controldata printed no {name:?}"))
        };
        Ok((field("Database cluster state")?, field("Latest checkpoint location")?))
    }

    /// The superuser over the Unix socket, named `berth:<pid>` so that each Berth process can tell
    /// its own connections from another's. Statement logging is off: administrative statements
    /// may carry passwords.
    pub fn connect_options(&self, database: &str) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .host(&self.socket_dir.to_string_lossy())
            .port(self.port)
            .username(SUPERUSER)
            .database(database)
            .application_name(&application_name())
            .disable_statement_logging()
    }

    pub async fn connect(&self, database: &str) -> sqlx::Result<PgConnection> {
        PgConnection::connect_with(&self.connect_options(database)).await
    }

    /// Connects, retrying while the server is still starting (crash recovery after a kill, say).
    pub async fn connect_when_ready(&self, database: &str, within: Duration) -> anyhow::Result<PgConnection> {
        let deadline = Instant::now() + within;
        loop {
            match self.connect(database).await {
                Ok(conn) => return Ok(conn),
                Err(e) if Instant::now() >= deadline => {
                    return Err(e).with_context(|| {
                        format!("connecting to PostgreSQL in {} over its socket", self.pgdata.display())
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// A PostgreSQL tool, run as the server's user, with no `PG*` variable of ours leaking in.
    pub fn command(&self, tool: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(self.binaries.tool(tool));
        for var in PG_ENV {
            cmd.env_remove(var);
        }
        cmd.stdin(Stdio::null());
        if let Some(run_as) = &self.run_as {
            run_as.apply(&mut cmd);
        }
        cmd
    }

    /// [`Server::command`] inside the server's network namespace: for the tools that listen or
    /// connect over the network. `nsenter` enters it as root and then becomes the server's user.
    pub fn networked_command(&self, tool: &str) -> tokio::process::Command {
        let Some(netns) = &self.netns else { return self.command(tool) };
        let mut cmd = tokio::process::Command::new(&netns.nsenter);
        cmd.arg(format!("--net={}", netns.path.display()));
        if let Some(run_as) = &self.run_as {
            // Supplementary groups are dropped with the switch, as `RunAs::apply` does.
            cmd.arg(format!("--setgid={}", run_as.gid)).arg(format!("--setuid={}", run_as.uid));
        }
        cmd.arg("--").arg(self.binaries.tool(tool));
        for var in PG_ENV {
            cmd.env_remove(var);
        }
        cmd.stdin(Stdio::null());
        cmd
    }
}

/// Runs a tool to completion; on failure the error carries its stderr and stdout.
async fn run(cmd: tokio::process::Command, what: &str) -> anyhow::Result<Output> {
    run_for(cmd, what, Duration::from_secs(180)).await
}

pub async fn run_for(
    mut cmd: tokio::process::Command,
    what: &str,
    limit: Duration,
) -> anyhow::Result<Output> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let out = tokio::time::timeout(limit, cmd.output())
        .await
        .with_context(|| format!("{what} did not finish within {} s", limit.as_secs()))?
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(out)
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// A private folder for the socket of the server whose files are in `dir`: `dir/run` when the
/// path fits `sockaddr_un`, else a folder in the temp folder named after a hash of `dir`.
pub fn socket_dir_for(dir: &Path) -> PathBuf {
    let near = dir.join("run");
    if near.as_os_str().len() <= MAX_SOCKET_DIR {
        return near;
    }
    let digest = Sha256::digest(dir.as_os_str().as_encoded_bytes());
    std::env::temp_dir().join(format!("berth-{}", &hex::encode(digest)[..16]))
}

/// A `postgresql.conf` string value.
fn conf_quote(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "''"))
}

/// How this process names its connections: `berth:<pid>`.
pub fn application_name() -> String {
    format!("berth:{}", std::process::id())
}
