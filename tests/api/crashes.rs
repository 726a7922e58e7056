//! Berth killed inside the risky steps of each kind of job. A kill is made as its crash leaves
//! things: the workers stopped so that the job waits, what the step had done by then done by
//! hand, and the job left running under a dead worker's lease that has run out. Then a worker
//! (after the reconcile that a restarted Berth runs first, where a restart is what follows)
//! takes the job over; each test checks what a user sees once it has finished.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use berth::provision::NodeSpec;
use serde_json::json;
use uuid::Uuid;

use crate::backups::{Source, conn, count, store_with_rows};
use crate::client::{Backup, Fields, pg_version};
use crate::helpers::{TestApp, strand_job};

fn root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The app with its workers stopped: the next job waits in the queue, as if Berth had died
/// before a worker took it.
async fn without_workers(mut app: TestApp) -> TestApp {
    app.workers.take().expect("the app has workers").shutdown().await;
    app
}

/// The app as Berth restarted after the kill: its reconcile at start, then a worker.
async fn restarted(app: TestApp) -> TestApp {
    berth::jobs::reconcile::at_start(&app.state.job_env()).await.expect("the reconcile at start");
    app.with_workers(1).await
}

/// Waits for the job that a worker took over from the killed one: it succeeds, at its second
/// attempt.
async fn finished_on_retry(app: &TestApp, cookie: &str, job: Uuid) {
    let done = app.wait_job(cookie, app.owner_org, job).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 2, "{done}");
}

fn node_dir(app: &TestApp, store: Uuid, node: Uuid) -> PathBuf {
    app.nodes_root.join("stores").join(store.to_string()).join(node.to_string())
}

fn image(app: &TestApp, node: Uuid) -> PathBuf {
    berth::provision::local::volume::image_for(&app.nodes_root, node.into())
}

async fn spec(app: &TestApp, store: Uuid, node: Uuid) -> NodeSpec {
    let now = app.clock_now();
    app.state
        .plane
        .node_spec(&app.db, app.owner_org.into(), store.into(), node.into(), now)
        .await
        .unwrap()
        .expect("the node")
}

fn mounted(id: Uuid) -> bool {
    std::fs::read_to_string("/proc/self/mounts").unwrap().contains(&id.to_string())
}

/// What a killed step had done to a node by then: its row says `removing`, its server is
/// stopped and, as root, its volume unmounted (`and_image`: its image removed too, with what
/// was on it).
async fn half_removed(app: &TestApp, store: Uuid, node: Uuid, and_image: bool) {
    sqlx::query("update store_nodes set state = 'removing' where id = $1")
        .bind(node)
        .execute(&app.db)
        .await
        .unwrap();
    app.state.plane.driver.stop(&spec(app, store, node).await).await.unwrap();
    if root() {
        let umount = std::process::Command::new("umount").arg(node_dir(app, store, node)).status();
        assert!(umount.unwrap().success());
        if and_image {
            std::fs::remove_file(image(app, node)).unwrap();
        }
    }
}

/// What is left in a node's folder beside `data` and its log: what restores set aside.
fn set_aside(dir: &Path) -> Vec<String> {
    let names =
        std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned());
    names.filter(|n| n.starts_with("data.")).collect()
}

