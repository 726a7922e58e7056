//! Node maintenance on real servers: a replica stopped stays stopped (health checks, Berth's
//! restart) until started, and streams again; a replica reinitialized is copied again from the
//! primary; the maintenance flag; and each refusal.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::client::{Fields, ReadyStore};
use crate::helpers::{TestApp, TestResponse, node_connect as connect};

/// `POST {store}/nodes/{node}/{op}`.
async fn node_op(app: &TestApp, cookie: &str, store: &ReadyStore, node: Uuid, op: &str) -> TestResponse {
    app.post(&format!("{}/nodes/{node}/{op}", store.path())).cookie(cookie).send().await
}

/// `op` accepted: the store and the job in the body, `Location` the job; waits for it to
/// succeed and returns it.
async fn node_op_done(app: &TestApp, cookie: &str, store: &ReadyStore, node: Uuid, op: &str) -> Value {
    let r = node_op(app, cookie, store, node, op).await;
    let accepted = r.accepted("store");
    assert_eq!(accepted.id, store.id);
    let location = format!("/api/v1/orgs/{}/jobs/{}", app.owner_org, accepted.job_id);
    assert_eq!(r.header("location"), Some(location.as_str()), "{}", accepted.body);
    app.job_succeeded(cookie, app.owner_org, accepted.job_id).await
}

/// The node `id` as the store shows it now.
async fn node_view(app: &TestApp, cookie: &str, store: &ReadyStore, id: Uuid) -> Value {
    let s = app.store(cookie, app.owner_org, store.id).await;
    s["nodes"].as_array().unwrap().iter().find(|n| n.uuid_at("/id") == id).unwrap().clone()
}

