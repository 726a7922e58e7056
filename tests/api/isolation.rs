//! Tenant isolation on the data plane, tried as a customer would: with the store's own
//! credentials (and, as root, as the store's OS user), against real nodes.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgConnection;

use crate::client::{Fields, store_body};
use crate::helpers::{TestApp, node_connect};

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

async fn run(conn: &mut PgConnection, sql: &str) -> Result<(), String> {
    sqlx::raw_sql(sql).execute(conn).await.map(drop).map_err(|e| e.to_string())
}

/// A store of `volume_size` GB, available; its id, the admin's password and its node's port.
async fn store(app: &TestApp, cookie: &str, name: &str, volume_size: i64) -> (uuid::Uuid, String, i64) {
    let mut b = store_body(name, 1);
    b["volume_size"] = json!(volume_size);
    let s = app.ready_store(cookie, app.owner_org, b).await;
    (s.id, s.password.clone(), s.port())
}

/// Everything that would take a customer's SQL session past their own store: server files and
/// programs, other roles' password verifiers, server settings, roles that are not theirs.
const ESCALATIONS: [(&str, &str); 14] = [
    ("grant pg_execute_server_program", "grant pg_execute_server_program to current_user"),
    ("grant pg_read_server_files", "grant pg_read_server_files to current_user"),
    ("grant pg_write_server_files", "grant pg_write_server_files to current_user"),
    ("grant pg_read_all_data", "grant pg_read_all_data to current_user"),
    ("copy from a program", "create temp table esc_p(t text); copy esc_p from program 'id'"),
    ("copy to a host file", "copy (select 1) to '/tmp/berth-isolation-probe'"),
    ("read a host file", "select pg_read_file('/etc/passwd')"),
    ("import a host file", "select lo_import('/etc/passwd')"),
    ("read password verifiers", "select rolpassword from pg_authid"),
    ("alter system", "alter system set log_min_messages = 'debug5'"),
    ("make a role", "create role esc_role"),
    ("become superuser", "alter role current_user superuser"),
    (
        "a function in C",
        "create function esc_c() returns int language c as '/lib/x86_64-linux-gnu/libc.so.6', 'getpid'",
    ),
    ("a superuser-only extension", "create extension adminpack"),
];

#[tokio::test]
async fn neither_the_store_admin_nor_an_admin_user_can_reach_past_the_store() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let (id, admin_pw, port) = store(&app, &owner, "escape", 1).await;
    let base = format!("/api/v1/orgs/{}/stores/{id}", app.owner_org);
    let mut passwords = vec![("dbadmin".to_owned(), admin_pw)];
    for (name, privileges) in [("boss", "admin"), ("everything", "read")] {
        let r = app
            .post(&format!("{base}/db-users"))
            .cookie(&owner)
            .json(json!({"username": name, "privileges": privileges}))
            .send()
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        passwords.push((name.to_owned(), r.string_at("/password")));
    }
    for (user, password) in &passwords {
        let mut conn = node_connect(port, user, password, "defaultdb").await.unwrap();
        for (what, sql) in ESCALATIONS {
            let e = run(&mut conn, sql).await.expect_err(&format!("{user} could {what}"));
            assert!(
                ["permission denied", "must be superuser", "must have admin option", "only superuser"]
                    .iter()
                    .any(|m| e.contains(m)),
                "{user}, {what}: {e}"
            );
        }
        let (createrole, memberships): (bool, i64) = sqlx::query_as(
            "select rolcreaterole, (select count(*) from pg_auth_members a join pg_roles g on g.oid = a.roleid
                                    where a.member = r.oid and g.rolname in ('pg_read_all_data', 'pg_write_all_data',
                                    'pg_execute_server_program', 'pg_read_server_files', 'pg_write_server_files'))
             from pg_roles r where rolname = current_user",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!((createrole, memberships), (false, 0), "{user}");
    }
    assert!(!Path::new("/tmp/berth-isolation-probe").exists(), "no host file was written");

    // What the customer keeps: their own objects, schemas, databases, monitoring and signalling.
    let (_, admin_pw) = &passwords[0];
    let mut admin = node_connect(port, "dbadmin", admin_pw, "defaultdb").await.unwrap();
    run(&mut admin, "create schema app; create table app.items (x int); insert into app.items values (1)")
        .await
        .unwrap();
    run(&mut admin, "create table public.t (x int); insert into public.t values (1)").await.unwrap();
    let mut other = node_connect(port, "dbadmin", admin_pw, "defaultdb").await.unwrap();
    let pid: i32 = sqlx::query_scalar("select pg_backend_pid()").fetch_one(&mut other).await.unwrap();
    let seen: Option<String> = sqlx::query_scalar("select query from pg_stat_activity where pid = $1")
        .bind(pid)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(seen.is_some(), "pg_monitor shows the store's own sessions");
    let ended: bool =
        sqlx::query_scalar("select pg_terminate_backend($1)").bind(pid).fetch_one(&mut admin).await.unwrap();
    assert!(ended, "pg_signal_backend ends the store's own sessions");
    run(&mut admin, "create extension if not exists pgcrypto").await.expect("a trusted extension");
    // "All databases" to read is granted database by database: a database made later too.
    let r = app.post(&format!("{base}/databases")).cookie(&owner).json(json!({"name": "later"})).send().await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let mut later = node_connect(port, "dbadmin", admin_pw, "later").await.unwrap();
    run(&mut later, "create table l (x int); insert into l values (7)").await.unwrap();
    let (_, reader_pw) = &passwords[2];
    let mut reader = node_connect(port, "everything", reader_pw, "later").await.unwrap();
    run(&mut reader, "select * from l").await.expect("the reader of all databases reads one made later");
    let mut reader = node_connect(port, "everything", reader_pw, "defaultdb").await.unwrap();
    run(&mut reader, "select * from public.t").await.expect("and the ones before");
    let e = run(&mut reader, "insert into public.t values (2)").await.unwrap_err();
    assert!(e.contains("permission denied"), "{e}");
}

