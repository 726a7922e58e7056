//! The job queue's throughput against a bare SQL claim-and-complete loop, for `bench/queue.sh`.
//! Not part of the product.
//!
//! One private PostgreSQL, started the way Berth starts its embedded control database (same
//! settings, fsync on), serves every run, on the same `jobs` table refilled before each with
//! `--jobs` due no-op jobs. Each round runs, in turn:
//! - berth: `--workers` in-process workers (`Workers::start`, the system clock) on a pool built as
//!   `berth serve` builds it, timed from the workers' start to the last `finished_at`; every job
//!   must then have succeeded on its first attempt.
//! - bare: `pgbench -c <workers> -j 2 -t <jobs / workers>`, one transaction per job: Berth's own
//!   claim statement (`update … where id = (select … for update skip locked limit 1) returning
//!   id`), then Berth's completing update. Its `tps` is the rate. Twice: over the extended
//!   protocol with prepared statements (`-M prepared`, what sqlx does), and over the simple
//!   protocol (`-M simple`, pgbench's default, which the 3,200 jobs/s figure matches).
//! - three runs that explain the gap, for information: berth on a pool that does not ping a
//!   connection before handing it out; pgbench running Berth's exact statements (claim
//!   `returning *`, advance, finish); and the same without the advance.
//!
//! Before each run it waits up to `--quiet-wait` seconds for a second in which the whole machine
//! is under 10 % busy. For each run it reports the CPU time, per 1,000 jobs, of the client (this
//! process or pgbench) and of the server (PostgreSQL), and the share of the machine that other
//! processes took.
//!
//! `cargo run --release --example queue_bench -- [--jobs N] [--workers N] [--rounds N] [--dir D]
//!  [--quiet-wait S]`

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use berth::clock::SystemClock;
use berth::crypto::MasterKey;
use berth::jobs::worker::Workers;
use berth::jobs::{DataPlane, JobEnv, JobKind, Step, kinds};
use berth::pg::{EmbeddedOptions, EmbeddedPg, PgBinaries, RunAs};
use berth::provision::Provisioner;
use berth::provision::catalog::Catalog;
use berth::provision::local::LocalDriver;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use time::OffsetDateTime;
use tokio::sync::Notify;

/// Threads of pgbench (`-j`): one per core here.
const PGBENCH_THREADS: usize = 2;

/// Berth's claim (src/db/jobs.rs `claim`) with the values it binds written in.
const CLAIM: &str = "\
update jobs set status = 'running', locked_by = 'pgbench', locked_until = now() + interval '30 seconds',
       attempts = attempts + 1, started_at = coalesce(started_at, now()), updated_at = now()
 where id = (
     select id from jobs
     where (status = 'queued' and run_after <= now())
        or (status = 'running' and locked_until < now())
     order by run_after, created_at
     for update skip locked
     limit 1
 )";
/// Berth's `advance` after the one step of a no-op job.
const ADVANCE: &str = "\
update jobs set step = 1, updated_at = now()
 where id = :id and locked_by = 'pgbench' and status = 'running';";
/// Berth's `finish`.
const FINISH: &str = "\
update jobs set status = 'succeeded', error = null, finished_at = now(), updated_at = now(),
       locked_by = null, locked_until = null
 where id = :id and locked_by = 'pgbench' and status = 'running';";

/// What one run is.
#[derive(Clone, Copy, PartialEq)]
enum Side {
    /// Berth's workers; `false`: on a pool with `test_before_acquire(false)`.
    Berth { ping: bool },
    /// pgbench running `script` over `protocol`.
    Bare { script: Script, protocol: &'static str },
}

/// What a pgbench transaction runs.
#[derive(Clone, Copy, PartialEq)]
enum Script {
    /// The claim `returning id`, then the finish: the bare loop.
    ClaimFinish,
    /// What a Berth worker sends for a no-op job: the claim `returning *`, the advance, the finish.
    Worker,
    /// The same without the advance, as if the last advance were folded into the finish.
    WorkerFolded,
}

impl Script {
    fn name(self) -> &'static str {
        match self {
            Script::ClaimFinish => "claim-finish",
            Script::Worker => "worker",
            Script::WorkerFolded => "worker-folded",
        }
    }