/// Polls a replica until `select count(*) from t` is `want`.
async fn wait_rows(replica: &mut PgConnection, want: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: Option<i64> =
            sqlx::query_scalar("select count(*) from t").fetch_optional(&mut *replica).await.ok().flatten();
        if got == Some(want) {
            return;
        }
        assert!(Instant::now() < deadline, "the replica has {got:?} rows of {want}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The node actions audited in the owner's organization, newest first.
async fn audited(app: &TestApp, cookie: &str) -> Vec<String> {
    let r = app.get(&format!("/api/v1/orgs/{}/audit-events?action=store.", app.owner_org)).cookie(cookie);
    let r = r.send().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let items = r.json()["items"].as_array().unwrap().clone();
    items.iter().map(|e| e.string_at("/action")).filter(|a| a.starts_with("store.node_")).collect()
}

#[tokio::test]
async fn a_stopped_replica_stays_stopped_until_started_and_then_streams_again() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let ready = app.new_ready_store(&owner, "stops", 2).await;
    let (primary, replica) = (ready.node("primary"), ready.node("replica"));
    let (primary_id, replica_id) = (primary.uuid_at("/id"), replica.uuid_at("/id"));
    let port = |n: &Value| n["port"].as_i64().unwrap();
    let mut p = connect(port(&primary), "dbadmin", &ready.password, "defaultdb").await.unwrap();
    sqlx::raw_sql("create table t (x int); insert into t values (1)").execute(&mut p).await.unwrap();

    // The primary is neither stopped nor reinitialized; an unknown node, or one asked for in
    // another organization, is not found.
    for op in ["stop", "reinitialize"] {
        node_op(&app, &owner, &ready, primary_id, op)
            .await
            .assert_problem(StatusCode::CONFLICT, "node_is_primary");
    }
    let r = node_op(&app, &owner, &ready, primary_id, "stop").await;
    assert!(r.string_at("/detail").contains("switch over"), "{}", r.text());
    for op in ["stop", "start", "reinitialize"] {
        node_op(&app, &owner, &ready, Uuid::now_v7(), op)
            .await
            .assert_problem(StatusCode::NOT_FOUND, "not_found");
    }
    let other = app.create_org(&owner, "other").await;
    let elsewhere = format!("/api/v1/orgs/{other}/stores/{}/nodes/{replica_id}", ready.id);
    app.post(&format!("{elsewhere}/stop"))
        .cookie(&owner)
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let jobs: i64 = sqlx::query_scalar("select count(*) from jobs").fetch_one(&app.db).await.unwrap();
    assert_eq!(jobs, 1, "only the store's creation was enqueued");

    // Stopped: its server is down, the store degraded, and neither a health check nor Berth's
    // reconcile at start brings it back.
    let job = node_op_done(&app, &owner, &ready, replica_id, "stop").await;
    assert_eq!(job["kind"], "stop_node");
    assert_eq!(node_view(&app, &owner, &ready, replica_id).await["state"], "stopped");
    assert!(connect(port(&replica), "dbadmin", &ready.password, "defaultdb").await.is_err());
    let env = app.state.job_env();
    berth::jobs::reconcile::check_all(&env).await.unwrap();
    berth::jobs::reconcile::at_start(&env).await.unwrap();
    berth::jobs::reconcile::check_all(&env).await.unwrap();
    let s = app.store(&owner, app.owner_org, ready.id).await;
    assert_eq!(s["status"], "degraded", "{s}");
    assert_eq!(node_view(&app, &owner, &ready, replica_id).await["state"], "stopped");
    assert!(connect(port(&replica), "dbadmin", &ready.password, "defaultdb").await.is_err(), "still stopped");

    // Writes meanwhile reach it once started: it streams from the primary again, read-only.
    sqlx::query("insert into t select generate_series(2, 100)").execute(&mut p).await.unwrap();
    let job = node_op_done(&app, &owner, &ready, replica_id, "start").await;
    assert_eq!(job["kind"], "start_node");
    assert_eq!(node_view(&app, &owner, &ready, replica_id).await["state"], "running");
    app.wait_store(&owner, app.owner_org, ready.id, "available").await;
    let mut r = connect(port(&replica), "dbadmin", &ready.password, "defaultdb").await.unwrap();
    wait_rows(&mut r, 100).await;
    let recovering: bool = sqlx::query_scalar("select pg_is_in_recovery()").fetch_one(&mut r).await.unwrap();
    assert!(recovering, "a standby");
    sqlx::query("insert into t values (101)").execute(&mut p).await.unwrap();
    wait_rows(&mut r, 101).await;

    // Starting a node that runs is accepted; its job finds nothing to do.
    let job = node_op_done(&app, &owner, &ready, replica_id, "start").await;
    assert!(job.to_string().contains("already running"), "{job}");
    sqlx::query("insert into t values (102)").execute(&mut p).await.unwrap();
    wait_rows(&mut r, 102).await;

    let actions = audited(&app, &owner).await;
    assert_eq!(actions, ["store.node_started", "store.node_started", "store.node_stopped"], "{actions:?}");
    drop((p, r));
    app.delete_store(&owner, app.owner_org, ready.id).await;
}

#[tokio::test]
async fn a_reinitialized_replica_is_copied_again_and_maintenance_is_a_flag() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let ready = app.new_ready_store(&owner, "reinit", 2).await;
    let (primary, replica) = (ready.node("primary"), ready.node("replica"));
    let replica_id = replica.uuid_at("/id");
    let port = |n: &Value| n["port"].as_i64().unwrap();
    let mut p = connect(port(&primary), "dbadmin", &ready.password, "defaultdb").await.unwrap();
    sqlx::raw_sql("create table t (x int); insert into t select generate_series(1, 50)")
        .execute(&mut p)
        .await
        .unwrap();

    // Reinitialized: the copy is made again; meanwhile every other node operation waits.
    let r = node_op(&app, &owner, &ready, replica_id, "reinitialize").await;
    let accepted = r.accepted("store");
    for op in ["stop", "start", "reinitialize"] {
        node_op(&app, &owner, &ready, replica_id, op)
            .await
            .assert_problem(StatusCode::CONFLICT, "job_in_progress");
    }
    let job = app.job_succeeded(&owner, app.owner_org, accepted.job_id).await;
    assert_eq!(job["kind"], "reinitialize_node");
    let rebuilt = format!("rebuild_node:{replica_id}");
    assert!(job["steps"].as_array().unwrap().iter().any(|s| s["name"] == rebuilt.as_str()), "{job}");
    assert_eq!(node_view(&app, &owner, &ready, replica_id).await["state"], "running");
    let mut r = connect(port(&replica), "dbadmin", &ready.password, "defaultdb").await.unwrap();
    wait_rows(&mut r, 50).await;
    sqlx::query("insert into t values (51)").execute(&mut p).await.unwrap();
    wait_rows(&mut r, 51).await;
    app.wait_store(&owner, app.owner_org, ready.id, "available").await;

    // A stopped replica can be reinitialized too: it comes back running, with what was
    // written while it was down.
    node_op_done(&app, &owner, &ready, replica_id, "stop").await;
    sqlx::query("insert into t values (52)").execute(&mut p).await.unwrap();
    node_op_done(&app, &owner, &ready, replica_id, "reinitialize").await;
    let mut r = connect(port(&replica), "dbadmin", &ready.password, "defaultdb").await.unwrap();
    wait_rows(&mut r, 52).await;
    app.wait_store(&owner, app.owner_org, ready.id, "available").await;

    drop((p, r));

    // The maintenance flag: the control database only, shown on the node, as a store event
    // with its actor and in the audit trail; the same value again records nothing.
    let path = format!("{}/nodes/{replica_id}", ready.path());
    let before = app.get(&ready.path()).cookie(&owner).send().await.header("etag").map(str::to_owned);
    let set = |on: bool| app.patch(&path).cookie(&owner).json(json!({"maintenance": on})).send();
    let s = set(true).await;
    assert_eq!(s.status, StatusCode::OK, "{}", s.text());
    assert_ne!(s.header("etag").map(str::to_owned), before, "the store's view changed");
    let n = s.json()["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n.uuid_at("/id") == replica_id)
        .unwrap()
        .clone();
    assert_eq!((n["maintenance"].clone(), n["fenced"].clone()), (json!(true), json!(false)), "{n}");
    assert_eq!(set(true).await.status, StatusCode::OK);
    assert_eq!(node_view(&app, &owner, &ready, replica_id).await["maintenance"], true);
    let s = set(false).await;
    assert_eq!(s.status, StatusCode::OK, "{}", s.text());
    assert_eq!(node_view(&app, &owner, &ready, replica_id).await["maintenance"], false);
    let events =
        berth::db::ha::events(&app.db, app.owner_org.into(), ready.id.into(), None, 10).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["maintenance_off", "maintenance_on"]);
    let me = app.user_id(&owner).await;
    assert!(
        events
            .iter()
            .all(|e| e.actor_id.map(|a| a.into_uuid()) == Some(me) && e.node_id == Some(replica_id.into()))
    );
    let actions = audited(&app, &owner).await;
    let want = ["maintenance", "maintenance", "reinitialized", "stopped", "reinitialized"]
        .map(|a| format!("store.node_{a}"));
    assert_eq!(actions, want, "the refused requests left nothing");
    // Unknown fields and nodes are refused.
    let r =
        app.patch(&path).cookie(&owner).json(json!({"maintenance": true, "role": "primary"})).send().await;
    r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let r = app
        .patch(&format!("{}/nodes/{}", ready.path(), Uuid::now_v7()))
        .cookie(&owner)
        .json(json!({"maintenance": true}))
        .send()
        .await;
    r.assert_problem(StatusCode::NOT_FOUND, "not_found");
    app.delete_store(&owner, app.owner_org, ready.id).await;
}
