//! High availability on real servers: switchovers, failovers with fencing, the old primary's
//! return, the failover monitor's guards, and synchronous mode.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use berth::jobs::monitor::{Monitor, MonitorSettings};
use berth::provision::NodeSpec;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::client::{Fields, ReadyStore};
use crate::helpers::{TestApp, node_connect as connect, postmaster_of};

const USER: &str = "dbadmin";
const DB: &str = "defaultdb";

fn settings(max_failovers: u32) -> MonitorSettings {
    MonitorSettings {
        probe_interval: Duration::from_millis(200),
        max_failovers,
        failover_window: Duration::from_secs(3600),
    }
}

/// The failover monitor of this app, probing every 200 ms until the handle is dropped.
struct Running(tokio::task::JoinHandle<()>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn monitor(app: &TestApp) -> Running {
    Running(tokio::spawn(Monitor::new(app.state.job_env(), settings(3)).run()))
}

fn pgdata(app: &TestApp, store: &ReadyStore, node: Uuid) -> std::path::PathBuf {
    app.nodes_root.join("stores").join(store.id.to_string()).join(node.to_string()).join("data")
}

async fn spec(app: &TestApp, store: Uuid, node: Uuid) -> NodeSpec {
    let now = app.clock_now();
    app.state
        .plane
        .node_spec(&app.db, app.owner_org.into(), store.into(), node.into(), now)
        .await
        .unwrap()
        .unwrap()
}

async fn superuser(app: &TestApp, store: Uuid, node: Uuid) -> PgConnection {
    app.state.plane.driver.superuser(&spec(app, store, node).await, "postgres").await.unwrap()
}

/// Waits (a minute at most) until `check` holds.
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn topology(app: &TestApp, cookie: &str, store: &ReadyStore) -> Value {
    let r = app.get(&format!("{}/topology", store.path())).cookie(cookie).send().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()
}

fn node_of(topology: &Value, id: Uuid) -> Value {
    topology["nodes"].as_array().unwrap().iter().find(|n| n.uuid_at("/id") == id).unwrap().clone()
}

fn port(view: &Value, id: Uuid) -> i64 {
    view["nodes"].as_array().unwrap().iter().find(|n| n.uuid_at("/id") == id).unwrap()["port"]
        .as_i64()
        .unwrap()
}

async fn count(port: i64, password: &str, sql: &str) -> Option<i64> {
    let mut c = connect(port, USER, password, DB).await.ok()?;
    sqlx::query_scalar(sql).fetch_one(&mut c).await.ok()
}

/// The pid of the WAL sender feeding `standby` on the primary.
async fn wal_sender(primary: &mut PgConnection, standby: Uuid) -> i32 {
    sqlx::query_scalar("select pid from pg_stat_replication where application_name = $1")
        .bind(standby.to_string())
        .fetch_one(primary)
        .await
        .unwrap()
}

/// Runs `sql` with psql on the multi-host URI: whichever node is the primary takes it.
fn psql(uri: &str, password: &str, sql: &str) -> Result<String, String> {
    let out = std::process::Command::new("psql")
        .arg(uri)
        .args(["-XqAtc", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "3")
        .output()
        .map_err(|e| format!("running psql: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() { Ok(text) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
}

async fn job_of_kind(app: &TestApp, cookie: &str, store: &ReadyStore, kind: &str) -> Option<Uuid> {
    let r = app.get(&format!("{}/jobs", store.path())).cookie(cookie).send().await.json();
    r["items"].as_array().unwrap().iter().find(|j| j["kind"] == kind).map(|j| j.uuid_at("/id"))
}

async fn event_kinds(app: &TestApp, cookie: &str, store: &ReadyStore) -> Vec<String> {
    let r = app.get(&format!("{}/events", store.path())).cookie(cookie).send().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()["items"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect()
}

/// PATCHes the store's HA settings; the store as it answers (with its job, if one applies them).
async fn patch_ha(app: &TestApp, cookie: &str, store: &ReadyStore, ha: Value) -> Value {
    let r = app.patch(&store.path()).cookie(cookie).json(json!({ "ha": ha })).send().await;
    match r.status {
        StatusCode::OK => r.json(),
        StatusCode::ACCEPTED => r.json()["store"].clone(),
        other => panic!("PATCH answered {other}: {}", r.text()),
    }
}

/// Every node has caught up with `rows` rows of `t` (the topology and the jobs are shown if one
/// does not within a minute and a half).
async fn replicated(app: &TestApp, store: &ReadyStore, view: &Value, rows: i64) {
    for n in view["nodes"].as_array().unwrap() {
        let p = n["port"].as_i64().unwrap();
        let deadline = Instant::now() + Duration::from_secs(90);
        while count(p, &store.password, "select count(*) from t").await != Some(rows) {
            if Instant::now() > deadline {
                let owner = app.login_owner().await;
                let t = topology(app, &owner, store).await;
                let jobs = app.get(&format!("{}/jobs", store.path())).cookie(&owner).send().await.text();
                let events = app.get(&format!("{}/events", store.path())).cookie(&owner).send().await.text();
                panic!(
                    "node {} never had {rows} rows\ntopology: {t}\njobs: {jobs}\nevents: {events}",
                    n["id"]
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::test]
async fn a_switchover_moves_the_primary_keeps_every_row_and_the_others_follow() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let store = app.new_ready_store(&owner, "ha-switch", 3).await;
    let old = store.node("primary").uuid_at("/id");
    let pw = store.password.clone();
    let mut p = connect(port(&store.view, old), USER, &pw, DB).await.unwrap();
    sqlx::raw_sql("create table t (x int); insert into t select generate_series(1, 100)")
        .execute(&mut p)
        .await
        .unwrap();
    drop(p);
    replicated(&app, &store, &store.view, 100).await;
    let replicas = store.replicas();
    let (candidate, third) = (replicas[0], replicas[1]);
    let uri = store.view["connection"]["multi_host_uri"].as_str().unwrap().to_owned();
    assert!(uri.contains("target_session_attrs=read-write"), "{uri}");
    for n in store.view["nodes"].as_array().unwrap() {
        assert!(uri.contains(&format!(":{}", n["port"])), "{uri} names every node");
    }

    let path = format!("{}/switchover", store.path());
    // Refusals change nothing.
    let r = app.post(&path).cookie(&owner).json(json!({"candidate_node_id": old})).send().await;
    r.assert_problem(StatusCode::CONFLICT, "candidate_is_primary");
    let r = app.post(&path).cookie(&owner).json(json!({"candidate_node_id": Uuid::now_v7()})).send().await;
    r.assert_problem(StatusCode::CONFLICT, "candidate_unknown");
    let r = app.post(&path).cookie(&owner).json(json!({"candidate_node_id": "nope"})).send().await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    // One scheduled for later is a queued job in the way of another, and can be cancelled.
    let later = (time::OffsetDateTime::now_utc() + time::Duration::HOUR)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let r = app
        .post(&path)
        .cookie(&owner)
        .json(json!({"candidate_node_id": candidate, "scheduled_at": later}))
        .send()
        .await;
    let scheduled = r.accepted_job();
    let r = app.post(&path).cookie(&owner).json(json!({"candidate_node_id": candidate})).send().await;
    r.assert_problem(StatusCode::CONFLICT, "job_in_progress");
    let r = app.delete(&path).cookie(&owner).send().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["id"], scheduled.to_string());
    assert_eq!(r.json()["status"], "cancelled");
    app.delete(&path).cookie(&owner).send().await.assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(topology(&app, &owner, &store).await["primary_node_id"], old.to_string());

    // The switchover itself.
    let r = app.post(&path).cookie(&owner).json(json!({"candidate_node_id": candidate})).send().await;
    app.job_succeeded(&owner, org, r.accepted_job()).await;
    let view = app.wait_store(&owner, org, store.id, "available").await;
    let t = topology(&app, &owner, &store).await;
    assert_eq!(t["primary_node_id"], candidate.to_string(), "{t}");
    assert_eq!(t["timeline"], 2, "{t}");
    assert_eq!(node_of(&t, old)["role"], "replica");
    assert_eq!(node_of(&t, old)["fenced"], false);
    // Every row written before is on every node, and the new primary takes writes.
    let mut np = connect(port(&view, candidate), USER, &pw, DB).await.unwrap();
    sqlx::query("insert into t values (101)").execute(&mut np).await.unwrap();
    replicated(&app, &store, &view, 101).await;
    // The old primary and the third node stream from the new one.
    let driver = app.state.plane.driver.clone();
    for n in [old, third] {
        let s = driver.replication(&spec(&app, store.id, n).await).await.unwrap().expect("answers");
        assert!(s.in_recovery, "node {n} is a standby");
        let receiver = s.receiver.expect("a WAL receiver");
        assert_eq!(
            i64::from(receiver.sender_port.unwrap()),
            port(&view, candidate),
            "node {n} follows the new primary"
        );
        assert_eq!(s.timeline, 2);
    }
    // Through the multi-host URI, writes reach the new primary.
    assert_eq!(psql(&uri, &pw, "insert into t values (102); select count(*) from t").unwrap(), "102");
    let h = app.get(&format!("{}/history", store.path())).cookie(&owner).send().await.json();
    let items = h["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{h}");
    assert_eq!(items[0]["kind"], "switchover");
    assert_eq!(items[0]["from_node_id"], old.to_string());
    assert_eq!(items[0]["to_node_id"], candidate.to_string());
    assert_eq!(items[0]["timeline"], 2);
    assert_eq!(items[0]["estimated_bytes_lost"], 0);
    assert!(items[0]["switch_lsn"].as_str().is_some_and(|l| l.contains('/')), "{h}");
    assert!(event_kinds(&app, &owner, &store).await.contains(&"switchover".to_owned()));
    // A person's switchover is in the audit trail.
    let audited: i64 =
        sqlx::query_scalar("select count(*) from audit_events where action = 'store.switchover'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(audited, 2, "the scheduled one and this one");
    app.delete_store(&owner, org, store.id).await;
}

#[tokio::test]
async fn a_switchover_without_a_candidate_takes_the_most_advanced_and_refuses_a_lagging_one() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    // A store without replicas has nothing to switch over to.
    let single = app.new_ready_store(&owner, "ha-single", 1).await;
    let r = app.post(&format!("{}/switchover", single.path())).cookie(&owner).json(json!({})).send().await;
    r.assert_problem(StatusCode::CONFLICT, "no_replicas");

    let store = app.new_ready_store(&owner, "ha-lag", 3).await;
    patch_ha(&app, &owner, &store, json!({"max_lag_on_failover_bytes": 4096})).await;
    let primary = store.node("primary").uuid_at("/id");
    let pw = store.password.clone();
    let mut p = connect(port(&store.view, primary), USER, &pw, DB).await.unwrap();
    sqlx::raw_sql("create table t (x int)").execute(&mut p).await.unwrap();
    replicated(&app, &store, &store.view, 0).await;
    let replicas = store.replicas();
    let (lagging, ahead) = (replicas[0], replicas[1]);
    // The lagging replica's WAL receiver is paused: it still says it streams, but falls behind.
    let mut su = superuser(&app, store.id, lagging).await;
    let receiver: i32 =
        sqlx::query_scalar("select pid from pg_stat_wal_receiver").fetch_one(&mut su).await.unwrap();
    drop(su);
    kill(Pid::from_raw(receiver), Signal::SIGSTOP).unwrap();
    sqlx::raw_sql("insert into t select generate_series(1, 2000)").execute(&mut p).await.unwrap();
    eventually("the other replica catches up", || async {
        count(port(&store.view, ahead), &pw, "select count(*) from t").await == Some(2000)
    })
    .await;
    let path = format!("{}/switchover", store.path());
    let r = app.post(&path).cookie(&owner).json(json!({"candidate_node_id": lagging})).send().await;
    r.assert_problem(StatusCode::CONFLICT, "candidate_lagging");
    assert!(r.json()["detail"].as_str().unwrap().contains("bytes of WAL behind"), "{}", r.text());
    let r = app.post(&path).cookie(&owner).json(json!({})).send().await;
    let job = r.accepted_job();
    kill(Pid::from_raw(receiver), Signal::SIGCONT).unwrap();
    app.job_succeeded(&owner, org, job).await;
    let t = topology(&app, &owner, &store).await;
    assert_eq!(t["primary_node_id"], ahead.to_string(), "the most advanced replica: {t}");
    let view = app.wait_store(&owner, org, store.id, "available").await;
    replicated(&app, &store, &view, 2000).await;

    // A candidate that never receives the shutdown checkpoint (its receiver paused once the
    // checks passed): the old primary is started again as the primary, and nothing is lost.
    let (primary, candidate) = (ahead, primary);
    patch_ha(&app, &owner, &store, json!({"max_lag_on_failover_bytes": 1 << 20})).await;
    let mut su = superuser(&app, store.id, candidate).await;
    let receiver: i32 =
        sqlx::query_scalar("select pid from pg_stat_wal_receiver").fetch_one(&mut su).await.unwrap();
    drop(su);
    kill(Pid::from_raw(receiver), Signal::SIGSTOP).unwrap();
    let r = app.post(&path).cookie(&owner).json(json!({"candidate_node_id": candidate})).send().await;
    let done = app.wait_job(&owner, org, r.accepted_job()).await;
    kill(Pid::from_raw(receiver), Signal::SIGCONT).unwrap();
    assert_eq!(done["status"], "failed", "{done}");
    assert!(done["error"].as_str().unwrap().contains("switchover aborted"), "{done}");
    assert_eq!(done["attempts"], 1, "an aborted switchover is not tried again: {done}");
    let t = topology(&app, &owner, &store).await;
    assert_eq!(t["primary_node_id"], primary.to_string(), "{t}");
    let mut p = connect(port(&view, primary), USER, &pw, DB).await.unwrap();
    sqlx::query("insert into t values (2001)").execute(&mut p).await.unwrap();
    let view = app.wait_store(&owner, org, store.id, "available").await;
    replicated(&app, &store, &view, 2001).await;
    assert!(event_kinds(&app, &owner, &store).await.contains(&"switchover_aborted".to_owned()));
    app.delete_store(&owner, org, single.id).await;
    app.delete_store(&owner, org, store.id).await;
}

#[tokio::test]
async fn a_killed_primary_fails_over_to_the_most_advanced_replica_and_returns_without_its_divergent_writes() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let store = app.new_ready_store(&owner, "ha-fail", 3).await;
    patch_ha(&app, &owner, &store, json!({"failover_delay": 1})).await;
    let _monitor = monitor(&app);
    let old = store.node("primary").uuid_at("/id");
    let pw = store.password.clone();
    let uri = store.view["connection"]["multi_host_uri"].as_str().unwrap().to_owned();
    let mut p = connect(port(&store.view, old), USER, &pw, DB).await.unwrap();
    sqlx::raw_sql("create table t (x int); insert into t select generate_series(1, 100)")
        .execute(&mut p)
        .await
        .unwrap();
    replicated(&app, &store, &store.view, 100).await;
    let replicas = store.replicas();
    let (lagging, ahead) = (replicas[0], replicas[1]);
    let mut su = superuser(&app, store.id, old).await;
    // One replica stops receiving; the other receives a hundred rows more.
    let to_lagging = wal_sender(&mut su, lagging).await;
    kill(Pid::from_raw(to_lagging), Signal::SIGSTOP).unwrap();
    sqlx::raw_sql("insert into t select generate_series(101, 200)").execute(&mut p).await.unwrap();
    eventually("the replica ahead has 200 rows", || async {
        count(port(&store.view, ahead), &pw, "select count(*) from t").await == Some(200)
    })
    .await;
    // Then nothing more leaves the primary: this row is its alone.
    let to_ahead = wal_sender(&mut su, ahead).await;
    kill(Pid::from_raw(to_ahead), Signal::SIGSTOP).unwrap();
    sqlx::raw_sql("insert into t values (-1)").execute(&mut p).await.unwrap();
    drop((p, su));
    let postmaster = postmaster_of(&pgdata(&app, &store, old)).expect("the primary's postmaster");
    kill(Pid::from_raw(postmaster), Signal::SIGKILL).unwrap();

    // A new primary takes writes through the multi-host URI.
    eventually("a new primary accepts writes through the multi-host URI", || async {
        psql(&uri, &pw, "insert into t values (201)").is_ok()
    })
    .await;
    let t = topology(&app, &owner, &store).await;
    assert_eq!(t["primary_node_id"], ahead.to_string(), "the lagging replica is not chosen: {t}");
    assert_eq!(psql(&uri, &pw, "select count(*) from t where x > 0").unwrap(), "201");
    assert_eq!(
        psql(&uri, &pw, "select count(*) from t where x = -1").unwrap(),
        "0",
        "the divergent row never replicated"
    );
    let job = job_of_kind(&app, &owner, &store, "failover").await.expect("a failover job");
    app.job_succeeded(&owner, org, job).await;
    let view = app.wait_store(&owner, org, store.id, "available").await;
    // The old primary is back as a replica of the new one, its divergent row gone.
    let t = topology(&app, &owner, &store).await;
    let back = node_of(&t, old);
    assert_eq!(back["role"], "replica", "{t}");
    assert_eq!(back["fenced"], false, "{t}");
    replicated(&app, &store, &view, 201).await;
    assert_eq!(count(port(&view, old), &pw, "select count(*) from t where x = -1").await, Some(0));
    let h = app.get(&format!("{}/history", store.path())).cookie(&owner).send().await.json();
    let last = &h["items"][0];
    assert_eq!(last["kind"], "failover", "{h}");
    assert_eq!(last["automatic"], true);
    assert_eq!(last["from_node_id"], old.to_string());
    assert_eq!(last["to_node_id"], ahead.to_string());
    let kinds = event_kinds(&app, &owner, &store).await;
    for k in ["node_down", "fenced", "failover", "rejoined"] {
        assert!(kinds.contains(&k.to_owned()), "{k} in {kinds:?}");
    }
    app.delete_store(&owner, org, store.id).await;
}

#[tokio::test]
async fn a_primary_back_within_the_delay_keeps_its_place_and_the_failover_limit_pauses_the_store() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let store = app.new_ready_store(&owner, "ha-guard", 2).await;
    let primary = store.node("primary").uuid_at("/id");
    let replica = store.node("replica").uuid_at("/id");
    patch_ha(&app, &owner, &store, json!({"failover_delay": 30})).await;
    let driver = app.state.plane.driver.clone();
    let primary_spec = spec(&app, store.id, primary).await;
    // A monitor that allows no automatic failover at all, driven probe by probe. One instance
    // at a time leads; another takes over once the leader's lease has run out.
    let mut other = Monitor::new(app.state.job_env(), settings(0));
    assert!(other.tick().await.unwrap(), "the first leads");
    let mut m = Monitor::new(app.state.job_env(), settings(0));
    assert!(!m.tick().await.unwrap(), "a second waits");
    app.clock.advance(time::Duration::seconds(10));
    assert!(m.tick().await.unwrap(), "the second takes over a lapsed lease");
    assert!(!other.tick().await.unwrap(), "and the first no longer leads");
    driver.stop(&primary_spec).await.unwrap();
    for _ in 0..5 {
        m.tick().await.unwrap();
    }
    driver.start(&primary_spec).await.unwrap();
    m.tick().await.unwrap();
    assert_eq!(
        job_of_kind(&app, &owner, &store, "failover").await,
        None,
        "back within the delay: no failover"
    );
    let kinds = event_kinds(&app, &owner, &store).await;
    assert!(kinds.contains(&"node_down".to_owned()) && kinds.contains(&"node_up".to_owned()), "{kinds:?}");
    assert_eq!(topology(&app, &owner, &store).await["primary_node_id"], primary.to_string());

    // Down for longer than the delay, with the limit at 0: paused for a person, not failed over.
    patch_ha(&app, &owner, &store, json!({"failover_delay": 1})).await;
    driver.fence(&primary_spec).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while topology(&app, &owner, &store).await["phase"] != "paused" {
        assert!(Instant::now() < deadline, "the limit pauses the store");
        m.tick().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(job_of_kind(&app, &owner, &store, "failover").await, None);
    assert!(event_kinds(&app, &owner, &store).await.contains(&"ha_paused".to_owned()));
    let t = topology(&app, &owner, &store).await;
    assert_eq!(t["ha"]["paused"], true, "{t}");
    assert!(t["ha"]["paused_reason"].as_str().unwrap().contains("automatic failovers"), "{t}");

    // A person resumes it (with the limit raised, in another instance that takes over the
    // monitor's lease): the next probes fail over.
    let r = app.post(&format!("{}/ha/resume", store.path())).cookie(&owner).send().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["ha"]["paused"], false);
    m.resign().await;
    let mut m = Monitor::new(app.state.job_env(), settings(3));
    let deadline = Instant::now() + Duration::from_secs(60);
    let job = loop {
        m.tick().await.unwrap();
        if let Some(job) = job_of_kind(&app, &owner, &store, "failover").await {
            break job;
        }
        assert!(Instant::now() < deadline, "resumed, the store fails over");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    app.job_succeeded(&owner, org, job).await;
    assert_eq!(topology(&app, &owner, &store).await["primary_node_id"], replica.to_string());
    app.delete_store(&owner, org, store.id).await;
}

#[tokio::test]
async fn a_node_running_read_write_without_being_the_primary_is_fenced_and_a_repair_brings_it_back() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let store = app.new_ready_store(&owner, "ha-fence", 2).await;
    let replica = store.node("replica").uuid_at("/id");
    let pw = store.password.clone();
    // Promoted behind Berth's back: two servers take writes.
    let mut su = superuser(&app, store.id, replica).await;
    sqlx::query("select pg_promote(true, 60)").execute(&mut su).await.unwrap();
    drop(su);
    // Berth's start stops it before anything else, and fences it.
    berth::jobs::reconcile::at_start(&app.state.job_env()).await.unwrap();
    assert!(count(port(&store.view, replica), &pw, "select 1").await.is_none(), "it no longer serves");
    let t = topology(&app, &owner, &store).await;
    assert_eq!(node_of(&t, replica)["fenced"], true, "{t}");
    assert_eq!(t["phase"], "degraded");
    // Starting Berth again leaves it stopped.
    berth::jobs::reconcile::at_start(&app.state.job_env()).await.unwrap();
    assert!(
        count(port(&store.view, replica), &pw, "select 1").await.is_none(),
        "a fenced node stays stopped"
    );
    // A repair rejoins it as a replica.
    let r = app.post(&format!("{}/repair", store.path())).cookie(&owner).send().await;
    app.job_succeeded(&owner, org, r.accepted_job()).await;
    let t = topology(&app, &owner, &store).await;
    assert_eq!(node_of(&t, replica)["fenced"], false, "{t}");
    let mut c = connect(port(&store.view, replica), USER, &pw, DB).await.unwrap();
    let recovering: bool = sqlx::query_scalar("select pg_is_in_recovery()").fetch_one(&mut c).await.unwrap();
    assert!(recovering, "it is a replica again");
    app.delete_store(&owner, org, store.id).await;
}

#[tokio::test]
async fn in_synchronous_mode_a_failover_under_writes_loses_no_acknowledged_commit() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let store = app.new_ready_store(&owner, "ha-sync", 3).await;
    let view = patch_ha(&app, &owner, &store, json!({"synchronous": "any_1", "failover_delay": 1})).await;
    assert_eq!(view["ha"]["synchronous"], "any_1");
    let old = store.node("primary").uuid_at("/id");
    let pw = store.password.clone();
    let job = job_of_kind(&app, &owner, &store, "apply_ha").await.expect("the mode is applied by a job");
    app.job_succeeded(&owner, org, job).await;
    let mut su = superuser(&app, store.id, old).await;
    let names: String =
        sqlx::query_scalar("show synchronous_standby_names").fetch_one(&mut su).await.unwrap();
    assert!(names.starts_with("ANY 1 ("), "{names}");
    drop(su);
    let mut p = connect(port(&store.view, old), USER, &pw, DB).await.unwrap();
    sqlx::raw_sql("create table t (x int primary key)").execute(&mut p).await.unwrap();
    let _monitor = monitor(&app);
    // A writer that records every commit acknowledged to it.
    let writer = tokio::spawn(async move {
        let mut acked = Vec::new();
        for i in 1.. {
            if sqlx::query("insert into t values ($1)").bind(i).execute(&mut p).await.is_err() {
                break;
            }
            acked.push(i);
        }
        acked
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    kill(Pid::from_raw(postmaster_of(&pgdata(&app, &store, old)).unwrap()), Signal::SIGKILL).unwrap();
    let acked = writer.await.unwrap();
    assert!(acked.len() > 10, "the writer committed before the kill ({})", acked.len());
    let uri = store.view["connection"]["multi_host_uri"].as_str().unwrap().to_owned();
    eventually("a new primary", || async { psql(&uri, &pw, "select 1").is_ok() }).await;
    let have: i64 = psql(&uri, &pw, &format!("select count(*) from t where x <= {}", acked.last().unwrap()))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(have, acked.len() as i64, "every acknowledged commit survived the failover");
    let job = job_of_kind(&app, &owner, &store, "failover").await.expect("a failover");
    app.job_succeeded(&owner, org, job).await;
    app.delete_store(&owner, org, store.id).await;
}

/// The job's row, as a worker reads it.
async fn job_row(app: &TestApp, job: Uuid) -> berth::db::jobs::JobRow {
    berth::db::jobs::get_in_org(&app.db, app.owner_org.into(), job.into()).await.unwrap().unwrap()
}

/// Berth killed after the first `done` steps of `job` (run here, as its worker would), and then
/// started again: the host reconciled with the tables, the job taken over by new workers.
async fn crash_after(app: &TestApp, job: Uuid, done: usize) -> berth::jobs::worker::Workers {
    let env = app.state.job_env();
    let row = job_row(app, job).await;
    let kind = berth::jobs::kinds::of(&row.kind);
    for step in &row.steps[..done] {
        kind.run(&env, &row, berth::jobs::Step::parse(step).unwrap()).await.unwrap();
    }
    sqlx::query("update jobs set step = $2, status = 'running', attempts = 1, locked_by = 'gone:1:x/0', locked_until = $3 where id = $1")
        .bind(job)
        .bind(done as i32)
        .bind(app.clock_now() - time::Duration::SECOND)
        .execute(&app.db)
        .await
        .unwrap();
    berth::jobs::reconcile::at_start(&env).await.unwrap();
    berth::jobs::worker::Workers::start(env, 2, app.state.wake.clone()).await.unwrap()
}

/// Exactly one node takes writes, the one the tables name, and every other streams from it.
async fn one_primary_the_rest_following(app: &TestApp, cookie: &str, store: &ReadyStore) -> Uuid {
    let t = topology(app, cookie, store).await;
    let primary = t.uuid_at("/primary_node_id");
    let view = app.store(cookie, app.owner_org, store.id).await;
    let primary_port = port(&view, primary);
    let driver = app.state.plane.driver.clone();
    for n in view["nodes"].as_array().unwrap() {
        let id = n.uuid_at("/id");
        let s =
            driver.replication(&spec(app, store.id, id).await).await.unwrap().expect("every node answers");
        if id == primary {
            assert!(!s.in_recovery, "the primary {id} takes writes");
        } else {
            assert!(s.in_recovery, "node {id} is a standby");
            let from = s.receiver.and_then(|r| r.sender_port).map(i64::from);
            assert_eq!(from, Some(primary_port), "node {id} streams from the primary");
        }
    }
    primary
}

#[tokio::test]
async fn berth_killed_at_any_step_of_a_switchover_or_failover_ends_with_one_primary_and_a_true_history() {
    let mut app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let store = app.new_ready_store(&owner, "ha-crash", 3).await;
    let pw = store.password.clone();
    let mut p =
        connect(port(&store.view, store.node("primary").uuid_at("/id")), USER, &pw, DB).await.unwrap();
    sqlx::raw_sql("create table t (x int)").execute(&mut p).await.unwrap();
    drop(p);
    app.workers.take().unwrap().shutdown().await;
    let mut rows = 0;
    // A switchover killed after each of its steps but the last; then a failover of a killed
    // primary, Berth killed after each of its first steps.
    let runs = (1..=4).map(|done| ("switchover", done)).chain((1..=3).map(|done| ("failover", done)));
    for (what, done) in runs {
        let view = app.store(&owner, org, store.id).await;
        let candidate =
            view["nodes"].as_array().unwrap().iter().find(|n| n["role"] == "replica").unwrap().uuid_at("/id");
        if what == "failover" {
            let old = topology(&app, &owner, &store).await.uuid_at("/primary_node_id");
            kill(Pid::from_raw(postmaster_of(&pgdata(&app, &store, old)).unwrap()), Signal::SIGKILL).unwrap();
        }
        let r = app
            .post(&format!("{}/{what}", store.path()))
            .cookie(&owner)
            .json(json!({"candidate_node_id": candidate}))
            .send()
            .await;
        let workers = crash_after(&app, r.accepted_job(), done).await;
        app.job_succeeded(&owner, org, r.accepted_job()).await;
        workers.shutdown().await;
        assert_eq!(
            one_primary_the_rest_following(&app, &owner, &store).await,
            candidate,
            "{what} killed after step {done}"
        );
        let view = app.store(&owner, org, store.id).await;
        let mut c = connect(port(&view, candidate), USER, &pw, DB).await.unwrap();
        sqlx::query("insert into t values (1)").execute(&mut c).await.unwrap();
        rows += 1;
        // On every node before the next kill: an asynchronous failover loses what was not.
        replicated(&app, &store, &view, rows).await;
    }
    let view = app.store(&owner, org, store.id).await;
    replicated(&app, &store, &view, rows).await;
    // One promotion each, on timelines one after another.
    let h = app.get(&format!("{}/history?limit=100", store.path())).cookie(&owner).send().await.json();
    let items = h["items"].as_array().unwrap();
    assert_eq!(items.len(), 7, "{h}");
    let timelines: Vec<i64> = items.iter().rev().map(|i| i["timeline"].as_i64().unwrap()).collect();
    assert_eq!(timelines, (2..=8).collect::<Vec<_>>(), "{h}");
    assert_eq!(items.iter().filter(|i| i["kind"] == "failover").count(), 3);
    app.workers = Some(
        berth::jobs::worker::Workers::start(app.state.job_env(), 2, app.state.wake.clone()).await.unwrap(),
    );
    app.delete_store(&owner, org, store.id).await;
}

#[tokio::test]
async fn nodes_running_without_wal_log_hints_get_it_by_a_rolling_restart_when_berth_starts() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let store = app.new_ready_store(&owner, "ha-hints", 2).await;
    // As an older Berth left them: running without wal_log_hints, which pg_rewind needs.
    for n in store.view["nodes"].as_array().unwrap() {
        let id = n.uuid_at("/id");
        let mut su = superuser(&app, store.id, id).await;
        sqlx::query("alter system set wal_log_hints = off").execute(&mut su).await.unwrap();
        drop(su);
        let s = spec(&app, store.id, id).await;
        app.state.plane.driver.stop(&s).await.unwrap();
        app.state.plane.driver.start(&s).await.unwrap();
        let mut su = superuser(&app, store.id, id).await;
        sqlx::query("alter system reset wal_log_hints").execute(&mut su).await.unwrap();
        let hints: String = sqlx::query_scalar("show wal_log_hints").fetch_one(&mut su).await.unwrap();
        assert_eq!(hints, "off");
    }
    berth::jobs::reconcile::at_start(&app.state.job_env()).await.unwrap();
    let job = job_of_kind(&app, &owner, &store, "rolling_restart").await.expect("a rolling restart");
    let done = app.job_succeeded(&owner, org, job).await;
    let steps: Vec<&str> =
        done["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    let replica = store.node("replica").uuid_at("/id");
    assert_eq!(steps[0], format!("reconfigure_node:{replica}"), "replicas first: {steps:?}");
    for n in store.view["nodes"].as_array().unwrap() {
        let mut su = superuser(&app, store.id, n.uuid_at("/id")).await;
        let hints: String = sqlx::query_scalar("show wal_log_hints").fetch_one(&mut su).await.unwrap();
        assert_eq!(hints, "on", "node {}", n["id"]);
    }
    // Started again, Berth finds nothing more to restart.
    berth::jobs::reconcile::at_start(&app.state.job_env()).await.unwrap();
    let jobs = app.get(&format!("{}/jobs", store.path())).cookie(&owner).send().await.json();
    let restarts =
        jobs["items"].as_array().unwrap().iter().filter(|j| j["kind"] == "rolling_restart").count();
    assert_eq!(restarts, 1);
    app.delete_store(&owner, org, store.id).await;
}
