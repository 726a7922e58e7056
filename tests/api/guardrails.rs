//! The guardrails on what a tenant may ask for. Every rule here is checked before a job runs,
//! so no test waits for a real node.

use axum::http::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::TestApp;
use crate::stores::{body, create, version};

/// What the store's create job would leave behind, without running it: the job done and the
/// store available, so the next change to it is not refused as busy.
async fn settle(app: &TestApp, store: &str) {
    let id: Uuid = store.parse().unwrap();
    sqlx::query("update jobs set status = 'succeeded', finished_at = now() where store_id = $1 and status in ('queued', 'running')")
        .bind(id)
        .execute(&app.db)
        .await
        .unwrap();
    sqlx::query("update stores set status = 'available' where id = $1")
        .bind(id)
        .execute(&app.db)
        .await
        .unwrap();
}

async fn create_sized(app: &TestApp, cookie: &str, name: &str, size: &str) -> String {
    let mut b = body(name, 1);
    b["instance_size"] = json!(size);
    let r = app.post(&format!("/api/v1/orgs/{}/stores", app.owner_org)).cookie(cookie).json(b).send().await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let id = r.json()["store"]["id"].as_str().unwrap().to_owned();
    settle(app, &id).await;
    id
}

async fn group(app: &TestApp, cookie: &str, name: &str, parameters: Value) -> crate::helpers::TestResponse {
    app.post(&format!("/api/v1/orgs/{}/parameter-groups", app.owner_org))
        .cookie(cookie)
        .json(json!({"name": name, "vendor": "postgres", "version": version(), "parameters": parameters}))
        .send()
        .await
}

#[track_caller]
fn assert_field(r: &crate::helpers::TestResponse, field: &str, says: &[&str]) {
    r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let e = &r.json()["errors"][0];
    assert_eq!(e["field"], field, "{}", r.text());
    for s in says {
        assert!(e["message"].as_str().unwrap().contains(s), "{s:?} in {}", r.text());
    }
}

#[tokio::test]
async fn a_group_must_fit_an_instance_size_to_be_made_applied_or_kept_through_a_resize() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let org = app.owner_org;

    // No size holds 64 GB of shared buffers: the largest, medium (4 GiB), takes 1638 MB.
    let r = group(&app, &owner, "too-big", json!({"shared_buffers": "64GB"})).await;
    assert_field(
        &r,
        "parameters.shared_buffers",
        &["no instance size holds it", "medium", "at most 1638 MB"],
    );
    assert!(r.json()["detail"].as_str().unwrap().contains("shared_buffers"));
    let r = group(&app, &owner, "too-many", json!({"max_connections": "2000"})).await;
    assert_field(&r, "parameters.max_connections", &["at most 1024"]);
    let groups: i64 =
        sqlx::query_scalar("select count(*) from parameter_groups").fetch_one(&app.db).await.unwrap();
    assert_eq!(groups, 0, "nothing refused was made");

    let r = group(&app, &owner, "big", json!({"shared_buffers": "1GB"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "medium holds it: {}", r.text());
    let big = r.json()["id"].as_str().unwrap().to_owned();
    let r = app
        .put(&format!("/api/v1/orgs/{org}/parameter-groups/{big}"))
        .cookie(&owner)
        .json(json!({"parameters": {"shared_buffers": "64GB"}}))
        .send()
        .await;
    assert_field(&r, "parameters.shared_buffers", &["no instance size holds it"]);

    // Applying it to the smallest size names the parameter and that size's bound.
    let tiny = create_sized(&app, &owner, "tiny-one", "tiny").await;
    let apply = |store: &str, group: &str| {
        app.post(&format!("/api/v1/orgs/{org}/stores/{store}/parameter-group"))
            .cookie(&owner)
            .json(json!({"group_id": group}))
            .send()
    };
    let r = apply(&tiny, &big).await;
    assert_field(&r, "parameters.shared_buffers", &["1024 MB", "tiny", "at most 102 MB"]);
    let applied: Option<Uuid> = sqlx::query_scalar("select parameter_group_id from stores where id = $1")
        .bind(tiny.parse::<Uuid>().unwrap())
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(applied, None, "the group was not applied");

    // A medium store takes it; resizing that store down is refused while the group is on it.
    let medium = create_sized(&app, &owner, "medium-one", "medium").await;
    assert_eq!(apply(&medium, &big).await.status, StatusCode::ACCEPTED);
    settle(&app, &medium).await;
    let store = format!("/api/v1/orgs/{org}/stores/{medium}");
    for smaller in ["tiny", "small"] {
        let r = app.patch(&store).cookie(&owner).json(json!({"instance_size": smaller})).send().await;
        assert_field(&r, "instance_size", &["parameter group sets shared_buffers", smaller]);
    }
    let s = app.get(&store).cookie(&owner).send().await.json();
    assert_eq!((s["instance_size"].as_str(), s["status"].as_str()), (Some("medium"), Some("available")));
    let jobs: i64 =
        sqlx::query_scalar("select count(*) from jobs where store_id = $1 and kind = 'resize_store'")
            .bind(medium.parse::<Uuid>().unwrap())
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(jobs, 0, "no resize started");
    // A volume change alone is no resize of memory.
    let r = app.patch(&store).cookie(&owner).json(json!({"volume_size": 20})).send().await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());

    // A group changed to more than a store using it holds is refused, naming the store.
    let lean = group(&app, &owner, "lean", json!({"shared_buffers": "64MB"})).await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(apply(&tiny, &lean).await.status, StatusCode::ACCEPTED);
    let r = app
        .put(&format!("/api/v1/orgs/{org}/parameter-groups/{lean}"))
        .cookie(&owner)
        .json(json!({"parameters": {"shared_buffers": "512MB"}}))
        .send()
        .await;
    assert_field(&r, "parameters.shared_buffers", &["store tiny-one uses this group", "at most 102 MB"]);
}