    fn text(self, protocol: &str) -> String {
        // The simple protocol pastes `:id` into the text: it needs a quoted literal there.
        let id = if protocol == "simple" { "quote_literal(id) as id" } else { "id" };
        match self {
            Script::ClaimFinish => format!("{CLAIM}\n returning {id} \\gset\n{FINISH}\n"),
            Script::Worker => format!("{CLAIM}\n returning * \\gset\n{ADVANCE}\n{FINISH}\n"),
            Script::WorkerFolded => format!("{CLAIM}\n returning * \\gset\n{FINISH}\n"),
        }
    }
}

const BERTH: usize = 0;
const BARE_PREPARED: usize = 1;
const BARE_SIMPLE: usize = 2;
const SIDES: [(&str, Side); 6] = [
    ("berth: workers, pool as `berth serve` builds it", Side::Berth { ping: false }),
    (
        "bare: pgbench, claim + finish, -M prepared",
        Side::Bare { script: Script::ClaimFinish, protocol: "prepared" },
    ),
    (
        "bare: pgbench, claim + finish, -M simple",
        Side::Bare { script: Script::ClaimFinish, protocol: "simple" },
    ),
    ("info: berth, pool with sqlx's default ping", Side::Berth { ping: true }),
    (
        "info: pgbench, a worker's 3 statements, -M prepared",
        Side::Bare { script: Script::Worker, protocol: "prepared" },
    ),
    (
        "info: pgbench, the same without advance, -M prepared",
        Side::Bare { script: Script::WorkerFolded, protocol: "prepared" },
    ),
];

struct Args {
    jobs: usize,
    workers: usize,
    rounds: usize,
    dir: Option<PathBuf>,
    quiet_wait: Duration,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args { jobs: 10_000, workers: 4, rounds: 5, dir: None, quiet_wait: Duration::from_secs(120) };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let value = it.next().with_context(|| format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--jobs" => a.jobs = value.parse().context("--jobs")?,
            "--workers" => a.workers = value.parse().context("--workers")?,
            "--rounds" => a.rounds = value.parse().context("--rounds")?,
            "--dir" => a.dir = Some(value.into()),
            "--quiet-wait" => a.quiet_wait = Duration::from_secs(value.parse().context("--quiet-wait")?),
            _ => bail!(
                "unknown argument {arg}; use --jobs N, --workers N, --rounds N, --dir D, --quiet-wait S"
            ),
        }
    }
    ensure!(a.workers > 0 && a.jobs % a.workers == 0, "--jobs must be a multiple of --workers");
    ensure!(a.rounds > 0, "--rounds must be at least 1");
    Ok(a)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    // Without --dir, a folder of our own, removed on exit; the postgres user must traverse it.
    let temp = match &args.dir {
        Some(_) => None,
        None => Some(tempfile::Builder::new().prefix("berth-queue.").tempdir_in("/tmp")?),
    };
    let dir = args.dir.clone().unwrap_or_else(|| temp.as_ref().expect("a temp dir").path().to_owned());
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o711))?;
    let dir = std::fs::canonicalize(&dir)?;

    let binaries = PgBinaries::locate(None)?;
    let run_as = RunAs::when_root("postgres")?;
    let pg = EmbeddedPg::start(EmbeddedOptions {
        root: dir.clone(),
        binaries: binaries.clone(),
        run_as,
        settings: vec![],
        ephemeral: false,
    })
    .await
    .context("starting PostgreSQL")?;
    let result = bench(&args, &dir, &pg, &binaries).await;
    pg.stop().await?;
    result
}

/// The pool of `berth serve` (src/serve.rs `ControlDb::open`), with the default of
/// `BERTH_DB_MAX_CONNECTIONS`; `ping: false` turns off sqlx's `test_before_acquire`.
async fn pool(options: &PgConnectOptions, ping: bool) -> anyhow::Result<PgPool> {
    Ok(PgPoolOptions::new()
        .max_connections(20)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(ping)
        .connect_with(options.clone())
        .await?)
}