#[tokio::test]
async fn a_restore_killed_after_setting_the_data_aside_keeps_it_until_its_retry_succeeds() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let Source { id, password, port, base } = store_with_rows(&app, &owner, "restored", 100).await;
    let full = app.take_backup(&owner, org, id, "full").await.id;
    sqlx::raw_sql("insert into t select generate_series(101, 150)")
        .execute(&mut conn(port, &password).await)
        .await
        .unwrap();
    let app = without_workers(app).await;
    let r = app
        .post(&format!("{base}/restore"))
        .cookie(&owner)
        .json(json!({"backup_id": full, "confirm": "restored"}))
        .send()
        .await;
    let job = r.accepted_job();
    let node = app.store(&owner, org, id).await.uuid_at("/nodes/0/id");
    let dir = node_dir(&app, id, node);

    // Killed inside RESTORE_NODE: the server stopped and its data set aside, the backup's copy
    // not yet in its place.
    app.state.plane.driver.stop(&spec(&app, id, node).await).await.unwrap();
    std::fs::rename(dir.join("data"), dir.join("data.before-restore")).unwrap();
    // And from an earlier kill: data a restore replaced, whose removal died with Berth.
    let trash = dir.join(format!("data.removing-{}", Uuid::now_v7().simple()));
    std::fs::create_dir_all(trash.join("base")).unwrap();
    std::fs::write(trash.join("base/1"), vec![7u8; 1 << 20]).unwrap();
    strand_job(&app, job, 0).await;

    berth::jobs::reconcile::at_start(&app.state.job_env()).await.unwrap();
    assert!(dir.join("data.before-restore/PG_VERSION").exists(), "the restart keeps the data set aside");
    let app = app.with_workers(1).await;
    finished_on_retry(&app, &owner, job).await;
    app.wait_store(&owner, org, id, "available").await;
    assert_eq!(count(port, &password).await, 100, "exactly the backup's rows");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !set_aside(&dir).is_empty() {
        assert!(Instant::now() < deadline, "left in the node's folder: {:?}", set_aside(&dir));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_resize_killed_between_stopping_and_starting_a_node_ends_resized_and_serving() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let Source { id, password, port, base } = store_with_rows(&app, &owner, "resized", 100).await;
    let app = without_workers(app).await;
    let r = app
        .patch(&base)
        .cookie(&owner)
        .json(json!({"instance_size": "small", "volume_size": 12}))
        .send()
        .await;
    let resize = r.accepted("store");
    let (job, node) = (resize.job_id, resize.body.uuid_at("/store/nodes/0/id"));

    // Killed inside RECONFIGURE_NODE: the server stopped, not yet started again; as root, with
    // the volume's image extended and its filesystem not yet grown.
    app.state.plane.driver.stop(&spec(&app, id, node).await).await.unwrap();
    if root() {
        let file = std::fs::OpenOptions::new().write(true).open(image(&app, node)).unwrap();
        file.set_len(12 << 30).unwrap();
    }
    strand_job(&app, job, 0).await;

    // Another worker takes the job over once the lease runs out; nothing restarted meanwhile.
    let app = app.with_workers(1).await;
    finished_on_retry(&app, &owner, job).await;
    let s = app.wait_store(&owner, org, id, "available").await;
    assert_eq!((s["instance_size"].as_str(), s["volume_size"].as_i64()), (Some("small"), Some(12)), "{s}");
    assert_eq!(s["nodes"][0]["state"], "running", "{s}");
    let mut c = conn(port, &password).await;
    let buffers: String = sqlx::query_scalar("show shared_buffers").fetch_one(&mut c).await.unwrap();
    assert_eq!(buffers, "256MB", "the new size's settings");
    assert_eq!(count(port, &password).await, 100, "and the data");
    if root() {
        let df = std::process::Command::new("df")
            .args(["-B1", "--output=size"])
            .arg(node_dir(&app, id, node))
            .output()
            .unwrap();
        let size: u64 = String::from_utf8_lossy(&df.stdout).lines().nth(1).unwrap().trim().parse().unwrap();
        assert!(size > 11 << 30, "the filesystem grew to the new volume size: {size} bytes");
    }
}

