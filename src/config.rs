//! Configuration from flags and environment. Every variable is listed in `.env.example`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::quota::Quotas;

#[derive(Debug, Clone, clap::Args)]
pub struct DbConfig {
    /// PostgreSQL URL of the control database. Unset: Berth runs its own embedded PostgreSQL
    /// in `BERTH_DATA_DIR/pg` from the machine's binaries.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<SecretString>,

    /// Folder for Berth's own data: the embedded PostgreSQL, and later store nodes and backups.
    #[arg(long, env = "BERTH_DATA_DIR", default_value = ".berth")]
    pub data_dir: PathBuf,

    /// Folder holding `initdb`, `pg_ctl` and `postgres`. Unset: found on PATH, via
    /// `pg_config --bindir`, or the newest `/usr/lib/postgresql/*/bin`.
    #[arg(long, env = "BERTH_PG_BINDIR")]
    pub pg_bindir: Option<PathBuf>,

    /// The unprivileged OS user that runs PostgreSQL when Berth itself runs as root
    /// (PostgreSQL refuses to run as root). Ignored otherwise.
    #[arg(long, env = "BERTH_PG_USER", default_value = "postgres")]
    pub pg_user: String,

    /// Largest number of connections Berth opens to the control database. Unset: twice the
    /// number of cores (at least 4) for the embedded server, which shares this host's cores, and
    /// 20 with `DATABASE_URL`, where connections also wait on the network.
    #[arg(long, env = "BERTH_DB_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    pub db_max_connections: Option<u32>,
}

/// The pool size for a PostgreSQL on this host: more backends than about two per core only take
/// turns on the cores (on 2 cores, 20 connections served the session check 25 % slower than 4).
pub fn local_pool_size() -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    u32::try_from(cores * 2).unwrap_or(u32::MAX).max(4)
}

/// The pool size for a server given by `DATABASE_URL`.
pub const REMOTE_POOL_SIZE: u32 = 20;

#[derive(Debug, Clone, clap::Args)]
pub struct ServeConfig {
    #[command(flatten)]
    pub db: DbConfig,

    /// Address to serve HTTP (or HTTPS, with a certificate) on.
    #[arg(long, env = "BERTH_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// PEM certificate chain; with `BERTH_TLS_KEY`, Berth serves HTTPS (rustls).
    #[arg(long, env = "BERTH_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for `BERTH_TLS_CERT`.
    #[arg(long, env = "BERTH_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// E-mail of the first owner, created on first run.
    #[arg(long, env = "BERTH_ADMIN_EMAIL", default_value = "admin@localhost")]
    pub admin_email: String,

    /// Password of the first owner. Unset: a strong one is generated and printed once.
    #[arg(long, env = "BERTH_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<SecretString>,

    /// Name of the first organization, created on first run.
    #[arg(long, env = "BERTH_ADMIN_ORG", default_value = "Default")]
    pub admin_org: String,

    #[command(flatten)]
    pub auth: AuthConfig,

    #[command(flatten)]
    pub plane: PlaneConfig,
}

/// `berth worker`: the job workers alone, without the HTTP API.
#[derive(Debug, Clone, clap::Args)]
pub struct WorkerConfig {
    #[command(flatten)]
    pub db: DbConfig,

    #[command(flatten)]
    pub plane: PlaneConfig,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PlaneConfig {
    /// 32 random bytes in base64 (`openssl rand -base64 32`): encrypts the secrets Berth must
    /// read back, such as stores' database passwords. Required with DATABASE_URL; with the
    /// embedded default one is generated in `BERTH_DATA_DIR/master.key`.
    #[arg(long, env = "BERTH_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<SecretString>,

    /// A TOML file of deployment options to offer instead of the built-in catalog.
    #[arg(long, env = "BERTH_CATALOG")]
    pub catalog: Option<PathBuf>,

    /// Job workers in this process; 0 runs the API only (run `berth worker` elsewhere).
    #[arg(long, env = "BERTH_WORKERS", default_value_t = 2)]
    pub workers: usize,

    /// Where backups and archived WAL are kept. Unset: `BERTH_DATA_DIR/backups`.
    #[arg(long, env = "BERTH_BACKUP_DIR")]
    pub backup_dir: Option<PathBuf>,

    /// How often the statistics collector samples every node.
    #[arg(long, env = "BERTH_STATS_INTERVAL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub stats_interval: Duration,

    /// How long statistics samples are kept.
    #[arg(long, env = "BERTH_STATS_RETENTION", default_value = "7d", value_parser = humantime::parse_duration)]
    pub stats_retention: Duration,

    /// Loopback ports handed to store nodes, `first-last`.
    #[arg(long, env = "BERTH_NODE_PORTS", default_value = "15432-16431", value_parser = parse_ports)]
    pub node_ports: std::ops::RangeInclusive<u16>,

    /// The shortest time a backup schedule may leave between two backups of one kind (checked
    /// on every gap between the cron expression's times over the coming year).
    #[arg(long, env = "BERTH_BACKUP_MIN_INTERVAL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub backup_min_interval: Duration,

    #[command(flatten)]
    pub quotas: QuotaConfig,

    #[command(flatten)]
    pub ha: HaConfig,
}

/// The failover monitor's settings, the same for every store (each store has its own
/// `failover_delay` and lag limit).
#[derive(Debug, Clone, clap::Args)]
pub struct HaConfig {
    /// How often the failover monitor probes every node of the stores with replicas.
    #[arg(long = "ha-probe-interval", env = "BERTH_HA_PROBE_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub probe_interval: Duration,