async fn bench(args: &Args, dir: &Path, pg: &EmbeddedPg, binaries: &PgBinaries) -> anyhow::Result<()> {
    let options = pg.connect_options("berth");
    let db = pool(&options, true).await?;
    berth::MIGRATOR.run(&db).await?;
    let org = uuid::Uuid::now_v7();
    sqlx::query("insert into organizations (id, name) values ($1, 'queue bench')")
        .bind(org)
        .execute(&db)
        .await?;

    let driver = LocalDriver::discover(dir.join("nodes"), None)?;
    let backups =
        std::sync::Arc::new(berth::backup::LocalBackupStore::new(dir.join("backups"), &driver.isolation())?);
    let catalog = Catalog::load(None, driver.postgres_versions())?;
    let plane = DataPlane {
        driver: Arc::new(driver),
        catalog: Arc::new(catalog),
        master_key: MasterKey::generate().0,
        ports: 1..=1,
        quotas: berth::quota::Quotas::DEFAULT,
        backup_min_interval: berth::jobs::schedule::DEFAULT_MIN_INTERVAL,
        backups,
    };
    let no_ping = pool(&options, false).await?;
    let env = |db: &PgPool| JobEnv { db: db.clone(), plane: plane.clone(), clock: Arc::new(SystemClock) };
    let (with_ping, without_ping) = (env(&db), env(&no_ping));
    let pgbench = Pgbench {
        bin: binaries.tool("pgbench"),
        host: options.get_host().to_owned(),
        port: options.get_port(),
        user: options.get_username().to_owned(),
        dir: dir.to_owned(),
        clients: args.workers,
        per_client: args.jobs / args.workers,
    };
    pgbench.write_scripts()?;

    println!(
        "{} jobs, {} workers = pgbench clients, {} rounds, PostgreSQL {} with Berth's embedded settings (fsync on)",
        args.jobs, args.workers, args.rounds, binaries.version
    );
    let mut rates: Vec<Vec<f64>> = vec![vec![]; SIDES.len()];
    let mut usages: Vec<Vec<Usage>> = vec![vec![]; SIDES.len()];
    for round in 1..=args.rounds {
        for (i, (name, side)) in SIDES.iter().enumerate() {
            fill(&db, org, args.jobs).await?;
            wait_quiet(args.quiet_wait).await;
            let before = Cpu::sample(dir);
            let rate = match side {
                Side::Berth { ping } => {
                    run_berth(if *ping { &with_ping } else { &without_ping }, args).await?
                }
                Side::Bare { script, protocol } => pgbench.run(*script, protocol).await?,
            };
            let u = Cpu::sample(dir).usage_since(&before, args.jobs);
            check(&db, args.jobs, name).await?;
            let span = span_rate(&db, args.jobs).await?;
            println!(
                "round {round}: {name:<52} {rate:7.1} jobs/s (by row timestamps {span:7.1}/s; \
                 CPU ms per 1,000 jobs: client {:4.0}, server {:4.0}; other {:3.0} %)",
                u.client_ms, u.server_ms, u.other_pct
            );
            rates[i].push(rate);
            usages[i].push(u);
        }
    }
    let med: Vec<f64> = rates.iter_mut().map(|v| median(v)).collect();
    let med_of = |i: usize, f: fn(&Usage) -> f64| median(&mut usages[i].iter().map(f).collect::<Vec<_>>());
    println!();
    println!(
        "| run (median of {} rounds)                            |  jobs/s | client CPU | server CPU | other % |",
        args.rounds
    );
    println!(
        "| ---                                                  |    ---: |       ---: |       ---: |    ---: |"
    );
    for (i, (name, _)) in SIDES.iter().enumerate() {
        let (c, sv, o) = (med_of(i, |u| u.client_ms), med_of(i, |u| u.server_ms), med_of(i, |u| u.other_pct));
        println!("| {name:<52} | {:7.1} | {c:10.0} | {sv:10.0} | {o:7.0} |", med[i]);
    }
    println!("CPU: milliseconds per 1,000 jobs; client: this process or pgbench; server: PostgreSQL");
    println!();
    let verdict = |r: f64| if r >= 0.60 { "met" } else { "MISSED" };
    for (i, what) in [(BARE_PREPARED, "bare, -M prepared"), (BARE_SIMPLE, "bare, -M simple")] {
        let r = med[BERTH] / med[i];
        println!("ratio berth / {what:<18} {r:.2} (target >= 0.60: {})", verdict(r));
    }
    for (i, (name, _)) in SIDES.iter().enumerate().skip(BARE_SIMPLE + 1) {
        let name = name.trim_start_matches("info: ");
        println!("ratio {name:<52} / bare, -M prepared: {:.2}", med[i] / med[BARE_PREPARED]);
    }
    println!("other %: share of the machine that processes outside the benchmark used during the run");
    Ok(())
}

