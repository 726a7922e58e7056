use axum::http::StatusCode;
use serde_json::json;
use sqlx::PgConnection;

use crate::helpers::TestApp;

async fn connect(port: i64, user: &str, password: &str, db: &str) -> Result<PgConnection, String> {
    crate::helpers::node_connect(port, user, password, db).await.map_err(|e| e.to_string())
}

async fn run(conn: &mut PgConnection, sql: &str) -> Result<(), String> {
    sqlx::raw_sql(sql).execute(conn).await.map(drop).map_err(|e| e.to_string())
}

#[tokio::test]
async fn databases_and_users_are_real_and_can_do_exactly_what_they_were_granted() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let ready = app.new_ready_store(&owner, "dbs", 1).await;
    let (admin_pw, port) = (ready.password.clone(), ready.port());
    let base = ready.path();

    let r = app.post(&format!("{base}/databases")).cookie(&owner).json(json!({"name": "app"})).send().await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["owner"], "dbadmin");
    app.post(&format!("{base}/databases"))
        .cookie(&owner)
        .json(json!({"name": "app"}))
        .send()
        .await
        .assert_problem(StatusCode::CONFLICT, "database_exists");
    let mut admin = connect(port, "dbadmin", &admin_pw, "app").await.unwrap();
    run(&mut admin, "create table items (x int); insert into items values (1)").await.unwrap();
    let dbs = app.get(&format!("{base}/databases")).cookie(&owner).send().await.json();
    let app_db = dbs["items"].as_array().unwrap().iter().find(|d| d["name"] == "app").unwrap().clone();
    assert_eq!(app_db["tables"], 1);
    assert!(app_db["size_bytes"].as_i64().unwrap() > 0);

    let mk = |name: &str, privilege: &str, database: Option<&str>| {
        let mut b = json!({"username": name, "privileges": privilege});
        if let Some(d) = database {
            b["database"] = json!(d);
        }
        b
    };
    let mut passwords = std::collections::HashMap::new();
    for (name, privilege, database) in
        [("reader", "read", Some("app")), ("writer", "readwrite", Some("app")), ("boss", "admin", None)]
    {
        let r = app
            .post(&format!("{base}/db-users"))
            .cookie(&owner)
            .json(mk(name, privilege, database))
            .send()
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        passwords.insert(name, r.string_at("/password"));
    }
    let listed = app.get(&format!("{base}/db-users")).cookie(&owner).send().await;
    for p in passwords.values() {
        assert!(!listed.text().contains(p.as_str()), "passwords are shown once");
    }
    let stored: i64 = sqlx::query_scalar("select count(*) from db_users").fetch_one(&app.db).await.unwrap();
    assert_eq!(stored, 3);

    let mut reader = connect(port, "reader", &passwords["reader"], "app").await.unwrap();
    run(&mut reader, "select * from items").await.expect("reader reads");
    let e = run(&mut reader, "insert into items values (2)").await.unwrap_err();
    assert!(e.contains("permission denied"), "{e}");
    run(&mut admin, "create table later (y int)").await.unwrap();
    run(&mut reader, "select * from later").await.expect("tables the admin makes later are readable too");

    let mut writer = connect(port, "writer", &passwords["writer"], "app").await.unwrap();
    run(
        &mut writer,
        "insert into items values (2); update items set x = 3 where x = 2; delete from items where x = 3",
    )
    .await
    .expect("writer writes");
    let e = run(&mut writer, "create table mine (z int)").await.unwrap_err();
    assert!(e.contains("permission denied"), "readwrite is not DDL: {e}");

    let mut boss = connect(port, "boss", &passwords["boss"], "defaultdb").await.unwrap();
    run(&mut boss, "create table boss_table (z int)").await.expect("admin on all databases creates tables");
    let mut boss_app = connect(port, "boss", &passwords["boss"], "app").await.unwrap();
    run(&mut boss_app, "select * from items").await.unwrap();

    // Rotation: the old password stops working at once.
    let r = app
        .post(&format!("{base}/db-users/reader/rotate-password"))
        .cookie(&owner)
        .json(json!({}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let fresh = r.string_at("/password");
    assert!(connect(port, "reader", &passwords["reader"], "app").await.is_err());
    connect(port, "reader", &fresh, "app").await.unwrap();

    // A host restriction joins the firewall.
    app.post(&format!("{base}/firewall-rules"))
        .cookie(&owner)
        .json(json!({"source": "127.0.0.2"}))
        .send()
        .await;
    let r = app.post(&format!("{base}/db-users")).cookie(&owner).json(json!({"username": "hosted", "privileges": "read", "database": "app", "host": "127.0.0.2/32", "password": "hosted-password-1"})).send().await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let e = connect(port, "hosted", "hosted-password-1", "app").await.unwrap_err();
    assert!(e.contains("pg_hba.conf"), "from 127.0.0.1 the restricted user is refused: {e}");
    assert!(
        crate::firewall::connect_as_from("127.0.0.2", port, "hosted", "hosted-password-1", "app")
            .await
            .is_ok()
    );

    // Dropping a database its users are bound to is refused; dropping users, then it, works.
    app.delete(&format!("{base}/databases/app"))
        .cookie(&owner)
        .send()
        .await
        .assert_problem(StatusCode::CONFLICT, "database_in_use");
    for u in ["reader", "writer", "hosted"] {
        assert_eq!(
            app.delete(&format!("{base}/db-users/{u}")).cookie(&owner).send().await.status,
            StatusCode::NO_CONTENT
        );
    }
    assert!(
        connect(port, "writer", &passwords["writer"], "app").await.is_err(),
        "a dropped user cannot connect"
    );
    drop((reader, writer, admin, boss_app));
    assert_eq!(
        app.delete(&format!("{base}/databases/app")).cookie(&owner).send().await.status,
        StatusCode::NO_CONTENT
    );
    app.delete(&format!("{base}/databases/app"))
        .cookie(&owner)
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");

    // Names cannot carry SQL, nor take Berth's or PostgreSQL's.
    for bad in [
        "Robert'); drop table items;--",
        "pg_evil",
        "dbadmin",
        "berth",
        "replicator",
        "a b",
        "",
        &"x".repeat(64),
    ] {
        let r = app.post(&format!("{base}/db-users")).cookie(&owner).json(mk(bad, "read", None)).send().await;
        r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    for bad in
        ["Robert'); drop table items;--", "pg_evil", "postgres", "template1", "a b", "", &"x".repeat(64)]
    {
        let r = app.post(&format!("{base}/databases")).cookie(&owner).json(json!({"name": bad})).send().await;
        r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    let r = app.post(&format!("{base}/db-users")).cookie(&owner).json(mk("boss", "read", None)).send().await;
    r.assert_problem(StatusCode::CONFLICT, "db_user_exists");
    let r = app
        .post(&format!("{base}/db-users"))
        .cookie(&owner)
        .json(mk("nobody", "read", Some("nope")))
        .send()
        .await;
    r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let r = app
        .post(&format!("{base}/db-users"))
        .cookie(&owner)
        .json(json!({"username": "x", "privileges": "superuser"}))
        .send()
        .await;
    r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

#[tokio::test]
async fn a_node_out_of_reach_is_a_503_to_try_again_and_changes_nothing() {
    let app = TestApp::spawn().await.with_workers(1).await;
    let owner = app.login_owner().await;
    let ready = app.new_ready_store(&owner, "down", 1).await;
    let base = ready.path();
    let now = app.clock_now();
    let spec = app
        .state
        .plane
        .node_spec(&app.db, app.owner_org.into(), ready.id.into(), ready.node_id().into(), now)
        .await
        .unwrap();
    app.state.plane.driver.stop(&spec.expect("the node")).await.unwrap();

    let r = app.get(&format!("{base}/databases")).cookie(&owner).send().await;
    r.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable");
    assert!(r.json()["detail"].as_str().unwrap().contains("not reachable"), "{}", r.text());
    app.post(&format!("{base}/databases"))
        .cookie(&owner)
        .json(json!({"name": "app"}))
        .send()
        .await
        .assert_problem(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable");
    let audit = app.get(&format!("/api/v1/orgs/{}/audit-events", app.owner_org)).cookie(&owner).send().await;
    assert!(audit.text().contains("store.created"), "{}", audit.text());
    assert!(!audit.text().contains("database.created"), "a refused change is not audited: {}", audit.text());
}