    /// Automatic failovers a store may have within BERTH_HA_FAILOVER_WINDOW; at the next one its
    /// HA is paused instead, for a person to look at.
    #[arg(long = "ha-max-failovers", env = "BERTH_HA_MAX_FAILOVERS", default_value_t = 3)]
    pub max_failovers: u32,

    #[arg(long = "ha-failover-window", env = "BERTH_HA_FAILOVER_WINDOW", default_value = "1h", value_parser = humantime::parse_duration)]
    pub failover_window: Duration,
}

/// Every organization's quotas, unless its row in `org_quotas` says otherwise.
#[derive(Debug, Clone, clap::Args)]
pub struct QuotaConfig {
    /// Stores an organization may have (deleted ones do not count).
    #[arg(long = "quota-stores", env = "BERTH_QUOTA_STORES", default_value_t = Quotas::DEFAULT.stores, value_parser = clap::value_parser!(i64).range(0..))]
    pub stores: i64,

    /// Store nodes an organization may have, across its stores.
    #[arg(long = "quota-nodes", env = "BERTH_QUOTA_NODES", default_value_t = Quotas::DEFAULT.nodes, value_parser = clap::value_parser!(i64).range(0..))]
    pub nodes: i64,

    /// VPCs an organization may have.
    #[arg(long = "quota-vpcs", env = "BERTH_QUOTA_VPCS", default_value_t = Quotas::DEFAULT.vpcs, value_parser = clap::value_parser!(i64).range(0..))]
    pub vpcs: i64,

    /// Bytes of backups an organization may keep before new backups are refused: a number of
    /// bytes, or with KiB, MiB, GiB or TiB.
    #[arg(long = "quota-backup-bytes", env = "BERTH_QUOTA_BACKUP_BYTES", default_value = "1TiB", value_parser = parse_bytes)]
    pub backup_bytes: i64,
}

impl From<&QuotaConfig> for Quotas {
    fn from(c: &QuotaConfig) -> Self {
        Self { stores: c.stores, nodes: c.nodes, vpcs: c.vpcs, backup_bytes: c.backup_bytes }
    }
}

fn parse_bytes(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().map_err(|_| format!("{s:?}: expected a number of bytes, e.g. 500GiB"))?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "KiB" => 10,
        "MiB" => 20,
        "GiB" => 30,
        "TiB" => 40,
        other => return Err(format!("{other:?}: the unit is one of B, KiB, MiB, GiB, TiB")),
    };
    n.checked_mul(1 << shift).ok_or_else(|| format!("{s:?} is too large"))
}

fn parse_ports(s: &str) -> Result<std::ops::RangeInclusive<u16>, String> {
    let (a, b) = s.split_once('-').ok_or("expected first-last, e.g. 15432-16431")?;
    let (a, b): (u16, u16) =
        (a.trim().parse().map_err(|e| format!("{e}"))?, b.trim().parse().map_err(|e| format!("{e}"))?);
    if a == 0 || a > b {
        return Err("expected 0 < first <= last".into());
    }
    Ok(a..=b)
}

#[derive(Debug, Clone, clap::Args)]
pub struct AuthConfig {
    /// Name of the session cookie. While it is `Secure` it is sent as `__Host-<name>`, which
    /// browsers accept only from a secure origin, for the whole host, with no `Domain`.
    #[arg(long, env = "BERTH_SESSION_COOKIE", default_value = "berth_session")]
    pub session_cookie: String,

    /// Mark the session cookie `Secure`. Turn off only for plain-HTTP use on a developer's own
    /// machine with a browser that refuses Secure cookies over http://localhost.
    #[arg(long, env = "BERTH_COOKIE_SECURE", default_value_t = true, action = clap::ArgAction::Set)]
    pub cookie_secure: bool,

    /// A session unused for this long ends.
    #[arg(long, env = "BERTH_SESSION_IDLE_TIMEOUT", default_value = "30m", value_parser = humantime::parse_duration)]
    pub session_idle_timeout: Duration,

    /// A session ends this long after login, however active.
    #[arg(long, env = "BERTH_SESSION_ABSOLUTE_TIMEOUT", default_value = "12h", value_parser = humantime::parse_duration)]
    pub session_absolute_timeout: Duration,