/// The `jobs` table holding exactly `n` due, queued no-op jobs, vacuumed and checkpointed so
/// that each run starts from the same state.
async fn fill(db: &PgPool, org: uuid::Uuid, n: usize) -> anyhow::Result<()> {
    sqlx::raw_sql("truncate jobs cascade").execute(db).await?;
    // Distinct due times, a minute ago, in insertion order, as jobs enqueued one by one have.
    sqlx::query(
        "insert into jobs (id, org_id, kind, status, steps, run_after, created_at, updated_at)
         select gen_random_uuid(), $1, $2, 'queued', array[$3], t, t, t
         from (select now() - interval '1 minute' + i * interval '1 microsecond' as t
               from generate_series(1, $4) i) s",
    )
    .bind(org)
    .bind(kinds::Noop::KIND)
    .bind(Step::Noop.to_string())
    .bind(n as i64)
    .execute(db)
    .await?;
    // Two queries: several in one string would run in one transaction, which VACUUM refuses.
    sqlx::raw_sql("vacuum analyze jobs").execute(db).await?;
    sqlx::raw_sql("checkpoint").execute(db).await?;
    Ok(())
}

/// Jobs per second from the workers' start to the last `finished_at`.
async fn run_berth(env: &JobEnv, args: &Args) -> anyhow::Result<f64> {
    // Connections are opened before the clock starts, as pgbench's tps leaves out its own.
    let mut warm = vec![];
    for _ in 0..args.workers + 2 {
        warm.push(env.db.acquire().await?);
    }
    drop(warm);
    let started = OffsetDateTime::now_utc();
    let deadline = Instant::now() + Duration::from_secs(600);
    let workers = Workers::start(env.clone(), args.workers, Arc::new(Notify::new())).await?;
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        // Seldom, and no count: the watching must not slow the workers. The rate is taken from
        // `finished_at`, not from when this loop notices.
        let busy: bool =
            sqlx::query_scalar("select exists (select 1 from jobs where status in ('queued', 'running'))")
                .fetch_one(&env.db)
                .await?;
        if !busy {
            break;
        }
        ensure!(Instant::now() < deadline, "jobs still not done after 10 minutes");
    }
    workers.shutdown().await;
    let last: OffsetDateTime =
        sqlx::query_scalar("select max(finished_at) from jobs").fetch_one(&env.db).await?;
    Ok(args.jobs as f64 / (last - started).as_seconds_f64())
}

/// Jobs per second from the first `started_at` to the last `finished_at`: the same yardstick for
/// both sides, to check the rates each reports.
async fn span_rate(db: &PgPool, n: usize) -> anyhow::Result<f64> {
    let secs: f64 =
        sqlx::query_scalar("select extract(epoch from max(finished_at) - min(started_at))::float8 from jobs")
            .fetch_one(db)
            .await?;
    Ok(n as f64 / secs)
}

/// Every job ran exactly once and succeeded.
async fn check(db: &PgPool, n: usize, who: &str) -> anyhow::Result<()> {
    let (succeeded, not_once, failed): (i64, i64, i64) = sqlx::query_as(
        "select count(*) filter (where status = 'succeeded'),
                count(*) filter (where attempts <> 1),
                count(*) filter (where status = 'failed')
         from jobs",
    )
    .fetch_one(db)
    .await?;
    ensure!(
        succeeded == n as i64 && not_once == 0 && failed == 0,
        "{who}: {succeeded} of {n} jobs succeeded, {not_once} not run exactly once, {failed} failed"
    );
    Ok(())
}

struct Pgbench {
    bin: PathBuf,
    host: String,
    port: u16,
    user: String,
    /// Where the scripts are.
    dir: PathBuf,
    clients: usize,
    per_client: usize,
}

impl Pgbench {
    fn path(&self, script: Script, protocol: &str) -> PathBuf {
        self.dir.join(format!("{}-{protocol}.sql", script.name()))
    }

    fn write_scripts(&self) -> anyhow::Result<()> {
        for (_, side) in SIDES {
            if let Side::Bare { script, protocol } = side {
                std::fs::write(self.path(script, protocol), script.text(protocol))?;
            }
        }
        Ok(())
    }