#[tokio::test]
async fn a_role_an_older_berth_left_escalated_is_brought_to_the_model_at_start() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let (store_id, admin_pw, port) = store(&app, &owner, "older", 1).await;
    let node_id: uuid::Uuid = sqlx::query_scalar("select id from store_nodes where store_id = $1")
        .bind(store_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    let spec = app
        .state
        .plane
        .node_spec(&app.db, app.owner_org.into(), store_id.into(), node_id.into(), app.clock_now())
        .await
        .unwrap()
        .unwrap();
    // What a store made before this model could hold: an admin with CREATEROLE that gave itself
    // the server's programs, and a reader of "all databases" through pg_read_all_data.
    let driver = app.state.plane.driver.as_ref();
    let mut su = driver.superuser(&spec, "postgres").await.unwrap();
    run(
        &mut su,
        "alter role dbadmin createrole; grant pg_execute_server_program to dbadmin;
         create role old_reader login password 'old-reader-password-1'; grant pg_read_all_data to old_reader",
    )
    .await
    .unwrap();
    let mut admin = node_connect(port, "dbadmin", &admin_pw, "defaultdb").await.unwrap();
    run(&mut admin, "create table t (x int); insert into t values (1)").await.unwrap();
    drop(admin);

    driver.stop(&spec).await.unwrap();
    driver.start(&spec).await.unwrap();
    let mut admin = node_connect(port, "dbadmin", &admin_pw, "defaultdb").await.unwrap();
    let e = run(&mut admin, "create temp table p(t text); copy p from program 'id'").await.unwrap_err();
    assert!(e.contains("permission denied") || e.contains("must be superuser"), "{e}");
    let createrole: bool = sqlx::query_scalar("select rolcreaterole from pg_roles where rolname = 'dbadmin'")
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(!createrole);
    let mut reader = node_connect(port, "old_reader", "old-reader-password-1", "defaultdb").await.unwrap();
    run(&mut reader, "select * from t").await.expect("the old reader still reads the store's tables");
    let e = run(&mut reader, "select rolpassword from pg_authid").await.unwrap_err();
    assert!(e.contains("permission denied"), "but no longer the verifiers: {e}");
}