    /// Failed logins for one account within `BERTH_LOGIN_WINDOW` before it is throttled.
    #[arg(long, env = "BERTH_LOGIN_MAX_FAILURES", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub login_max_failures: u32,

    /// Failed authentications (logins and client secrets, whatever the account or client) from
    /// one source address within `BERTH_LOGIN_WINDOW` before the address is throttled: password
    /// spraying. Behind a proxy every client has the proxy's address; raise it there.
    #[arg(long, env = "BERTH_AUTH_MAX_FAILURES_PER_ADDRESS", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub address_max_failures: u32,

    /// The sliding window over which failed logins are counted.
    #[arg(long, env = "BERTH_LOGIN_WINDOW", default_value = "15m", value_parser = humantime::parse_duration)]
    pub login_window: Duration,

    /// Password hashes computed at once; the rest wait, so a login storm cannot take every core.
    /// Unset: the number of cores.
    #[arg(long, env = "BERTH_HASH_CONCURRENCY")]
    pub hash_concurrency: Option<usize>,

    /// The nice value (0 to 19) of the password hashing threads: above 0 they also run under
    /// SCHED_BATCH, and yield the CPU to the other requests while a login storm lasts (at 19,
    /// the default, logins still went on at 52/s beside a saturating check load on 2 cores).
    #[arg(long, env = "BERTH_HASH_NICE", default_value_t = 19, value_parser = clap::value_parser!(u8).range(0..=19))]
    pub hash_nice: u8,

    /// Extra origins (scheme://host[:port]) allowed to make cookie-authenticated changes, for a
    /// UI served from another origin. Same-origin requests are always allowed.
    #[arg(long, env = "BERTH_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// The URL clients reach Berth at (`https://berth.example.com`): the OAuth2 issuer. Unset: the
    /// scheme and `Host` of each request.
    #[arg(long, env = "BERTH_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// How long a request whose credentials were refused (a made-up, expired or revoked token, an
    /// unknown client, a wrong secret or password) waits for its 401. The wait holds nothing but
    /// the caller's own connection, so a client that keeps guessing slows only itself: 64
    /// connections of made-up tokens get 320 answers a second at the default, not 50,000.
    #[arg(long, env = "BERTH_AUTH_REFUSAL_DELAY", default_value = "200ms", value_parser = humantime::parse_duration)]
    pub refusal_delay: Duration,

    /// The longest a client credential may live; every credential must name its expiry.
    #[arg(long, env = "BERTH_CREDENTIAL_MAX_LIFETIME", default_value = "365d", value_parser = humantime::parse_duration)]
    pub credential_max_lifetime: Duration,

    /// The oldest `berthctl` this server works with, as `GET /api/version` tells clients;
    /// older ones warn their users.
    #[arg(long, env = "BERTH_MIN_CLIENT_VERSION", default_value = crate::version::MIN_CLIENT_VERSION)]
    pub min_client_version: String,

    /// Set by `serve` when it serves HTTPS (`BERTH_TLS_CERT`): responses then carry
    /// `Strict-Transport-Security`, which over plain HTTP would mean nothing.
    #[arg(skip)]
    pub serves_tls: bool,
}

impl AuthConfig {
    /// The session cookie's name as sent: a `Secure` cookie gets the `__Host-` prefix, so that
    /// no subdomain and no plain-HTTP page can set or shadow it.
    pub fn cookie_name(&self) -> String {
        if self.cookie_secure && !self.session_cookie.starts_with("__Host-") {
            format!("__Host-{}", self.session_cookie)
        } else {
            self.session_cookie.clone()
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            session_cookie: "berth_session".into(),
            cookie_secure: true,
            session_idle_timeout: Duration::from_secs(30 * 60),
            session_absolute_timeout: Duration::from_secs(12 * 3600),
            login_max_failures: 10,
            address_max_failures: 100,
            login_window: Duration::from_secs(15 * 60),
            hash_concurrency: None,
            hash_nice: 19,
            allowed_origins: vec![],
            public_url: None,
            refusal_delay: Duration::from_millis(200),
            credential_max_lifetime: Duration::from_secs(365 * 86400),
            min_client_version: crate::version::MIN_CLIENT_VERSION.into(),
            serves_tls: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_take_binary_units_and_the_default_is_the_quotas() {
        assert_eq!(parse_bytes("1TiB"), Ok(Quotas::DEFAULT.backup_bytes));
        assert_eq!(parse_bytes("500GiB"), Ok(500 << 30));
        assert_eq!(parse_bytes("1234"), Ok(1234));
        assert_eq!(parse_bytes("64 MiB"), Ok(64 << 20));
        for bad in ["", "1.5GiB", "5PiB", "-1", "GiB", "99999999999TiB"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }
}
