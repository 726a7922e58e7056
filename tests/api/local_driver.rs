//! The local driver with real PostgreSQL servers: each test has its own folder in the temp
//! folder, and a guard that stops every server it made and removes the folder, pass or fail.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berth::pg::PgBinaries;
use berth::provision::local::LocalDriver;

use crate::helpers::postmaster_of;
use berth::provision::{Duty, InstanceSettings, NodeSpec, Provisioner, Rejoined, Replication, Upstream};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use secrecy::SecretString;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

/// Quotes and backslashes, to show that passwords reach the server as literals, not as SQL.
const PASSWORD: &str = r#"it's "quoted" \ ; drop role x; --"#;
const REPLICATION_PASSWORD: &str = "repl-secret-1";
/// Names that only work when quoted as identifiers.
const ADMIN: &str = "Shop-Admin";
const DATABASE: &str = "shop db";

struct Fixture {
    root: PathBuf,
    driver: LocalDriver,
}

fn fixture() -> Fixture {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let root = std::env::temp_dir().join(format!(
        "berth-local-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&root);
    let bindir = std::env::var_os("BERTH_PG_BINDIR").map(PathBuf::from);
    let driver = LocalDriver::discover(root.clone(), bindir.as_deref())
        .expect("PostgreSQL binaries for the local driver")
        .ephemeral(true);
    Fixture { root, driver }
}

/// Whatever happened in the test: every server left under the root is shut down immediately and
/// every folder removed, socket folders in the temp folder included.
impl Drop for Fixture {
    fn drop(&mut self) {
        for (store, node) in nodes_on_disk(&self.root) {
            let dir = self.driver.node_dir(store.into(), node.into());
            if let Some(pid) = postmaster_of(&dir.join("data")) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGQUIT);
                let deadline = Instant::now() + Duration::from_secs(10);
                while kill(Pid::from_raw(pid), None).is_ok() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            // As root: the node's volume, and the store's OS user.
            let _ = std::process::Command::new("umount").arg(&dir).status();
            let _ = std::fs::remove_dir_all(self.driver.socket_dir(store.into(), node.into()));
            let _ = std::process::Command::new("userdel").arg(self.driver.store_user(store.into())).status();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn nodes_on_disk(root: &Path) -> Vec<(Uuid, Uuid)> {
    let mut out = vec![];
    for store in std::fs::read_dir(root.join("stores")).into_iter().flatten().flatten() {
        for node in std::fs::read_dir(store.path()).into_iter().flatten().flatten() {
            let parse = |n: std::ffi::OsString| n.to_str().and_then(|s| s.parse::<Uuid>().ok());
            if let (Some(s), Some(n)) = (parse(store.file_name()), parse(node.file_name())) {
                out.push((s, n));
            }
        }
    }
    out.sort();
    out
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Fixture {
    fn spec(&self, store_id: Uuid) -> NodeSpec {
        NodeSpec {
            store_id: store_id.into(),
            node_id: Uuid::now_v7().into(),
            version: self.driver.postgres_versions().pop().expect("a PostgreSQL version"),
            port: free_port(),
            settings: InstanceSettings { shared_buffers_mb: 16, max_connections: 20, work_mem_mb: 4 },
            volume_size_gb: 1,
            admin_user: ADMIN.into(),
            admin_password: SecretString::from(PASSWORD),
            database: DATABASE.into(),
            replication_password: SecretString::from(REPLICATION_PASSWORD),
            access: vec!["127.0.0.1/32".parse().unwrap()],
            user_hosts: vec![],
            tls: None,
            wal_archive: None,
            network: None,
            duty: Duty::Primary { synchronous_standby_names: String::new() },
        }
    }

    /// A replica of `primary`: same store, version, size and credentials; its own node and port.
    fn replica_spec(&self, primary: &NodeSpec) -> NodeSpec {
        let upstream = Upstream { node_id: primary.node_id, host: "127.0.0.1".into(), port: primary.port };
        NodeSpec {
            node_id: Uuid::now_v7().into(),
            port: free_port(),
            duty: Duty::Standby { upstream: Some(upstream) },
            ..primary.clone()
        }
    }
}

fn client(spec: &NodeSpec, user: &str, password: &str) -> PgConnectOptions {
    PgConnectOptions::new_without_pgpass()
        .host("127.0.0.1")
        .port(spec.port)
        .username(user)
        .password(password)
        .database(&spec.database)
}

async fn admin(spec: &NodeSpec) -> PgConnection {
    PgConnection::connect_with(&client(spec, ADMIN, PASSWORD)).await.expect("connecting as the admin role")
}

fn sqlstate(e: &sqlx::Error) -> String {
    e.as_database_error().and_then(|d| d.code()).map(|c| c.into_owned()).unwrap_or_else(|| format!("{e}"))
}

/// Polls `f` every 100 ms until it gives a value; fails after 20 s.
async fn eventually<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The session id of a process, from /proc/<pid>/stat (after the parenthesised name: state,
/// ppid, pgrp, session).
fn session_of(pid: &str) -> i64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    after.split(' ').nth(3).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_primary_serves_its_admin_role_with_the_password_only() {
    let f = fixture();
    let spec = f.spec(Uuid::now_v7());
    f.driver.create_primary(&spec).await.unwrap();

    let mut conn = admin(&spec).await;
    let one: i32 = sqlx::query_scalar("select 1").fetch_one(&mut conn).await.unwrap();
    assert_eq!(one, 1);
    sqlx::query("create table items (id int primary key, name text)").execute(&mut conn).await.unwrap();
    sqlx::query("insert into items values (1, 'one')").execute(&mut conn).await.unwrap();
    let (sup, createdb, createrole, db): (bool, bool, bool, String) = sqlx::query_as(
        "select rolsuper, rolcreatedb, rolcreaterole, current_database() from pg_roles where rolname = current_user",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!((sup, createdb, createrole, db.as_str()), (false, true, false, DATABASE));
    let owner: String = sqlx::query_scalar(
        "select pg_get_userbyid(datdba)::text from pg_database where datname = current_database()",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(owner, ADMIN);
    conn.close().await.unwrap();

    let wrong = PgConnection::connect_with(&client(&spec, ADMIN, "not-the-password")).await.unwrap_err();
    assert_eq!(sqlstate(&wrong), "28P01", "wrong password refused: {wrong}");
    let su = PgConnection::connect_with(&client(&spec, "berth", "")).await.unwrap_err();
    assert_eq!(sqlstate(&su), "28000", "the superuser is refused over TCP: {su}");

    let status = f.driver.status(&spec).await.unwrap();
    assert_eq!(
        status,
        berth::provision::NodeStatus { running: true, in_recovery: false, replay_lag_bytes: None }
    );

    // pg_ctl detaches the postmaster into a session of its own: signals to Berth's process group
    // or session (Ctrl-C, a closed terminal, Berth being killed) never reach it.
    let pid_file = f.driver.node_dir(spec.store_id, spec.node_id).join("data/postmaster.pid");
    let pid = std::fs::read_to_string(pid_file).unwrap().lines().next().unwrap().to_owned();
    assert_eq!(session_of(&pid).to_string(), pid, "the postmaster leads its own session");
    assert_ne!(session_of(&pid), session_of("self"));

    f.driver.remove(&spec).await.unwrap();
}

#[tokio::test]
async fn replicas_stream_what_the_primary_writes() {
    let f = fixture();
    let primary = f.spec(Uuid::now_v7());
    f.driver.create_primary(&primary).await.unwrap();
    let mut conn = admin(&primary).await;
    sqlx::query("create table items (id int primary key, name text)").execute(&mut conn).await.unwrap();

    let replicas = [f.replica_spec(&primary), f.replica_spec(&primary)];
    for r in &replicas {
        f.driver.create_replica(r, &primary).await.unwrap();
    }
    sqlx::query("insert into items values (1, 'after the copies')").execute(&mut conn).await.unwrap();

    for r in &replicas {
        let mut rc = admin(r).await;
        let name: String = eventually("the row on a replica", async || {
            sqlx::query_scalar("select name from items where id = 1").fetch_optional(&mut rc).await.unwrap()
        })
        .await;
        assert_eq!(name, "after the copies");
        let err = sqlx::query("insert into items values (2, 'no')").execute(&mut rc).await.unwrap_err();
        assert_eq!(sqlstate(&err), "25006", "a replica is read-only: {err}");

        let status = eventually("the replica's replay lag", async || {
            let s = f.driver.status(r).await.unwrap();
            s.replay_lag_bytes.is_some().then_some(s)
        })
        .await;
        assert!(status.running && status.in_recovery, "{status:?}");
    }
    let status = f.driver.status(&primary).await.unwrap();
    assert!(status.running && !status.in_recovery && status.replay_lag_bytes.is_none(), "{status:?}");

    for node in replicas.iter().chain([&primary]) {
        f.driver.remove(node).await.unwrap();
    }
}

#[tokio::test]
async fn creating_again_after_a_crash_finishes_the_work() {
    let f = fixture();
    let mut primary = f.spec(Uuid::now_v7());
    f.driver.create_primary(&primary).await.unwrap();
    // A retry converges, and brings the admin role to the password it is given now.
    primary.admin_password = SecretString::from("a-new-password");
    f.driver.create_primary(&primary).await.unwrap();
    let new = client(&primary, ADMIN, "a-new-password");
    PgConnection::connect_with(&new).await.expect("the new password works").close().await.unwrap();
    let old = PgConnection::connect_with(&client(&primary, ADMIN, PASSWORD)).await.unwrap_err();
    assert_eq!(sqlstate(&old), "28P01");

    // A base backup interrupted by a crash left a half-made copy behind.
    let replica = f.replica_spec(&primary);
    let staging = f.driver.node_dir(replica.store_id, replica.node_id).join("data.init");
    std::fs::create_dir_all(staging.join("base")).unwrap();
    std::fs::write(staging.join("PG_VERSION"), "15\n").unwrap();
    f.driver.create_replica(&replica, &primary).await.unwrap();
    f.driver.create_replica(&replica, &primary).await.unwrap();
    assert!(!staging.exists());
    assert!(f.driver.status(&replica).await.unwrap().in_recovery);

    // A killed server leaves its postmaster.pid; after a reboot its pid may belong to another
    // node's server. Starting must neither trust that pid nor stop the other server.
    f.driver.stop(&primary).await.unwrap();
    let replica_data = f.driver.node_dir(replica.store_id, replica.node_id).join("data");
    let other = postmaster_of(&replica_data).expect("the replica runs");
    let primary_data = f.driver.node_dir(primary.store_id, primary.node_id).join("data");
    std::fs::write(primary_data.join("postmaster.pid"), format!("{other}\n{}\n", primary_data.display()))
        .unwrap();
    f.driver.stop(&primary).await.unwrap();
    assert_eq!(postmaster_of(&replica_data), Some(other), "stopping a stopped node signalled nobody");
    f.driver.start(&primary).await.unwrap();
    f.driver.start(&primary).await.unwrap();
    PgConnection::connect_with(&new).await.expect("the primary is back").close().await.unwrap();
    assert!(f.driver.status(&replica).await.unwrap().running);

    let log = std::fs::read_to_string(primary_data.with_file_name("server.log")).unwrap();
    assert!(!log.contains("a-new-password") && !log.contains(PASSWORD), "no password in the server log");

    f.driver.remove(&replica).await.unwrap();
    f.driver.remove(&primary).await.unwrap();
}

#[tokio::test]
async fn stop_start_and_remove() {
    let f = fixture();
    let spec = f.spec(Uuid::now_v7());
    f.driver.create_primary(&spec).await.unwrap();
    admin(&spec).await.close().await.unwrap();

    f.driver.stop(&spec).await.unwrap();
    f.driver.stop(&spec).await.unwrap();
    assert!(!f.driver.status(&spec).await.unwrap().running);
    assert!(PgConnection::connect_with(&client(&spec, ADMIN, PASSWORD)).await.is_err());

    f.driver.start(&spec).await.unwrap();
    f.driver.start(&spec).await.unwrap();
    admin(&spec).await.close().await.unwrap();
    assert!(f.driver.status(&spec).await.unwrap().running);

    let node_dir = f.driver.node_dir(spec.store_id, spec.node_id);
    let socket_dir = f.driver.socket_dir(spec.store_id, spec.node_id);
    f.driver.remove(&spec).await.unwrap();
    f.driver.remove(&spec).await.unwrap();
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", spec.port)).await;
    assert!(refused.is_err(), "nothing listens on the port after removal");
    assert!(!node_dir.exists() && !socket_dir.exists());
    assert!(!node_dir.parent().unwrap().exists(), "the store's folder went with its last node");
    assert!(!f.driver.status(&spec).await.unwrap().running);
    assert!(f.driver.start(&spec).await.is_err(), "a removed node cannot be started");
}

#[tokio::test]
async fn present_nodes_lists_exactly_the_nodes_on_this_host() {
    let f = fixture();
    assert_eq!(f.driver.present_nodes().await.unwrap(), vec![]);
    let a = f.spec(Uuid::now_v7());
    let b = f.spec(Uuid::now_v7());
    f.driver.create_primary(&a).await.unwrap();
    f.driver.create_primary(&b).await.unwrap();
    // Not a node: ignored.
    std::fs::create_dir_all(f.root.join("stores/not-a-store")).unwrap();
    std::fs::write(f.root.join("stores").join(a.store_id.to_string()).join("stray.txt"), "").unwrap();

    let mut expected = vec![(a.store_id, a.node_id), (b.store_id, b.node_id)];
    expected.sort();
    assert_eq!(f.driver.present_nodes().await.unwrap(), expected);

    f.driver.stop(&a).await.unwrap();
    assert_eq!(f.driver.present_nodes().await.unwrap(), expected, "a stopped node is still present");
    f.driver.remove(&b).await.unwrap();
    assert_eq!(f.driver.present_nodes().await.unwrap(), vec![(a.store_id, a.node_id)]);
    f.driver.remove(&a).await.unwrap();
    assert_eq!(f.driver.present_nodes().await.unwrap(), vec![]);
}

#[test]
fn binaries_of_every_installed_version_are_found() {
    let all =
        PgBinaries::installed(std::env::var_os("BERTH_PG_BINDIR").map(PathBuf::from).as_deref()).unwrap();
    assert!(!all.is_empty());
    assert!(all.windows(2).all(|w| w[0].major < w[1].major), "one per major, ascending");
}

/// A node as Berth made it before stores had OS users and volumes of their own: its data owned
/// by the one PostgreSQL user of every store, its socket in `BERTH_DATA_DIR/run/<node>`, running.
async fn older_layout_node(f: &Fixture, spec: &NodeSpec) -> berth::pg::Server {
    let user = std::env::var("BERTH_PG_USER").unwrap_or_else(|_| "postgres".into());
    let node_dir = f.driver.node_dir(spec.store_id, spec.node_id);
    std::fs::create_dir_all(&node_dir).unwrap();
    let old = berth::pg::Server {
        pgdata: node_dir.join("data"),
        socket_dir: f.root.join("run").join(&spec.node_id.0.simple().to_string()[..16]),
        port: spec.port,
        binaries: PgBinaries::locate(None).unwrap(),
        run_as: berth::pg::RunAs::when_root(&user).unwrap(),
        netns: None,
    };
    for dir in [f.root.join("run"), f.root.join("stores").join(spec.store_id.to_string()), node_dir.clone()] {
        old.private_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o711)).unwrap();
    }
    old.private_dir(&old.socket_dir).unwrap();
    old.initdb(&["--auth-local=trust", "--auth-host=scram-sha-256"], true).await.unwrap();
    old.write_config(&[("listen_addresses", "127.0.0.1".into())]).unwrap();
    old.start(&node_dir.join("server.log")).await.unwrap();
    let mut su = old.connect_when_ready("postgres", Duration::from_secs(30)).await.unwrap();
    for sql in [
        format!("create role \"{ADMIN}\" login createdb createrole password 'older-password-1'"),
        format!("create database \"{DATABASE}\" owner \"{ADMIN}\""),
    ] {
        sqlx::raw_sql(&sql).execute(&mut su).await.unwrap();
    }
    let mut db = PgConnection::connect_with(&old.connect_options(DATABASE)).await.unwrap();
    sqlx::raw_sql(&format!("set role \"{ADMIN}\"; create table kept (x int); insert into kept values (42)"))
        .execute(&mut db)
        .await
        .unwrap();
    old
}

#[tokio::test]
async fn a_node_of_the_older_layout_is_moved_over_at_start_with_its_data() {
    let f = fixture();
    let spec = f.spec(Uuid::now_v7());
    let old = older_layout_node(&f, &spec).await;
    let old_pid = old.postmaster_pid().expect("the old node runs");

    // What Berth does for every node at start.
    f.driver.start(&spec).await.unwrap();
    let mut conn = PgConnection::connect_with(&client(&spec, ADMIN, "older-password-1")).await.unwrap();
    let kept: i32 = sqlx::query_scalar("select x from kept").fetch_one(&mut conn).await.unwrap();
    assert_eq!(kept, 42, "the data came along");
    let createrole: bool =
        sqlx::query_scalar("select rolcreaterole from pg_roles where rolname = current_user")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(!createrole, "and the admin lost CREATEROLE");
    assert!(!old.socket_dir.exists(), "the old socket folder is gone");
    let node_dir = f.driver.node_dir(spec.store_id, spec.node_id);
    let pid = postmaster_of(&node_dir.join("data")).expect("the node runs again");
    assert_ne!(pid, old_pid, "restarted");
    if nix::unistd::geteuid().is_root() {
        use std::os::unix::fs::MetadataExt;
        let store_user = nix::unistd::User::from_name(&f.driver.store_user(spec.store_id)).unwrap().unwrap();
        let runs_as = std::fs::metadata(format!("/proc/{pid}")).unwrap().uid();
        assert_eq!(runs_as, store_user.uid.as_raw(), "as its store's own OS user");
        assert_eq!(std::fs::metadata(node_dir.join("data/base")).unwrap().uid(), store_user.uid.as_raw());
        assert_ne!(
            std::fs::metadata(&node_dir).unwrap().dev(),
            std::fs::metadata(node_dir.parent().unwrap()).unwrap().dev(),
            "on a volume of its own"
        );
        let aside = node_dir.with_extension("before-volume");
        eventually("the original to go once copied", async || (!aside.exists()).then_some(())).await;
    }
    conn.close().await.unwrap();
    f.driver.remove(&spec).await.unwrap();
}

#[tokio::test]
async fn what_a_removed_data_folder_left_on_the_host_is_swept_by_the_next_berth() {
    // No OS users or volumes are made but as root.
    if !crate::helpers::root_can_run("sweeping OS users and volumes") {
        return;
    }
    let gone = fixture();
    let spec = gone.spec(Uuid::now_v7());
    gone.driver.create_primary(&spec).await.unwrap();
    let user = gone.driver.store_user(spec.store_id);
    let pid = postmaster_of(&gone.driver.node_dir(spec.store_id, spec.node_id).join("data")).unwrap();
    let _ = kill(Pid::from_raw(pid), Signal::SIGQUIT);
    eventually("the server to stop", async || kill(Pid::from_raw(pid), None).is_err().then_some(())).await;
    // Someone removes the data folder of a Berth, its mounted volumes and all.
    let _ = std::process::Command::new("rm").arg("-rf").arg(&gone.root).status();
    assert!(nix::unistd::User::from_name(&user).unwrap().is_some());

    let next = fixture();
    let removed = next.driver.retain_stores(&[]).await.unwrap();
    assert!(removed.contains(&user), "{removed:?}");
    assert!(nix::unistd::User::from_name(&user).unwrap().is_none(), "the store's user is gone");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(&spec.node_id.to_string()), "and its volume: {mounts}");
}

async fn rows(spec: &NodeSpec) -> i64 {
    sqlx::query_scalar("select count(*) from kept").fetch_one(&mut admin(spec).await).await.unwrap()
}

#[tokio::test]
async fn a_restore_retried_after_a_crash_keeps_the_data_it_replaces_until_it_succeeds() {
    use berth::provision::RestoreTarget;
    let f = fixture();
    let mut spec = f.spec(Uuid::now_v7());
    let backups = f.root.join("backups").join(spec.store_id.to_string());
    spec.wal_archive = Some(backups.join("wal"));
    let wal = backups.join("wal");
    f.driver.create_primary(&spec).await.unwrap();
    sqlx::raw_sql("create table kept (x int); insert into kept values (1)")
        .execute(&mut admin(&spec).await)
        .await
        .unwrap();
    // The backup keeps what an older Berth let the admin have; a restore must not bring it back.
    let mut su = f.driver.superuser(&spec, "postgres").await.unwrap();
    sqlx::raw_sql(&format!(
        "alter role \"{ADMIN}\" createrole; grant pg_execute_server_program to \"{ADMIN}\""
    ))
    .execute(&mut su)
    .await
    .unwrap();
    drop(su);
    let archive = backups.join("base.tar.gz");
    f.driver.base_backup(&spec, &archive).await.unwrap();
    sqlx::raw_sql("insert into kept values (2)").execute(&mut admin(&spec).await).await.unwrap();

    // A restore that died after setting the data aside, with its own copy half in place.
    f.driver.stop(&spec).await.unwrap();
    let node_dir = f.driver.node_dir(spec.store_id, spec.node_id);
    std::fs::rename(node_dir.join("data"), node_dir.join("data.before-restore")).unwrap();
    std::fs::create_dir(node_dir.join("data")).unwrap();
    std::fs::write(node_dir.join("data/PG_VERSION"), "15\n").unwrap();

    // Its retry fails too (a target the archived WAL never reaches): the data it replaces is back.
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let e = f.driver.restore(&spec, &archive, &wal, RestoreTarget::Time(later)).await;
    assert!(e.is_err());
    assert_eq!(rows(&spec).await, 2, "the data set aside is back in place and serving");
    // A retry that works replaces it, and only then lets it go.
    f.driver.restore(&spec, &archive, &wal, RestoreTarget::EndOfBackup).await.unwrap();
    assert_eq!(rows(&spec).await, 1, "the backup's rows");
    let (createrole, programs): (bool, bool) = sqlx::query_as(
        "select rolcreaterole, pg_has_role(current_user, 'pg_execute_server_program', 'member')
         from pg_roles where rolname = current_user",
    )
    .fetch_one(&mut admin(&spec).await)
    .await
    .unwrap();
    assert_eq!((createrole, programs), (false, false), "the restored roles brought to the privilege model");
    assert!(!node_dir.join("data.before-restore").exists() && !node_dir.join("data.failed-restore").exists());
    f.driver.remove(&spec).await.unwrap();
}

#[tokio::test]
async fn a_logical_restore_that_fails_leaves_the_database_as_it_was() {
    let f = fixture();
    let spec = f.spec(Uuid::now_v7());
    f.driver.create_primary(&spec).await.unwrap();
    sqlx::raw_sql("create table kept (x int); insert into kept values (1), (2)")
        .execute(&mut admin(&spec).await)
        .await
        .unwrap();
    let backups = f.root.join("backups").join(spec.store_id.to_string());
    let good = backups.join("logical.tar.gz");
    f.driver.logical_backup(&spec, &good).await.unwrap();
    sqlx::raw_sql("insert into kept values (3)").execute(&mut admin(&spec).await).await.unwrap();

    // An archive whose dump pg_restore cannot read.
    let bad_dir = f.root.join("bad");
    std::fs::create_dir_all(&bad_dir).unwrap();
    let manifest = serde_json::json!({"format": "berth-logical-1", "databases": [{"database": DATABASE, "file": "0.dump"}]});
    std::fs::write(bad_dir.join("manifest.json"), manifest.to_string()).unwrap();
    std::fs::write(bad_dir.join("0.dump"), "not a dump").unwrap();
    let bad = f.root.join("bad.tar.gz");
    let tar =
        std::process::Command::new("tar").arg("-czf").arg(&bad).arg("-C").arg(&bad_dir).arg(".").status();
    assert!(tar.unwrap().success());

    let e = f.driver.logical_restore(&spec, &bad).await.unwrap_err();
    assert!(format!("{e:#}").contains("as it was"), "{e:#}");
    assert_eq!(rows(&spec).await, 3, "the database was not dropped for a restore that could not work");
    f.driver.logical_restore(&spec, &good).await.unwrap();
    assert_eq!(rows(&spec).await, 2, "the dump's rows");
    let mut su = f.driver.superuser(&spec, "postgres").await.unwrap();
    let left: i64 = sqlx::query_scalar("select count(*) from pg_database where datname like 'berth\\_%'")
        .fetch_one(&mut su)
        .await
        .unwrap();
    assert_eq!(left, 0, "no restore or replaced database is left behind");
    f.driver.remove(&spec).await.unwrap();
}

#[tokio::test]
async fn a_backup_that_fails_leaves_no_partial_copy_behind() {
    let f = fixture();
    let spec = f.spec(Uuid::now_v7());
    f.driver.create_primary(&spec).await.unwrap();
    f.driver.stop(&spec).await.unwrap();
    let backups = f.root.join("backups").join(spec.store_id.to_string());
    assert!(f.driver.base_backup(&spec, &backups.join("full.tar.gz")).await.is_err());
    assert!(f.driver.logical_backup(&spec, &backups.join("logical.tar.gz")).await.is_err());
    let left: Vec<_> = std::fs::read_dir(&backups).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "left beside the archives: {left:?}");
    f.driver.remove(&spec).await.unwrap();
}

// High availability: replication probes, promotion, fencing, rejoining.

fn data_of(f: &Fixture, spec: &NodeSpec) -> PathBuf {
    f.driver.node_dir(spec.store_id, spec.node_id).join("data")
}

fn as_primary(spec: &NodeSpec) -> NodeSpec {
    NodeSpec { duty: Duty::Primary { synchronous_standby_names: String::new() }, ..spec.clone() }
}

fn standby_of(spec: &NodeSpec, upstream: &NodeSpec) -> NodeSpec {
    let upstream = Upstream { node_id: upstream.node_id, host: "127.0.0.1".into(), port: upstream.port };
    NodeSpec { duty: Duty::Standby { upstream: Some(upstream) }, ..spec.clone() }
}

async fn replication_of(f: &Fixture, spec: &NodeSpec) -> Replication {
    f.driver.replication(spec).await.unwrap().expect("the node answers its probe")
}

/// Waits until `standby` streams from `primary`, as both of them say.
async fn streams_from(f: &Fixture, standby: &NodeSpec, primary: &NodeSpec) {
    eventually("the standby to stream", async || {
        let r = replication_of(f, standby).await;
        r.receiver.filter(|w| w.streaming() && w.sender_port == Some(primary.port)).map(drop)
    })
    .await;
    eventually("the primary to list the standby", async || {
        let p = replication_of(f, primary).await;
        let name = standby.node_id.to_string();
        p.standbys.into_iter().find(|s| s.application_name == name && s.state == "streaming").map(drop)
    })
    .await;
}

async fn execute(spec: &NodeSpec, sql: &str) {
    sqlx::raw_sql(sql).execute(&mut admin(spec).await).await.unwrap();
}

async fn names(spec: &NodeSpec) -> Vec<String> {
    sqlx::query_scalar("select name from items order by id").fetch_all(&mut admin(spec).await).await.unwrap()
}

/// Every process whose folder is the node's data (what fencing must leave none of).
fn processes_in(pgdata: &Path) -> Vec<i32> {
    let Ok(ours) = std::fs::canonicalize(pgdata) else { return vec![] };
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|c| c == ours))
        .collect()
}

/// The process runs (a zombie no longer does; nobody may reap it in a container).
fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rfind(')').is_some_and(|i| !stat[i + 1..].trim_start().starts_with('Z'))
}

/// A primary with a table `items` holding row 1.
async fn primary_with_items(f: &Fixture) -> NodeSpec {
    let primary = f.spec(Uuid::now_v7());
    f.driver.create_primary(&primary).await.unwrap();
    execute(
        &primary,
        "create table items (id int primary key, name text); insert into items values (1, 'one')",
    )
    .await;
    primary
}

/// A primary and one streaming replica of it, with a table `items` holding row 1.
async fn primary_and_replica(f: &Fixture) -> (NodeSpec, NodeSpec) {
    let primary = primary_with_items(f).await;
    let replica = f.replica_spec(&primary);
    f.driver.create_replica(&replica, &primary).await.unwrap();
    streams_from(f, &replica, &primary).await;
    (primary, replica)
}

#[tokio::test]
async fn a_replica_streams_under_its_node_id_and_both_ends_say_so() {
    let f = fixture();
    let (primary, replica) = primary_and_replica(&f).await;
    assert!(data_of(&f, &replica).join("standby.signal").exists());
    let auto = std::fs::read_to_string(data_of(&f, &replica).join("postgresql.auto.conf")).unwrap();
    assert!(!auto.contains("primary_conninfo"), "nothing copied decides where it streams from: {auto}");

    let p = replication_of(&f, &primary).await;
    assert!(!p.in_recovery && p.timeline == 1 && p.received.is_some() && p.receiver.is_none(), "{p:?}");
    let link = p.standbys.iter().find(|s| s.application_name == replica.node_id.to_string()).unwrap();
    assert_eq!((link.state.as_str(), link.sync_state.as_str()), ("streaming", "async"));
    let r = replication_of(&f, &replica).await;
    assert!(r.in_recovery && r.timeline == 1 && r.received.is_some() && r.replayed.is_some(), "{r:?}");
    let receiver = r.receiver.unwrap();
    assert_eq!((receiver.status.as_str(), receiver.received_timeline), ("streaming", Some(1)));

    // A new duty for a running primary, without a restart: the replica becomes synchronous.
    let synchronous = NodeSpec {
        duty: Duty::Primary { synchronous_standby_names: format!("\"{}\"", replica.node_id) },
        ..primary.clone()
    };
    f.driver.reconfigure(&synchronous).await.unwrap();
    eventually("the replica to be synchronous", async || {
        let p = replication_of(&f, &primary).await;
        p.standbys.iter().any(|s| s.sync_state == "sync").then_some(())
    })
    .await;
    execute(&primary, "set synchronous_commit = remote_apply; insert into items values (2, 'waited for')")
        .await;
    assert_eq!(names(&replica).await, ["one", "waited for"], "a synchronous commit is on the replica");

    f.driver.stop(&replica).await.unwrap();
    assert_eq!(f.driver.replication(&replica).await.unwrap(), None, "a stopped node does not answer");
    f.driver.remove(&replica).await.unwrap();
    f.driver.remove(&primary).await.unwrap();
}

#[tokio::test]
async fn a_switchover_by_hand_loses_nothing_and_the_old_primary_follows() {
    let f = fixture();
    let (old, new) = primary_and_replica(&f).await;
    f.driver.stop(&old).await.unwrap();
    let checkpoint = f.driver.shutdown_checkpoint(&old).await.unwrap().expect("a clean shutdown");
    eventually("the replica to receive the shutdown checkpoint", async || {
        replication_of(&f, &new).await.received.filter(|&r| r >= checkpoint)
    })
    .await;

    let new = as_primary(&new);
    f.driver.promote(&new).await.unwrap();
    f.driver.promote(&new).await.unwrap();
    let r = replication_of(&f, &new).await;
    assert!(!r.in_recovery && r.timeline == 2, "{r:?}");
    assert!(!data_of(&f, &new).join("standby.signal").exists());
    execute(&new, "insert into items values (2, 'after the switchover')").await;

    let old = standby_of(&old, &new);
    let how = f.driver.rejoin(&old, &new).await.unwrap();
    assert!(matches!(how, Rejoined::AsIs | Rejoined::Rewound), "{how:?}");
    streams_from(&f, &old, &new).await;
    assert_eq!(replication_of(&f, &old).await.timeline, 2);
    eventually("the new write on the old primary", async || {
        (names(&old).await == ["one", "after the switchover"]).then_some(())
    })
    .await;
    f.driver.remove(&old).await.unwrap();
    f.driver.remove(&new).await.unwrap();
}

/// The replica is promoted while the old primary goes on taking writes; each takes one.
async fn split_brain(f: &Fixture, old: &NodeSpec, replica: &NodeSpec) -> NodeSpec {
    let new = as_primary(replica);
    f.driver.promote(&new).await.unwrap();
    execute(old, "set synchronous_commit = on; insert into items values (2, 'divergent')").await;
    execute(&new, "insert into items values (3, 'on the new primary')").await;
    new
}

/// The old primary rejoins `how`, and follows the new one with none of its divergent writes.
async fn rejoins_without_its_divergence(f: &Fixture, old: &NodeSpec, new: &NodeSpec, how: Rejoined) {
    let old = standby_of(old, new);
    assert_eq!(f.driver.rejoin(&old, new).await.unwrap(), how);
    streams_from(f, &old, new).await;
    eventually("the new primary's rows, and only those", async || {
        (names(&old).await == ["one", "on the new primary"]).then_some(())
    })
    .await;
    f.driver.remove(&old).await.unwrap();
    f.driver.remove(new).await.unwrap();
}

#[tokio::test]
async fn a_diverged_primary_killed_and_fenced_is_rewound_to_the_new_one() {
    let f = fixture();
    let (old, new) = primary_and_replica(&f).await;
    let new = split_brain(&f, &old, &new).await;

    // Killed hard, with a backend busy on it: a backend notices its postmaster died only when it
    // waits, so this one goes on working on the data. Fencing finds it and ends it.
    let busy = old.clone();
    let query = tokio::spawn(async move {
        let sql = "select sum(i) from (select generate_series(1, 100000000000) i) s";
        let _ = sqlx::query(sql).execute(&mut admin(&busy).await).await;
    });
    let backend: i32 = eventually("the busy query to run", async || {
        let sql = "select pid from pg_stat_activity where state = 'active' and query like '%generate_series%' \
                   and pid <> pg_backend_pid()";
        let mut su = f.driver.superuser(&old, "postgres").await.unwrap();
        sqlx::query_scalar(sql).fetch_optional(&mut su).await.unwrap()
    })
    .await;
    let pgdata = data_of(&f, &old);
    let postmaster = postmaster_of(&pgdata).unwrap();
    kill(Pid::from_raw(postmaster), Signal::SIGKILL).unwrap();
    eventually("the postmaster to die", async || (!alive(postmaster)).then_some(())).await;
    assert!(alive(backend), "its backend outlives it");
    f.driver.fence(&old).await.unwrap();
    assert_eq!(processes_in(&pgdata), Vec::<i32>::new(), "nothing of the node runs");
    assert!(!alive(backend), "its backend is gone too");
    query.await.unwrap();
    f.driver.fence(&old).await.unwrap();
    assert_eq!(f.driver.shutdown_checkpoint(&old).await.unwrap(), None, "it was not shut down cleanly");

    rejoins_without_its_divergence(&f, &old, &new, Rejoined::Rewound).await;
}

#[tokio::test]
async fn a_node_that_cannot_be_rewound_is_copied_afresh() {
    let f = fixture();
    let (old, new) = primary_and_replica(&f).await;
    // ALTER SYSTEM wins over Berth's settings: the old primary runs without wal_log_hints.
    sqlx::raw_sql("alter system set wal_log_hints = off")
        .execute(&mut f.driver.superuser(&old, "postgres").await.unwrap())
        .await
        .unwrap();
    f.driver.stop(&old).await.unwrap();
    f.driver.start(&old).await.unwrap();
    let hints: String = sqlx::query_scalar("show wal_log_hints")
        .fetch_one(&mut f.driver.superuser(&old, "postgres").await.unwrap())
        .await
        .unwrap();
    assert_eq!(hints, "off");
    streams_from(&f, &new, &old).await;

    let new = split_brain(&f, &old, &new).await;
    f.driver.fence(&old).await.unwrap();

    rejoins_without_its_divergence(&f, &old, &new, Rejoined::Recloned).await;
}

#[tokio::test]
async fn a_node_starts_read_write_only_when_its_spec_makes_it_the_primary() {
    let f = fixture();
    let primary = primary_with_items(&f).await;
    f.driver.stop(&primary).await.unwrap();

    // Fenced by the control database: not the primary any more, and no upstream known.
    let fenced = NodeSpec { duty: Duty::Standby { upstream: None }, ..primary.clone() };
    f.driver.start(&fenced).await.unwrap();
    let r = replication_of(&f, &fenced).await;
    assert!(r.in_recovery && r.receiver.is_none(), "{r:?}");
    let err = sqlx::query("insert into items values (2, 'no')")
        .execute(&mut admin(&fenced).await)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err), "25006", "read-only: {err}");
    assert_eq!(names(&fenced).await, ["one"], "it serves what it has");
    assert!(f.driver.create_primary(&fenced).await.is_err(), "nor is it made a primary by another way");

    // Made the primary again: promoted onto a timeline of its own, not just started read-write.
    f.driver.stop(&fenced).await.unwrap();
    f.driver.start(&primary).await.unwrap();
    let r = replication_of(&f, &primary).await;
    assert!(!r.in_recovery && r.timeline == 2, "{r:?}");
    execute(&primary, "insert into items values (2, 'writable')").await;
    f.driver.remove(&primary).await.unwrap();
}