/// The data folders of the test app's nodes: `{path: owner uid}`.
fn data_dirs(root: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = vec![];
    for store in std::fs::read_dir(root.join("stores")).into_iter().flatten().flatten() {
        for node in std::fs::read_dir(store.path()).into_iter().flatten().flatten() {
            let data = node.path().join("data");
            if let Ok(m) = std::fs::metadata(data.join("PG_VERSION")) {
                out.push((data, m.uid()));
            }
        }
    }
    out
}

fn as_user(user: &str, cmd: &[&str]) -> std::process::Output {
    std::process::Command::new("runuser").args(["-u", user, "--"]).args(cmd).output().unwrap()
}

#[tokio::test]
async fn each_store_runs_as_its_own_os_user_on_its_own_volume() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let options = app.get("/api/v1/content/deploy-options").cookie(&owner).send().await.json();
    let isolation = &options["clouds"][0]["isolation"];
    if !is_root() {
        // Not enforced, and said so.
        assert_eq!(isolation["os_users"], "shared", "{isolation}");
        assert_eq!(isolation["volume_sizes_enforced"], false);
        assert!(isolation.str_at("/note").contains("root"));
        crate::helpers::root_can_run("an OS user and a volume per store");
        return;
    }
    assert_eq!(*isolation, json!({"os_users": "per_store", "volume_sizes_enforced": true}));
    let (a, _, _) = store(&app, &owner, "tenant-a", 1).await;
    let (b, _, b_port) = store(&app, &owner, "tenant-b", 1).await;
    let dirs = data_dirs(&app.nodes_root);
    let owner_of = |id: uuid::Uuid| {
        dirs.iter().find(|(d, _)| d.to_string_lossy().contains(&id.to_string())).unwrap().clone()
    };
    let ((a_data, a_uid), (b_data, b_uid)) = (owner_of(a), owner_of(b));
    assert_ne!(a_uid, b_uid, "two stores, two OS users");
    let control_uid = nix::unistd::User::from_name("postgres").unwrap().unwrap().uid.as_raw();
    assert!(a_uid != control_uid && b_uid != control_uid, "not the control database's user");
    let a_user = nix::unistd::User::from_uid(a_uid.into()).unwrap().unwrap().name;

    // Store A's user lists nothing of B's, and reaches neither B's sockets nor the control database's.
    let control = crate::helpers::control_root();
    let stores = app.nodes_root.join("stores");
    let mut private = vec![b_data.clone(), b_data.parent().unwrap().to_owned(), stores.clone()];
    let b_backups = app.state.plane.backups.wal_dir(b.into()).parent().unwrap().to_owned();
    private.extend([b_backups.parent().unwrap().to_owned(), b_backups]);
    private.extend(control.iter().map(|c| c.join("pg")));
    for dir in private {
        let out = as_user(&a_user, &["ls", &dir.to_string_lossy()]);
        assert!(!out.status.success(), "{a_user} lists {}", dir.display());
    }
    let mut sockets =
        vec![(app.nodes_root.join("stores").join(b.to_string()).join("run"), b_port.to_string())];
    sockets.extend(control.iter().map(|c| (c.join("run"), "5432".to_owned())));
    for (host, port) in sockets {
        for role in ["berth", "postgres", &a_user] {
            let out = as_user(
                &a_user,
                &[
                    "psql",
                    "-h",
                    &host.to_string_lossy(),
                    "-p",
                    &port,
                    "-U",
                    role,
                    "-d",
                    "postgres",
                    "-XAtc",
                    "select 1",
                ],
            );
            assert!(!out.status.success(), "{a_user} connects to {} as {role}", host.display());
        }
    }
    // A's data is on a filesystem of its own, of the store's size.
    let node_dir = a_data.parent().unwrap();
    assert_ne!(std::fs::metadata(node_dir).unwrap().dev(), std::fs::metadata(&app.nodes_root).unwrap().dev());
    let s = nix::sys::statvfs::statvfs(node_dir).unwrap();
    let size = s.blocks() as u64 * s.fragment_size() as u64;
    assert!((900 << 20..=1 << 30).contains(&size), "a 1 GB volume: {size}");
    let mode = std::fs::metadata(&a_data).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o700);

    // Deleting a store removes its volume and its OS user.
    let d = app.delete(&format!("/api/v1/orgs/{}/stores/{a}", app.owner_org)).cookie(&owner).send().await;
    app.job_succeeded(&owner, app.owner_org, d.accepted_job()).await;
    assert!(nix::unistd::User::from_name(&a_user).unwrap().is_none(), "{a_user} is gone");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains(&a.to_string()), "A's volume is unmounted");
}