#[tokio::test]
async fn a_node_removal_killed_after_its_server_stopped_finishes_and_leaves_nothing() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let ready = app.new_ready_store(&owner, "shrunk", 2).await;
    let (id, password) = (ready.id, ready.password.clone());
    let (primary, replica) = (ready.node("primary"), ready.node("replica"));
    let port = primary["port"].as_i64().unwrap();
    sqlx::raw_sql("create table t (x int); insert into t select generate_series(1, 100)")
        .execute(&mut conn(port, &password).await)
        .await
        .unwrap();
    let app = without_workers(app).await;
    let gone = replica.uuid_at("/id");
    let r = app.delete(&format!("{}/nodes/{gone}", ready.path())).cookie(&owner).send().await;
    let job = r.accepted("store").job_id;

    // Killed inside REMOVE_NODE: its server stopped and its volume unmounted; its row, folder
    // and volume's image still there.
    half_removed(&app, id, gone, false).await;
    strand_job(&app, job, 0).await;

    let app = restarted(app).await;
    finished_on_retry(&app, &owner, job).await;
    let s = app.wait_store(&owner, org, id, "available").await;
    let nodes: Vec<Uuid> = s["nodes"].as_array().unwrap().iter().map(|n| n.uuid_at("/id")).collect();
    assert_eq!(nodes, [primary.uuid_at("/id")], "{s}");
    assert!(!node_dir(&app, id, gone).exists(), "the node's folder is gone");
    assert!(!image(&app, gone).exists() && !mounted(gone), "and its volume");
    let replica_port = replica["port"].as_u64().unwrap() as u16;
    assert!(tokio::net::TcpStream::connect(("127.0.0.1", replica_port)).await.is_err(), "and its server");
    assert_eq!(count(port, &password).await, 100, "the primary serves the data");
    if root() {
        let user = berth::provision::local::users::StoreUsers::new(&app.nodes_root).name(id.into());
        assert!(nix::unistd::User::from_name(&user).unwrap().is_some(), "the store's OS user stays for it");
    }
}

#[tokio::test]
async fn a_store_deletion_killed_mid_way_finishes_leaves_nothing_on_the_host_and_keeps_the_backups() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let Source { id, base, .. } = store_with_rows(&app, &owner, "deleted", 100).await;
    let full = app.take_backup(&owner, org, id, "full").await;
    let node = app.store(&owner, org, id).await.uuid_at("/nodes/0/id");
    let app = without_workers(app).await;
    let job = app.delete(&base).cookie(&owner).send().await.accepted_job();

    // Killed inside the REMOVE_NODE of its only node: the server stopped, its volume and
    // everything on it removed; the folder, the store's OS user and the row left.
    half_removed(&app, id, node, true).await;
    strand_job(&app, job, 0).await;

    let app = restarted(app).await;
    finished_on_retry(&app, &owner, job).await;
    app.wait_store(&owner, org, id, "gone").await;
    assert!(!app.nodes_root.join("stores").join(id.to_string()).exists(), "the store's folder is gone");
    assert!(!mounted(node) && !image(&app, node).exists(), "and its volume");
    if root() {
        let user = berth::provision::local::users::StoreUsers::new(&app.nodes_root).name(id.into());
        assert!(nix::unistd::User::from_name(&user).unwrap().is_none(), "and its OS user");
    }
    let key = format!("{id}/{}.tar.gz", full.id);
    let archive = app.state.plane.backups.readable(&key).await.unwrap();
    let (_, sha256) = berth::backup::checksum(&archive).await.expect("the backup is kept");
    assert_eq!(Some(sha256.as_str()), full.body["sha256"].as_str(), "whole");
}

#[tokio::test]
async fn a_vpc_deletion_killed_inside_removing_its_namespace_leaves_none() {
    let app = TestApp::spawn().await.with_workers(1).await;
    let owner = app.login_owner().await;
    if !crate::vpcs::networks_or_refusal(&app, &owner).await {
        return;
    }
    let org = app.owner_org;
    let id = app.create_vpc(&owner, org, "doomed", "10.75.0.0/24").await;
    let app = without_workers(app).await;
    let job = app.delete(&format!("/api/v1/orgs/{org}/vpcs/{id}")).cookie(&owner).send().await.accepted_job();

    // Killed inside `ip netns del`: the namespace unmounted, its file not yet unlinked.
    let ns = crate::vpcs::netns(&app, id);
    let file = Path::new("/var/run/netns").join(&ns);
    assert!(std::process::Command::new("umount").arg(&file).status().unwrap().success());
    assert!(file.exists());
    strand_job(&app, job, 0).await;

    let app = restarted(app).await;
    finished_on_retry(&app, &owner, job).await;
    let r = app.get(&format!("/api/v1/orgs/{org}/vpcs/{id}")).cookie(&owner).send().await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text());
    assert!(!file.exists() && !crate::vpcs::namespaces().contains(&ns), "no namespace is left");
}

