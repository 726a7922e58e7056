use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::client::{Fields, pg_version as version, store_body as body, store_path};
use crate::helpers::TestApp;

use crate::helpers::node_connect as connect;

#[tokio::test]
async fn deploy_options_offer_the_installed_versions() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let o = app.get("/api/v1/content/deploy-options").cookie(&owner).send().await;
    assert_eq!(o.status, StatusCode::OK);
    let o = o.json();
    assert_eq!(o["vendors"][0]["code"], "postgres");
    assert!(o["vendors"][0]["versions"].as_array().unwrap().contains(&json!(version())));
    assert_eq!(o["clouds"][0]["code"], "local");
    assert_eq!(o["clouds"][0]["regions"][0]["code"], "local-1");
    assert!(
        o["instance_sizes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["code"] == "tiny" && s["max_connections"].is_number())
    );
    assert_eq!(app.get("/api/v1/content/deploy-options").send().await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_one_node_store_is_a_real_database_and_deleting_it_removes_it() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let created = app.new_store(&owner, "one", 1).await;
    assert_eq!(created.body["store"]["status"], "deploying");
    assert_eq!(created.body["job"]["kind"], "create_store");
    let (id, password) = (created.id, created.password.clone());
    let creds = &created.body["credentials"];
    assert!(password.len() >= 24);

    let store = app.wait_store(&owner, org, id, "available").await;
    assert!(!store.to_string().contains(&password), "the password is never in a store");
    let node = &store["nodes"][0];
    assert_eq!(node["role"], "primary");
    assert_eq!(node["state"], "running");
    let port = node["port"].as_i64().unwrap();
    assert_eq!(store["connection"]["primary"]["port"], port);
    assert!(store.str_at("/connection/primary/uri").starts_with("postgres://dbadmin@127.0.0.1:"));

    let user = creds.str_at("/username");
    let db = creds.str_at("/database");
    let mut conn =
        connect(port, user, &password, db).await.expect("connecting with the returned credentials");
    let one: i32 = sqlx::query_scalar("select 1").fetch_one(&mut conn).await.unwrap();
    assert_eq!(one, 1);
    sqlx::query("create table t (x int)").execute(&mut conn).await.expect("the admin may create tables");
    let superuser: bool = sqlx::query_scalar("select rolsuper from pg_roles where rolname = current_user")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(!superuser, "the customer's admin is not a superuser");
    conn.close().await.unwrap();
    assert!(connect(port, user, "wrong-password", db).await.is_err());

    let revealed =
        app.post(&format!("/api/v1/orgs/{org}/stores/{id}/credentials/reveal")).cookie(&owner).send().await;
    assert_eq!(revealed.status, StatusCode::OK);
    assert_eq!(revealed.json()["password"], password.as_str());

    let job =
        app.get(&format!("/api/v1/orgs/{org}/jobs/{}", created.job_id)).cookie(&owner).send().await.json();
    assert_eq!(job["status"], "succeeded");
    assert_eq!(job["progress"], 100);
    assert!(job["log"].as_array().unwrap().len() >= 2);

    // A new size is applied to the server by a job.
    let r = app
        .patch(&format!("/api/v1/orgs/{org}/stores/{id}"))
        .cookie(&owner)
        .json(json!({"instance_size": "small"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(r.json()["store"]["status"], "modifying");
    app.job_succeeded(&owner, org, r.accepted("store").job_id).await;
    let mut conn = connect(port, user, &password, db).await.unwrap();
    let buffers: String = sqlx::query_scalar("show shared_buffers").fetch_one(&mut conn).await.unwrap();
    assert_eq!(buffers, "256MB");
    conn.close().await.unwrap();
    let r = app
        .patch(&format!("/api/v1/orgs/{org}/stores/{id}"))
        .cookie(&owner)
        .json(json!({"instance_size": "huge"}))
        .send()
        .await;
    r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    app.delete_store(&owner, org, id).await;
    assert!(connect(port, user, &password, db).await.is_err(), "the server is stopped");
    let dir = app.nodes_root.join("stores").join(id.to_string());
    assert!(!dir.exists(), "the data is removed: {}", dir.display());
}

#[tokio::test]
async fn a_three_node_store_replicates_and_nodes_come_and_go() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let ready = app.new_ready_store(&owner, "three", 3).await;
    let (id, password, store) = (ready.id, ready.password.clone(), &ready.view);
    let nodes = store["nodes"].as_array().unwrap().clone();
    assert_eq!(nodes.len(), 3);
    assert_eq!(nodes.iter().filter(|n| n["role"] == "primary").count(), 1);
    let port_of = |n: &Value| n["port"].as_i64().unwrap();
    let primary = nodes.iter().find(|n| n["role"] == "primary").unwrap();
    let mut p = connect(port_of(primary), "dbadmin", &password, "defaultdb").await.unwrap();
    sqlx::raw_sql("create table t (x int); insert into t values (42)").execute(&mut p).await.unwrap();
    for replica in nodes.iter().filter(|n| n["role"] == "replica") {
        let mut r = connect(port_of(replica), "dbadmin", &password, "defaultdb").await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let got: Option<i32> =
                sqlx::query_scalar("select x from t").fetch_optional(&mut r).await.ok().flatten();
            if got == Some(42) {
                break;
            }
            assert!(Instant::now() < deadline, "the row never reached replica {}", replica["id"]);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let write = sqlx::query("insert into t values (1)").execute(&mut r).await;
        assert!(write.is_err(), "a replica is read-only");
    }
    assert_eq!(store["connection"]["read_only"].as_array().unwrap().len(), 2);

    // The primary cannot be removed while replicas exist.
    let r =
        app.delete(&format!("{}/nodes/{}", ready.path(), primary.uuid_at("/id"))).cookie(&owner).send().await;
    r.assert_problem(StatusCode::CONFLICT, "primary_node");

    // Remove a replica: its server goes away.
    let replica = nodes.iter().find(|n| n["role"] == "replica").unwrap();
    let r =
        app.delete(&format!("{}/nodes/{}", ready.path(), replica.uuid_at("/id"))).cookie(&owner).send().await;
    app.wait_job(&owner, org, r.accepted("store").job_id).await;
    let store = app.wait_store(&owner, org, id, "available").await;
    assert_eq!(store["nodes"].as_array().unwrap().len(), 2);
    assert!(connect(port_of(replica), "dbadmin", &password, "defaultdb").await.is_err());

    // Add one back; it catches up with the primary.
    let r = app.post(&format!("{}/nodes", ready.path())).cookie(&owner).send().await;
    app.job_succeeded(&owner, org, r.accepted("store").job_id).await;
    let store = app.wait_store(&owner, org, id, "available").await;
    assert_eq!(store["nodes"].as_array().unwrap().len(), 3);
    let newest = store["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| !nodes.iter().any(|o| o["id"] == n["id"]))
        .unwrap()
        .clone();
    let mut n = connect(port_of(&newest), "dbadmin", &password, "defaultdb").await.unwrap();
    let x: i32 = sqlx::query_scalar("select x from t").fetch_one(&mut n).await.unwrap();
    assert_eq!(x, 42);

    // Restart a node: it comes back.
    let r = app
        .post(&format!("{}/nodes/{}/restart", ready.path(), newest.uuid_at("/id")))
        .cookie(&owner)
        .send()
        .await;
    app.job_succeeded(&owner, org, r.accepted_job()).await;
    let mut n = connect(port_of(&newest), "dbadmin", &password, "defaultdb").await.unwrap();
    let x: i32 = sqlx::query_scalar("select x from t").fetch_one(&mut n).await.unwrap();
    assert_eq!(x, 42);

    app.delete_store(&owner, org, id).await;
}

#[tokio::test]
async fn concurrent_retries_with_one_idempotency_key_create_one_store() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let path = format!("/api/v1/orgs/{org}/stores");
    let key = uuid::Uuid::new_v4().to_string();
    let calls = (0..20)
        .map(|_| app.post(&path).cookie(&owner).header("idempotency-key", &key).json(body("idem", 1)).send());
    let answers = futures::future::join_all(calls).await;
    let ids: std::collections::HashSet<uuid::Uuid> = answers.iter().map(|r| r.accepted("store").id).collect();
    assert_eq!(ids.len(), 1, "one store for one key");
    let stores: i64 = sqlx::query_scalar("select count(*) from stores").fetch_one(&app.db).await.unwrap();
    let jobs: i64 = sqlx::query_scalar("select count(*) from jobs").fetch_one(&app.db).await.unwrap();
    assert_eq!((stores, jobs), (1, 1));
    let stored: Value =
        sqlx::query_scalar("select response from idempotency_keys").fetch_one(&app.db).await.unwrap();
    let password = answers[0].string_at("/credentials/password");
    assert!(!stored.to_string().contains(&password), "the stored response is encrypted");

    let other =
        app.post(&path).cookie(&owner).header("idempotency-key", &key).json(body("idem-2", 1)).send().await;
    other.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let stores: i64 = sqlx::query_scalar("select count(*) from stores").fetch_one(&app.db).await.unwrap();
    assert_eq!(stores, 1);
}

#[tokio::test]
async fn a_stale_etag_is_412_and_a_fresh_one_applies() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let path = store_path(org, app.new_store(&owner, "tagged", 1).await.id);
    let etag = app.get(&path).cookie(&owner).send().await.header("etag").unwrap().to_owned();
    let r = app
        .patch(&path)
        .cookie(&owner)
        .header("if-match", &etag)
        .json(json!({"tags": ["env:prod"]}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["tags"], json!(["env:prod"]));
    let newer = r.header("etag").unwrap().to_owned();
    assert_ne!(newer, etag);
    let stale = app
        .patch(&path)
        .cookie(&owner)
        .header("if-match", &etag)
        .json(json!({"deletion_protection": true}))
        .send()
        .await;
    stale.assert_problem(StatusCode::PRECONDITION_FAILED, "precondition_failed");
    let now = app.get(&path).cookie(&owner).send().await.json();
    assert_eq!(now["deletion_protection"], false, "a refused change changes nothing");
    let r = app
        .patch(&path)
        .cookie(&owner)
        .header("if-match", &newer)
        .json(json!({"deletion_protection": true}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Deletion protection holds.
    app.delete(&path).cookie(&owner).send().await.assert_problem(StatusCode::CONFLICT, "deletion_protected");
    let listed =
        app.get(&format!("/api/v1/orgs/{org}/stores?tag=env:prod")).cookie(&owner).send().await.json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    let none = app.get(&format!("/api/v1/orgs/{org}/stores?tag=env:dev")).cookie(&owner).send().await.json();
    assert_eq!(none["items"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn bad_store_input_is_422_naming_the_field_and_creates_nothing() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let path = format!("/api/v1/orgs/{}/stores", app.owner_org);
    let with = |k: &str, v: Value| {
        let mut b = body("ok-name", 1);
        b[k] = v;
        b
    };
    for (b, field) in [
        (with("vendor", json!("mysql")), "vendor"),
        (with("version", json!("9.6")), "version"),
        (with("instance_size", json!("gigantic")), "instance_size"),
        (with("volume_size", json!(0)), "volume_size"),
        (with("volume_size", json!(100000)), "volume_size"),
        (with("nodes", json!(0)), "nodes"),
        (with("nodes", json!(99)), "nodes"),
        (with("cloud", json!("aws")), "cloud"),
        (with("region", json!("mars-1")), "region"),
        (with("name", json!("x".repeat(300))), "name"),
        (with("name", json!("x'; drop table stores; --")), "name"),
        (with("name", json!("")), "name"),
        (with("tags", json!(["a b"])), "tags"),
        (with("nodes", json!("three")), "nodes"),
        (with("extra", json!(1)), "extra"),
    ] {
        let r = app.post(&path).cookie(&owner).json(b.clone()).send().await;
        r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let errors = r.json();
        let fields: Vec<&str> =
            errors["errors"].as_array().unwrap().iter().map(|e| e.str_at("/field")).collect();
        assert!(fields.contains(&field), "{b}: {}", r.text());
    }
    let n: i64 = sqlx::query_scalar("select count(*) from stores").fetch_one(&app.db).await.unwrap();
    let j: i64 = sqlx::query_scalar("select count(*) from jobs").fetch_one(&app.db).await.unwrap();
    assert_eq!((n, j), (0, 0));
    app.new_store(&owner, "taken", 1).await;
    let r = app.post(&path).cookie(&owner).json(body("taken", 1)).send().await;
    r.assert_problem(StatusCode::CONFLICT, "name_taken");
}

#[tokio::test]
async fn another_orgs_stores_and_jobs_answer_404_everywhere() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let a = app.owner_org;
    let created = app.new_store(&owner, "secret-store", 1).await;
    let (id, job) = (created.id, created.job_id);
    let node = created.body.uuid_at("/store/nodes/0/id");

    let (mallory_id, mallory) = app.active_member(&owner, a, "mallory@example.com", "viewer").await;
    let b = app.create_org(&mallory, "B").await;
    let scopes = ["stores:read", "stores:write", "backups:read", "backups:write", "backups:download"];
    let tok = app.bearer_token(&mallory, b, &scopes).await;
    app.delete(&format!("/api/v1/orgs/{a}/members/{mallory_id}")).cookie(&owner).send().await;

    for org in [a, b] {
        let s = format!("/api/v1/orgs/{org}/stores/{id}");
        let calls = vec![
            app.get(&s).bearer(&tok).send().await,
            app.patch(&s).bearer(&tok).json(json!({"tags": ["x"]})).send().await,
            app.delete(&s).bearer(&tok).send().await,
            app.post(&format!("{s}/nodes")).bearer(&tok).send().await,
            app.delete(&format!("{s}/nodes/{node}")).bearer(&tok).send().await,
            app.post(&format!("{s}/nodes/{node}/restart")).bearer(&tok).send().await,
            app.post(&format!("{s}/nodes/{node}/stop")).bearer(&tok).send().await,
            app.post(&format!("{s}/nodes/{node}/start")).bearer(&tok).send().await,
            app.post(&format!("{s}/nodes/{node}/reinitialize")).bearer(&tok).send().await,
            app.patch(&format!("{s}/nodes/{node}"))
                .bearer(&tok)
                .json(json!({"maintenance": true}))
                .send()
                .await,
            app.post(&format!("{s}/repair")).bearer(&tok).send().await,
            app.post(&format!("{s}/credentials/reveal")).bearer(&tok).send().await,
            app.get(&format!("{s}/jobs")).bearer(&tok).send().await,
            app.get(&format!("{s}/firewall-rules")).bearer(&tok).send().await,
            app.post(&format!("{s}/firewall-rules"))
                .bearer(&tok)
                .json(json!({"source": "0.0.0.0/0"}))
                .send()
                .await,
            app.put(&format!("{s}/firewall-rules")).bearer(&tok).json(json!([])).send().await,
            app.delete(&format!("{s}/firewall-rules/{node}")).bearer(&tok).send().await,
            app.get(&format!("{s}/databases")).bearer(&tok).send().await,
            app.post(&format!("{s}/databases")).bearer(&tok).json(json!({"name": "x"})).send().await,
            app.delete(&format!("{s}/databases/defaultdb")).bearer(&tok).send().await,
            app.get(&format!("{s}/db-users")).bearer(&tok).send().await,
            app.post(&format!("{s}/db-users"))
                .bearer(&tok)
                .json(json!({"username": "x", "privileges": "read"}))
                .send()
                .await,
            app.delete(&format!("{s}/db-users/x")).bearer(&tok).send().await,
            app.post(&format!("{s}/db-users/x/rotate-password")).bearer(&tok).json(json!({})).send().await,
            app.get(&format!("{s}/parameters")).bearer(&tok).send().await,
            app.post(&format!("{s}/parameter-group"))
                .bearer(&tok)
                .json(json!({"group_id": node}))
                .send()
                .await,
            app.get(&format!("{s}/stats?metric=connections")).bearer(&tok).send().await,
            app.get(&format!("{s}/stats/summary")).bearer(&tok).send().await,
            app.get(&format!("{s}/backups")).bearer(&tok).send().await,
            app.post(&format!("{s}/backups")).bearer(&tok).json(json!({"kind": "full"})).send().await,
            app.get(&format!("{s}/backups/{node}")).bearer(&tok).send().await,
            app.delete(&format!("{s}/backups/{node}")).bearer(&tok).send().await,
            app.get(&format!("{s}/backups/{node}/download")).bearer(&tok).send().await,
            app.post(&format!("{s}/backups/{node}/verify")).bearer(&tok).send().await,
            app.post(&format!("{s}/restore"))
                .bearer(&tok)
                .json(json!({"backup_id": node, "confirm": "x"}))
                .send()
                .await,
            app.get(&format!("{s}/backup-schedule")).bearer(&tok).send().await,
            app.put(&format!("{s}/backup-schedule"))
                .bearer(&tok)
                .json(json!({"full_cron": "* * * * *", "retention": {"count": 1}}))
                .send()
                .await,
            app.get(&format!("{s}/restore-window")).bearer(&tok).send().await,
            app.get(&format!("/api/v1/orgs/{org}/jobs/{job}")).bearer(&tok).send().await,
            app.post(&format!("/api/v1/orgs/{org}/jobs/{job}/cancel")).bearer(&tok).send().await,
        ];
        for r in calls {
            r.assert_problem(StatusCode::NOT_FOUND, "not_found");
        }
    }
    for path in ["parameter-groups", "ca.pem", "stores", "jobs"] {
        app.get(&format!("/api/v1/orgs/{a}/{path}"))
            .bearer(&tok)
            .send()
            .await
            .assert_problem(StatusCode::NOT_FOUND, "not_found");
    }
    // A fork in B from A's store is refused exactly as from a store that never existed.
    let mut refusals = vec![];
    for source in [id, uuid::Uuid::now_v7()] {
        let mut fork = body("fork", 1);
        fork["restore_from"] = json!({"store_id": source, "point_in_time": "2026-01-01T00:00:00Z"});
        let r = app.post(&format!("/api/v1/orgs/{b}/stores")).bearer(&tok).json(fork).send().await;
        r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        refusals.push(r.json()["detail"].clone());
    }
    assert_eq!(refusals[0], refusals[1]);
    let listed = app.get(&format!("/api/v1/orgs/{b}/stores")).bearer(&tok).send().await.json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 0);
    let jobs = app.get(&format!("/api/v1/orgs/{b}/jobs")).bearer(&tok).send().await.json();
    assert_eq!(jobs["items"].as_array().unwrap().len(), 0);
    // Nothing was touched.
    let store = app.get(&format!("/api/v1/orgs/{a}/stores/{id}")).cookie(&owner).send().await.json();
    assert_eq!(store["tags"], json!([]));
}

#[tokio::test]
async fn a_queued_job_can_be_cancelled_a_running_one_cannot() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let created = app.new_store(&owner, "never", 1).await;
    let job = created.job_id;
    let r = app.post(&format!("/api/v1/orgs/{org}/jobs/{job}/cancel")).cookie(&owner).send().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["status"], "cancelled");
    assert_eq!(
        app.get(&store_path(org, created.id)).cookie(&owner).send().await.status,
        StatusCode::NOT_FOUND
    );
    let again = app.post(&format!("/api/v1/orgs/{org}/jobs/{job}/cancel")).cookie(&owner).send().await;
    again.assert_problem(StatusCode::CONFLICT, "not_cancellable");
    // The name is free again.
    app.new_store(&owner, "never", 1).await;

    // A job back in the queue after a failed attempt may have made a server already: cancelling
    // it would leave that server to no one, so it is refused, saying why.
    let tried = app.new_store(&owner, "tried", 1).await;
    let job = tried.job_id;
    sqlx::query("update jobs set attempts = 1, error = 'initdb failed' where id = $1")
        .bind(job)
        .execute(&app.db)
        .await
        .unwrap();
    let r = app.post(&format!("/api/v1/orgs/{org}/jobs/{job}/cancel")).cookie(&owner).send().await;
    r.assert_problem(StatusCode::CONFLICT, "not_cancellable");
    assert!(r.string_at("/detail").contains("already acted on the host"), "{}", r.text());
    let s = app.get(&store_path(org, tried.id)).cookie(&owner).send().await;
    assert_eq!(s.json()["status"], "deploying", "the store is left to its job");
}

#[tokio::test]
async fn a_second_change_while_a_job_runs_is_409_naming_that_job() {
    // No workers: the create job stays queued, deterministically in the way.
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let created = app.new_store(&owner, "busy", 1).await;
    let (id, job) = (created.id, created.job_id.to_string());
    let r = app.delete(&format!("/api/v1/orgs/{org}/stores/{id}")).cookie(&owner).send().await;
    r.assert_problem(StatusCode::CONFLICT, "job_in_progress");
    let detail = r.string_at("/detail");
    assert!(detail.contains(&job) && detail.contains("create_store"), "{detail}");
    let r = app.post(&format!("/api/v1/orgs/{org}/stores/{id}/repair")).cookie(&owner).send().await;
    r.assert_problem(StatusCode::CONFLICT, "job_in_progress");
    let jobs: i64 = sqlx::query_scalar("select count(*) from jobs").fetch_one(&app.db).await.unwrap();
    assert_eq!(jobs, 1, "nothing else was enqueued");
}

#[tokio::test]
async fn repair_and_restart_bring_back_stopped_nodes_and_strays_are_removed() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let ready = app.new_ready_store(&owner, "mend", 2).await;
    let (id, password) = (ready.id, ready.password.clone());
    let replica = ready.node("replica");
    let (store_id, node_id) = (id, replica.uuid_at("/id"));
    let driver = app.state.plane.driver.clone();
    let spec = app
        .state
        .plane
        .node_spec(&app.db, org.into(), store_id.into(), node_id.into(), app.clock_now())
        .await
        .unwrap()
        .unwrap();
    let port = replica["port"].as_i64().unwrap();

    // The replica's server dies (as after a host reboot): the health check sees it.
    driver.stop(&spec).await.unwrap();
    assert!(connect(port, "dbadmin", &password, "defaultdb").await.is_err());
    berth::jobs::reconcile::check_all(&app.state.job_env()).await.unwrap();
    let s = app.get(&format!("/api/v1/orgs/{org}/stores/{id}")).cookie(&owner).send().await.json();
    let state =
        s["nodes"].as_array().unwrap().iter().find(|n| n["id"] == replica["id"]).unwrap()["state"].clone();
    assert_eq!(state, "failed");

    // Repair rebuilds it from the primary.
    let r = app.post(&format!("/api/v1/orgs/{org}/stores/{id}/repair")).cookie(&owner).send().await;
    let job = app.job_succeeded(&owner, org, r.accepted_job()).await;
    assert!(job["steps"].as_array().unwrap().iter().any(|s| s["name"] == format!("rebuild_node:{node_id}")));
    connect(port, "dbadmin", &password, "defaultdb").await.expect("the rebuilt replica serves");
    app.wait_store(&owner, org, id, "available").await;

    // At start, Berth starts nodes that should run and sets aside, untouched, the servers no
    // store knows (a lost or wrong control database must not delete a customer's data).
    driver.stop(&spec).await.unwrap();
    let stray = berth::provision::NodeSpec {
        store_id: uuid::Uuid::now_v7().into(),
        node_id: uuid::Uuid::now_v7().into(),
        port: 20_398,
        duty: berth::provision::Duty::Primary { synchronous_standby_names: String::new() },
        ..spec.clone()
    };
    driver.create_primary(&stray).await.unwrap();
    assert!(driver.present_nodes().await.unwrap().contains(&(stray.store_id, stray.node_id)));
    berth::jobs::reconcile::at_start(&app.state.job_env()).await.unwrap();
    connect(port, "dbadmin", &password, "defaultdb").await.expect("the stopped node was started");
    assert!(
        !driver.present_nodes().await.unwrap().contains(&(stray.store_id, stray.node_id)),
        "the stray is out of the stores"
    );
    let quarantined = driver.quarantined().unwrap();
    let q = quarantined.iter().find(|q| q.node_id == stray.node_id).expect("and in quarantine");
    assert_eq!(q.store_id, stray.store_id);
    assert!(std::path::Path::new(&q.path).join("data/PG_VERSION").is_file(), "its data untouched: {q:?}");
    assert!(q.size_bytes > 0);
    let status = app.get("/api/v1/system/status").cookie(&owner).send().await.json();
    assert_eq!(status["driver"]["quarantined"][0]["node_id"], stray.node_id.to_string(), "{status}");
    driver.purge_quarantined(&q.id).await.unwrap();
    assert!(driver.quarantined().unwrap().is_empty());
    assert!(!std::path::Path::new(&q.path).exists(), "purged on purpose, it is gone");

    app.delete_store(&owner, org, id).await;
}