fn store_view(v: &Value) -> (bool, bool) {
    (v["disk_full"].as_bool().unwrap(), v["nodes"][0]["disk_full"].as_bool().unwrap())
}

#[tokio::test]
async fn a_full_volume_fails_its_own_writes_and_nothing_else_until_it_grows() {
    // Volumes are Berth's only as root (the deploy options say so: see the test above).
    if !crate::helpers::root_can_run("a volume of its own per node") {
        return;
    }
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let (small, small_pw, small_port) = store(&app, &owner, "small", 1).await;
    let (_, other_pw, other_port) = store(&app, &owner, "other", 1).await;

    let mut conn = node_connect(small_port, "dbadmin", &small_pw, "defaultdb").await.unwrap();
    let e = run(
        &mut conn,
        "create table fill as select repeat(md5(g::text), 32) as t from generate_series(1, 1400000) g",
    )
    .await
    .expect_err("1.4 GB fits no 1 GB volume");
    assert!(
        e.contains("No space left on device") || e.contains("could not extend") || e.contains("connection"),
        "{e}"
    );
    // The other store and the API go on.
    let mut other = node_connect(other_port, "dbadmin", &other_pw, "defaultdb").await.unwrap();
    run(&mut other, "create table ok_after as select 1 as x").await.expect("another store still writes");

    berth::jobs::reconcile::check_all(&app.state.job_env()).await.unwrap();
    let s = app.get(&format!("/api/v1/orgs/{org}/stores/{small}")).cookie(&owner).send().await;
    assert_eq!(s.status, StatusCode::OK);
    assert_eq!(store_view(&s.json()), (true, true), "{}", s.text());
    // The rolled-back write's files are gone again: what was used before it, and the WAL it wrote.
    let node = &s.json()["nodes"][0];
    let (used, size) = (node["disk_used_bytes"].as_i64().unwrap(), node["disk_size_bytes"].as_i64().unwrap());
    assert!((900 << 20..=1 << 30).contains(&size) && 0 < used && used <= size, "{node}");
    let others = app.get(&format!("/api/v1/orgs/{org}/stores")).cookie(&owner).send().await.json();
    let other_view =
        others["items"].as_array().unwrap().iter().find(|s| s["name"] == "other").unwrap().clone();
    assert_eq!(store_view(&other_view), (false, false));
    // The store's events say so, once.
    let events =
        app.get(&format!("/api/v1/orgs/{org}/stores/{small}/events")).cookie(&owner).send().await.json();
    let full = events["items"].as_array().unwrap().iter().filter(|e| e["kind"] == "disk_full").count();
    assert_eq!(full, 1, "{events}");

    // Shrinking is refused; growing is online, and the store writes again.
    let url = format!("/api/v1/orgs/{org}/stores/{small}");
    app.patch(&url)
        .cookie(&owner)
        .json(json!({"volume_size": 0}))
        .send()
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let r = app.patch(&url).cookie(&owner).json(json!({"volume_size": 3})).send().await;
    let job = app.job_succeeded(&owner, org, r.accepted("store").job_id).await;
    assert!(job["steps"].as_array().unwrap().iter().any(|s| s.str_at("/name").starts_with("grow_volume:")));
    berth::jobs::reconcile::check_all(&app.state.job_env()).await.unwrap();
    let s = app.get(&url).cookie(&owner).send().await.json();
    assert_eq!(store_view(&s), (false, false), "{s}");
    assert!(s["nodes"][0]["disk_size_bytes"].as_i64().unwrap() > 2 << 30, "{s}");
    let mut conn = node_connect(small_port, "dbadmin", &small_pw, "defaultdb").await.unwrap();
    run(&mut conn, "create table after_growth as select 1 as x").await.expect("writes again");
}