    /// Runs the script to the end and returns its `tps` (initial connections left out).
    async fn run(&self, script: Script, protocol: &str) -> anyhow::Result<f64> {
        let mut cmd = tokio::process::Command::new(&self.bin);
        for var in ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGOPTIONS", "PGSERVICE"] {
            cmd.env_remove(var);
        }
        cmd.args(["-n", "-h", &self.host, "-p", &self.port.to_string(), "-U", &self.user])
            .args(["-c", &self.clients.to_string(), "-j", &PGBENCH_THREADS.to_string()])
            .args(["-t", &self.per_client.to_string(), "-M", protocol, "-f"])
            .arg(self.path(script, protocol))
            .arg("berth");
        let out = cmd.output().await.with_context(|| format!("running {}", self.bin.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success(),
            "pgbench failed ({}): {}{text}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let expected = format!("{0}/{0}", self.clients * self.per_client);
        let processed = text
            .lines()
            .find_map(|l| l.strip_prefix("number of transactions actually processed: "))
            .context("pgbench printed no transaction count")?;
        ensure!(processed.trim() == expected, "pgbench processed {processed}, expected {expected}");
        text.lines()
            .find_map(|l| l.strip_prefix("tps = "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .context("pgbench printed no tps")
    }
}

/// CPU ticks of the machine and of the benchmark's two sides: the client, this process and its
/// children (pgbench), and the server, every process working in the benchmark's folder
/// (PostgreSQL) and its children; exited processes count once reaped.
struct Cpu {
    busy: u64,
    total: u64,
    client: u64,
    server: u64,
}

/// What a run cost, from two [`Cpu`] samples.
#[derive(Clone, Copy)]
struct Usage {
    /// CPU milliseconds per 1,000 jobs.
    client_ms: f64,
    server_ms: f64,
    /// The share of the machine (%) that processes outside the benchmark used.
    other_pct: f64,
}

/// Ticks are USER_HZ, 100 a second on Linux.
const TICK_MS: f64 = 10.0;

impl Cpu {
    /// Busy and total ticks of the whole machine.
    fn machine() -> (u64, u64) {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        // user nice system idle iowait irq softirq steal
        let f: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        if f.len() == 8 { (f[0] + f[1] + f[2] + f[5] + f[6] + f[7], f.iter().sum()) } else { (0, 0) }
    }

    fn sample(dir: &Path) -> Self {
        let (busy, total) = Self::machine();
        let mut parent = HashMap::new();
        let mut ticks = HashMap::new();
        let mut server = HashSet::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            // A process may vanish while it is read: it is simply left out.
            let Ok(text) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            let Some((_, rest)) = text.rsplit_once(") ") else { continue };
            let v: Vec<&str> = rest.split_whitespace().collect();
            if v.len() < 15 {
                continue;
            }
            parent.insert(pid, v[1].parse::<u32>().unwrap_or(0));
            // utime stime cutime cstime
            ticks.insert(pid, v[11..15].iter().map(|t| t.parse::<u64>().unwrap_or(0)).sum::<u64>());
            if std::fs::read_link(entry.path().join("cwd")).is_ok_and(|cwd| cwd.starts_with(dir)) {
                server.insert(pid);
            }
        }
        let sum = |roots: HashSet<u32>| -> u64 {
            let mut set = roots;
            loop {
                let more: Vec<u32> = parent
                    .iter()
                    .filter(|(p, pp)| !set.contains(p) && set.contains(pp))
                    .map(|(p, _)| *p)
                    .collect();
                if more.is_empty() {
                    return set.iter().filter_map(|p| ticks.get(p)).sum();
                }
                set.extend(more);
            }
        };
        Self { busy, total, client: sum(HashSet::from([std::process::id()])), server: sum(server) }
    }

    fn usage_since(&self, before: &Cpu, jobs: usize) -> Usage {
        let client = self.client.saturating_sub(before.client) as f64;
        let server = self.server.saturating_sub(before.server) as f64;
        let other = (self.busy - before.busy) as f64 - client - server;
        let per_k = |t: f64| t * TICK_MS * 1000.0 / jobs as f64;
        Usage {
            client_ms: per_k(client),
            server_ms: per_k(server),
            other_pct: (100.0 * other / (self.total - before.total).max(1) as f64).max(0.0),
        }
    }
}

/// Waits up to `max` for a second in which the whole machine is under 10 % busy: on a shared
/// machine, a run started in the middle of someone's build says little.
async fn wait_quiet(max: Duration) {
    let deadline = Instant::now() + max;
    while Instant::now() < deadline {
        let before = Cpu::machine();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = Cpu::machine();
        if 100 * (after.0 - before.0) < 10 * (after.1 - before.1) {
            return;
        }
    }
    if !max.is_zero() {
        println!("  (the machine was not quiet within {} s; measuring anyway)", max.as_secs());
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
