use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::json;

use crate::client::{Fields, pg_version as version};
use crate::helpers::TestApp;

async fn show(port: i64, password: &str, name: &str) -> String {
    let mut c = crate::helpers::node_connect(port, "dbadmin", password, "defaultdb").await.unwrap();
    sqlx::query_scalar(&format!("show {name}")).fetch_one(&mut c).await.unwrap()
}

#[tokio::test]
async fn a_group_is_validated_applied_to_every_node_and_drift_is_read_from_the_nodes() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let cat = app
        .get(&format!("/api/v1/content/parameters?vendor=postgres&version={}", version()))
        .cookie(&owner)
        .send()
        .await;
    assert_eq!(cat.status, StatusCode::OK, "{}", cat.text());
    let work_mem =
        cat.json()["items"].as_array().unwrap().iter().find(|p| p["name"] == "work_mem").unwrap().clone();
    assert_eq!(work_mem["unit"], "kB");
    assert_eq!(work_mem["restart"], false);

    let groups = format!("/api/v1/orgs/{org}/parameter-groups");
    let bad = app
        .post(&groups)
        .cookie(&owner)
        .json(json!({"name": "bad", "vendor": "postgres", "version": version(), "parameters": {"max_connections": "5", "fsync": "off", "work_mem": "lots"}}))
        .send()
        .await;
    bad.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let fields: Vec<String> =
        bad.json()["errors"].as_array().unwrap().iter().map(|e| e.string_at("/field")).collect();
    assert_eq!(fields, ["parameters.fsync", "parameters.max_connections", "parameters.work_mem"]);
    assert!(bad.text().contains("10 to 5000"), "names the range: {}", bad.text());

    let g = app
        .post(&groups)
        .cookie(&owner)
        .json(json!({"name": "oltp", "vendor": "postgres", "version": version(),
                     "parameters": {"work_mem": "4MB", "statement_timeout": "5s", "max_connections": "60", "jit": "false"}}))
        .send()
        .await;
    assert_eq!(g.status, StatusCode::CREATED, "{}", g.text());
    let g = g.json();
    assert_eq!(g["parameters"]["work_mem"], "4096");
    assert_eq!(g["parameters"]["jit"], "off");
    let group_id = g.uuid_at("/id");

    let ready = app.new_ready_store(&owner, "tuned", 2).await;
    let (id, password, store) = (ready.id, &ready.password, &ready.view);
    let ports: Vec<i64> =
        store["nodes"].as_array().unwrap().iter().map(|n| n["port"].as_i64().unwrap()).collect();

    let r = app
        .post(&format!("/api/v1/orgs/{org}/stores/{id}/parameter-group"))
        .cookie(&owner)
        .json(json!({"group_id": group_id}))
        .send()
        .await;
    let job = app.job_succeeded(&owner, org, r.accepted_job()).await;
    let log: Vec<&str> = job["log"].as_array().unwrap().iter().map(|l| l.str_at("/message")).collect();
    assert_eq!(log.iter().filter(|l| l.contains("restarted for max_connections")).count(), 2, "{log:?}");
    for port in &ports {
        assert_eq!(show(*port, password, "work_mem").await, "4MB");
        assert_eq!(show(*port, password, "statement_timeout").await, "5s");
        assert_eq!(show(*port, password, "max_connections").await, "60");
        assert_eq!(show(*port, password, "jit").await, "off");
    }
    app.wait_store(&owner, org, id, "available").await;

    let p = app.get(&format!("/api/v1/orgs/{org}/stores/{id}/parameters")).cookie(&owner).send().await.json();
    assert_eq!(p["group_id"], group_id.to_string());
    let wm = p["items"].as_array().unwrap().iter().find(|i| i["name"] == "work_mem").unwrap().clone();
    assert_eq!(wm["group_setting"], "4096");
    assert_eq!(wm["drift"], false);
    assert!(wm["nodes"].as_array().unwrap().iter().all(|n| n["setting"] == "4096"));

    // Someone changes a node behind Berth's back: the drift shows.
    let primary = ready.node("primary").uuid_at("/id");
    let spec = app
        .state
        .plane
        .node_spec(&app.db, org.into(), id.into(), primary.into(), app.clock_now())
        .await
        .unwrap()
        .unwrap();
    let mut su = app.state.plane.driver.superuser(&spec, "postgres").await.unwrap();
    sqlx::raw_sql("alter system set work_mem = '1MB'").execute(&mut su).await.unwrap();
    sqlx::raw_sql("select pg_reload_conf()").execute(&mut su).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let p =
            app.get(&format!("/api/v1/orgs/{org}/stores/{id}/parameters")).cookie(&owner).send().await.json();
        let wm = p["items"].as_array().unwrap().iter().find(|i| i["name"] == "work_mem").unwrap().clone();
        if wm["drift"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "drift never showed: {wm}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    app.delete(&format!("{groups}/{group_id}"))
        .cookie(&owner)
        .send()
        .await
        .assert_problem(StatusCode::CONFLICT, "group_in_use");
    app.delete_store(&owner, org, id).await;
}

#[tokio::test]
async fn a_group_changed_on_what_was_read_cannot_undo_a_change_made_meanwhile() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let groups = format!("/api/v1/orgs/{}/parameter-groups", app.owner_org);
    let made = app
        .post(&groups)
        .cookie(&owner)
        .json(json!({"name": "shared", "vendor": "postgres", "version": version(), "parameters": {"work_mem": "4MB"}}))
        .send()
        .await;
    assert_eq!((made.status, made.header("etag")), (StatusCode::CREATED, Some("\"1\"")), "{}", made.text());
    let path = format!("{groups}/{}", made.json().str_at("/id"));
    let read = app.get(&path).cookie(&owner).send().await;
    assert_eq!(read.header("etag"), Some("\"1\""));

    // Two people change what they both read: the second is refused, and the first's stands.
    let put = |etag: Option<&str>, work_mem: &str| {
        let mut call = app.put(&path).cookie(&owner).json(json!({"parameters": {"work_mem": work_mem}}));
        if let Some(e) = etag {
            call = call.header("if-match", e);
        }
        call.send()
    };
    let first = put(Some("\"1\""), "8MB").await;
    assert_eq!((first.status, first.header("etag")), (StatusCode::OK, Some("\"2\"")), "{}", first.text());
    put(Some("\"1\""), "16MB").await.assert_problem(StatusCode::PRECONDITION_FAILED, "precondition_failed");
    put(Some("W/\"2\""), "16MB").await.assert_problem(StatusCode::PRECONDITION_FAILED, "precondition_failed");
    let now = app.get(&path).cookie(&owner).send().await;
    assert_eq!(
        (now.json()["parameters"]["work_mem"].as_str(), now.header("etag")),
        (Some("8192"), Some("\"2\""))
    );
    // Without If-Match, the change is made on whatever is there.
    let last = put(None, "2MB").await;
    assert_eq!((last.status, last.header("etag")), (StatusCode::OK, Some("\"3\"")), "{}", last.text());
}