#[tokio::test]
async fn a_backup_killed_after_it_was_recorded_keeps_its_archive_whatever_the_retry_meets() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let Source { id, base, .. } = store_with_rows(&app, &owner, "backed", 100).await;
    let Backup { id: full_id, body: full } = app.take_backup(&owner, app.owner_org, id, "full").await;
    let job: Uuid =
        sqlx::query_scalar("select id from jobs where kind = 'backup'").fetch_one(&app.db).await.unwrap();
    let app = without_workers(app).await;

    // Killed after TAKE_BACKUP recorded the backup, before the job was marked done; by the
    // retry, its last, the node it was taken from is down.
    let node = full.uuid_at("/node_id");
    app.state.plane.driver.stop(&spec(&app, id, node).await).await.unwrap();
    strand_job(&app, job, 0).await;
    sqlx::query("update jobs set max_attempts = 2 where id = $1").bind(job).execute(&app.db).await.unwrap();

    let app = app.with_workers(1).await;
    finished_on_retry(&app, &owner, job).await;
    let b = app.get(&format!("{base}/backups/{full_id}")).cookie(&owner).send().await;
    assert_eq!(b.json()["status"], "succeeded", "{}", b.text());
    assert_eq!(b.json()["sha256"], full["sha256"], "the same archive");
    let dl = app.get(&format!("{base}/backups/{full_id}/download")).cookie(&owner).send().await;
    assert_eq!(dl.status, StatusCode::OK, "{}", dl.text());
    use sha2::Digest;
    assert_eq!(hex::encode(sha2::Sha256::digest(&dl.body)), full.str_at("/sha256"));
}

#[tokio::test]
async fn parameters_applied_by_a_restart_that_was_killed_half_way_are_applied_and_served() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let Source { id, password, port, base } = store_with_rows(&app, &owner, "tuned", 100).await;
    let g = app
        .post(&format!("/api/v1/orgs/{org}/parameter-groups"))
        .cookie(&owner)
        .json(json!({"name": "more", "vendor": "postgres", "version": pg_version(),
                     "parameters": {"max_connections": "60"}}))
        .send()
        .await;
    assert_eq!(g.status, StatusCode::CREATED, "{}", g.text());
    let app = without_workers(app).await;
    let r = app
        .post(&format!("{base}/parameter-group"))
        .cookie(&owner)
        .json(json!({"group_id": g.json()["id"]}))
        .send()
        .await;
    let job = r.accepted_job();

    // Killed inside APPLY_PARAMETERS, in the restart its new max_connections needs: the
    // parameter written, the server stopped, not yet started.
    let node = app.store(&owner, org, id).await.uuid_at("/nodes/0/id");
    let spec = spec(&app, id, node).await;
    let mut su = app.state.plane.driver.superuser(&spec, "postgres").await.unwrap();
    sqlx::query("alter system set max_connections = '60'").execute(&mut su).await.unwrap();
    drop(su);
    app.state.plane.driver.stop(&spec).await.unwrap();
    strand_job(&app, job, 0).await;

    // Another worker takes it over once the lease runs out; nothing restarted meanwhile.
    let app = app.with_workers(1).await;
    finished_on_retry(&app, &owner, job).await;
    app.wait_store(&owner, org, id, "available").await;
    let mut c = conn(port, &password).await;
    let max: String = sqlx::query_scalar("show max_connections").fetch_one(&mut c).await.unwrap();
    assert_eq!(max, "60");
    assert_eq!(count(port, &password).await, 100);
}