async fn put(app: &TestApp, cookie: &str, path: &str, b: Value) -> crate::helpers::TestResponse {
    app.put(path).cookie(cookie).json(b).send().await
}

#[tokio::test]
async fn a_schedule_keeps_the_operators_minimum_interval_and_a_retention() {
    let mut app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let created = create(&app, &owner, "scheduled", 1).await;
    let path = format!(
        "/api/v1/orgs/{}/stores/{}/backup-schedule",
        app.owner_org,
        created["store"]["id"].as_str().unwrap()
    );
    let r = put(&app, &owner, &path, json!({"full_cron": "*/10 * * * *", "retention": {"count": 3}})).await;
    assert_field(&r, "full_cron", &["again 10m later", "at least 1h apart"]);
    let r = put(
        &app,
        &owner,
        &path,
        json!({"full_cron": "0 3 * * *", "logical_cron": "0,30 4 * * *", "retention": {"days": 7}}),
    )
    .await;
    assert_field(&r, "logical_cron", &["again 30m later"]);
    let r = put(&app, &owner, &path, json!({"full_cron": "0 3 * * *", "retention": {}})).await;
    assert_field(&r, "retention", &["count, days or both"]);
    let r = put(
        &app,
        &owner,
        &path,
        json!({"full_cron": "0 3 * * *", "retention": {"count": null, "days": null}}),
    )
    .await;
    assert_field(&r, "retention", &[]);
    let r = put(&app, &owner, &path, json!({"full_cron": "0 3 * * *", "retention": {"days": 3651}})).await;
    assert_field(&r, "retention.days", &["1 to 3650"]);
    let s = app.get(&path).cookie(&owner).send().await.json();
    assert_eq!(
        (s["full_cron"].as_str(), &s["retention"]),
        (Some("0 3 * * *"), &json!({"count": 7, "days": 7}))
    );

    let r = put(&app, &owner, &path, json!({"full_cron": "0 */2 * * *", "retention": {"days": 2}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // The operator allows ten minutes: the same expression passes.
    app.state.plane.backup_min_interval = std::time::Duration::from_secs(600);
    app.router = berth::app::build_router(app.state.clone());
    let r = put(&app, &owner, &path, json!({"full_cron": "*/10 * * * *", "retention": {"count": 3}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = put(&app, &owner, &path, json!({"full_cron": "*/5 * * * *", "retention": {"count": 3}})).await;
    assert_field(&r, "full_cron", &["at least 10m apart"]);
}

#[tokio::test]
async fn the_node_port_range_running_out_is_503_capacity_exhausted() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let path = format!("/api/v1/orgs/{}/stores", app.owner_org);
    let first = create(&app, &owner, "first", 1).await["store"]["id"].as_str().unwrap().to_owned();
    let mut made = 1;
    let mut create_until_refused = async |nodes: i64| loop {
        let r = app.post(&path).cookie(&owner).json(body(&format!("wide-{made}"), nodes)).send().await;
        if r.status != StatusCode::ACCEPTED {
            return (r, made);
        }
        made += 1;
        assert!(made <= 10, "more nodes than this app's ten ports");
    };
    // Stores of five nodes until the range cannot take one, then of one until it is full.
    let (refused, _) = create_until_refused(5).await;
    refused.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "capacity_exhausted");
    assert!(refused.json()["detail"].as_str().unwrap().contains("needs 5"), "{}", refused.text());
    let (refused, made) = create_until_refused(1).await;
    refused.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "capacity_exhausted");
    assert!(refused.header("retry-after").is_some_and(|v| v.parse::<u64>().is_ok()), "{:?}", refused.headers);
    let stores: i64 = sqlx::query_scalar("select count(*) from stores").fetch_one(&app.db).await.unwrap();
    assert_eq!(stores, made as i64, "a refused store is not made");

    // Adding a node when no port is left is the same answer.
    settle(&app, &first).await;
    let r = app.post(&format!("{path}/{first}/nodes")).cookie(&owner).send().await;
    r.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "capacity_exhausted");
}
