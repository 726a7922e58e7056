//! The guardrails on what a tenant may ask for. Every rule here is checked before a job runs,
//! so no test waits for a real node.

use axum::http::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::client::{Fields, pg_version as version, store_body as body};
use crate::helpers::TestApp;

/// What the store's create job would leave behind, without running it: the job done and the
/// store available, so the next change to it is not refused as busy.
async fn settle(app: &TestApp, id: Uuid) {
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

async fn create_sized(app: &TestApp, cookie: &str, name: &str, size: &str) -> Uuid {
    let mut b = body(name, 1);
    b["instance_size"] = json!(size);
    let id = app.create_store(cookie, app.owner_org, b).await.id;
    settle(app, id).await;
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
        assert!(e.str_at("/message").contains(s), "{s:?} in {}", r.text());
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
    assert!(r.string_at("/detail").contains("shared_buffers"));
    let r = group(&app, &owner, "too-many", json!({"max_connections": "2000"})).await;
    assert_field(&r, "parameters.max_connections", &["at most 1024"]);
    let groups: i64 =
        sqlx::query_scalar("select count(*) from parameter_groups").fetch_one(&app.db).await.unwrap();
    assert_eq!(groups, 0, "nothing refused was made");

    let r = group(&app, &owner, "big", json!({"shared_buffers": "1GB"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "medium holds it: {}", r.text());
    let big = r.uuid_at("/id");
    let r = app
        .put(&format!("/api/v1/orgs/{org}/parameter-groups/{big}"))
        .cookie(&owner)
        .json(json!({"parameters": {"shared_buffers": "64GB"}}))
        .send()
        .await;
    assert_field(&r, "parameters.shared_buffers", &["no instance size holds it"]);

    // Applying it to the smallest size names the parameter and that size's bound.
    let tiny = create_sized(&app, &owner, "tiny-one", "tiny").await;
    let apply = |store: Uuid, group: Uuid| {
        app.post(&format!("/api/v1/orgs/{org}/stores/{store}/parameter-group"))
            .cookie(&owner)
            .json(json!({"group_id": group}))
            .send()
    };
    let r = apply(tiny, big).await;
    assert_field(&r, "parameters.shared_buffers", &["1024 MB", "tiny", "at most 102 MB"]);
    let applied: Option<Uuid> = sqlx::query_scalar("select parameter_group_id from stores where id = $1")
        .bind(tiny)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(applied, None, "the group was not applied");

    // A medium store takes it; resizing that store down is refused while the group is on it.
    let medium = create_sized(&app, &owner, "medium-one", "medium").await;
    assert_eq!(apply(medium, big).await.status, StatusCode::ACCEPTED);
    settle(&app, medium).await;
    let store = format!("/api/v1/orgs/{org}/stores/{medium}");
    for smaller in ["tiny", "small"] {
        let r = app.patch(&store).cookie(&owner).json(json!({"instance_size": smaller})).send().await;
        assert_field(&r, "instance_size", &["parameter group sets shared_buffers", smaller]);
    }
    let s = app.get(&store).cookie(&owner).send().await.json();
    assert_eq!((s["instance_size"].as_str(), s["status"].as_str()), (Some("medium"), Some("available")));
    let jobs: i64 =
        sqlx::query_scalar("select count(*) from jobs where store_id = $1 and kind = 'resize_store'")
            .bind(medium)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(jobs, 0, "no resize started");
    // A volume change alone is no resize of memory.
    let r = app.patch(&store).cookie(&owner).json(json!({"volume_size": 20})).send().await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());

    // A group changed to more than a store using it holds is refused, naming the store.
    let lean = group(&app, &owner, "lean", json!({"shared_buffers": "64MB"})).await.uuid_at("/id");
    assert_eq!(apply(tiny, lean).await.status, StatusCode::ACCEPTED);
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
    let path = format!("{}/backup-schedule", app.new_store(&owner, "scheduled", 1).await.path());
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
    app.router = berth::build_router(app.state.clone());
    let r = put(&app, &owner, &path, json!({"full_cron": "*/10 * * * *", "retention": {"count": 3}})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = put(&app, &owner, &path, json!({"full_cron": "*/5 * * * *", "retention": {"count": 3}})).await;
    assert_field(&r, "full_cron", &["at least 10m apart"]);
}

/// Gives the owner's organization its own limit of one quota.
async fn override_quota(app: &TestApp, column: &str, limit: i64) {
    sqlx::query(&format!(
        "insert into org_quotas (org_id, {column}) values ($1, $2)
         on conflict (org_id) do update set {column} = excluded.{column}"
    ))
    .bind(app.owner_org)
    .bind(limit)
    .execute(&app.db)
    .await
    .unwrap();
}

#[track_caller]
fn assert_quota(r: &crate::helpers::TestResponse, quota: &str, limit: i64, usage: i64) {
    r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "quota_exceeded");
    let p = r.json();
    assert_eq!(
        (p["quota"].as_str(), p["limit"].as_i64(), p["usage"].as_i64()),
        (Some(quota), Some(limit), Some(usage)),
        "{p}"
    );
    assert!(p.str_at("/detail").contains(&limit.to_string()), "{p}");
}

async fn quotas(app: &TestApp, cookie: &str) -> Vec<(String, i64, i64)> {
    let r = app.get(&format!("/api/v1/orgs/{}/quotas", app.owner_org)).cookie(cookie).send().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| (q.string_at("/quota"), q["limit"].as_i64().unwrap(), q["usage"].as_i64().unwrap()))
        .collect()
}

#[tokio::test]
async fn quotas_come_from_the_operator_an_organization_may_have_its_own_and_usage_shows() {
    let mut app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let (_, viewer) = app.active_member(&owner, app.owner_org, "viewer@example.com", "viewer").await;
    app.new_store(&owner, "counted", 2).await;
    let want = |stores: i64| {
        vec![
            ("stores".to_owned(), stores, 1),
            ("nodes".to_owned(), 50, 2),
            ("vpcs".to_owned(), 10, 0),
            ("backup_bytes".to_owned(), 1 << 40, 0),
        ]
    };
    assert_eq!(quotas(&app, &viewer).await, want(20), "a viewer reads them");
    app.state.plane.quotas.stores = 5;
    app.router = berth::build_router(app.state.clone());
    assert_eq!(quotas(&app, &owner).await, want(5), "the operator's default");
    override_quota(&app, "stores", 1).await;
    assert_eq!(quotas(&app, &owner).await, want(1), "the organization's own");
    let mut b = body("one-too-many", 1);
    b["nodes"] = json!(1);
    let r = app.post(&format!("/api/v1/orgs/{}/stores", app.owner_org)).cookie(&owner).json(b).send().await;
    assert_quota(&r, "stores", 1, 1);
}

#[tokio::test]
async fn concurrent_creates_never_pass_the_store_quota() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    override_quota(&app, "stores", 3).await;
    let path = format!("/api/v1/orgs/{}/stores", app.owner_org);
    let calls = (0..10).map(|i| app.post(&path).cookie(&owner).json(body(&format!("racer-{i}"), 1)).send());
    let answers = futures::future::join_all(calls).await;
    let accepted = answers.iter().filter(|r| r.status == StatusCode::ACCEPTED).count();
    assert_eq!(accepted, 3, "{:?}", answers.iter().map(|r| r.status).collect::<Vec<_>>());
    for r in answers.iter().filter(|r| r.status != StatusCode::ACCEPTED) {
        assert_quota(r, "stores", 3, 3);
    }
    let (stores, jobs): (i64, i64) =
        sqlx::query_as("select (select count(*) from stores), (select count(*) from jobs)")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!((stores, jobs), (3, 3), "a refused create leaves nothing behind");
}

#[tokio::test]
async fn the_node_quota_holds_on_create_and_on_adding_a_node() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    override_quota(&app, "nodes", 3).await;
    let first = app.new_store(&owner, "pair", 2).await.id;
    let r = app
        .post(&format!("/api/v1/orgs/{org}/stores"))
        .cookie(&owner)
        .json(body("another-pair", 2))
        .send()
        .await;
    assert_quota(&r, "nodes", 3, 2);
    settle(&app, first).await;
    let add = format!("/api/v1/orgs/{org}/stores/{first}/nodes");
    assert_eq!(app.post(&add).cookie(&owner).send().await.status, StatusCode::ACCEPTED);
    settle(&app, first).await;
    let r = app.post(&add).cookie(&owner).send().await;
    assert_quota(&r, "nodes", 3, 3);
    let nodes: i64 = sqlx::query_scalar("select count(*) from store_nodes").fetch_one(&app.db).await.unwrap();
    assert_eq!(nodes, 3);
}

#[tokio::test]
async fn the_vpc_quota_holds() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    if let Err(why) = app.state.plane.driver.networks_available() {
        crate::helpers::root_can_run(&format!("VPC networks ({why})"));
        return;
    }
    override_quota(&app, "vpcs", 1).await;
    let path = format!("/api/v1/orgs/{}/vpcs", app.owner_org);
    let vpc = |name: &str, cidr: &str| json!({"name": name, "cloud": "local", "region": "local-1", "cidr_ipv4_block": cidr});
    let r = app.post(&path).cookie(&owner).json(vpc("first", "10.70.0.0/24")).send().await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let r = app.post(&path).cookie(&owner).json(vpc("second", "10.71.0.0/24")).send().await;
    assert_quota(&r, "vpcs", 1, 1);
}

#[tokio::test]
async fn backups_stop_starting_once_the_kept_bytes_fill_the_quota() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let store = app.new_store(&owner, "kept", 1).await.id;
    settle(&app, store).await;
    let store_id = store;
    override_quota(&app, "backup_bytes", 1000).await;
    // A backup taken earlier, of exactly the quota.
    sqlx::query(
        "insert into backups (id, org_id, store_id, kind, status, size_bytes, created_at, finished_at)
         values ($1, $2, $3, 'full', 'succeeded', 1000, now(), now())",
    )
    .bind(Uuid::now_v7())
    .bind(org)
    .bind(store_id)
    .execute(&app.db)
    .await
    .unwrap();
    let backups = format!("/api/v1/orgs/{org}/stores/{store}/backups");
    let r = app.post(&backups).cookie(&owner).json(json!({"kind": "full"})).send().await;
    assert_quota(&r, "backup_bytes", 1000, 1000);

    // The scheduler skips a due backup too, and moves on to the next time.
    let due = app.clock_now() - time::Duration::minutes(1);
    sqlx::query("update backup_schedules set next_full_at = $2 where store_id = $1")
        .bind(store_id)
        .bind(due)
        .execute(&app.db)
        .await
        .unwrap();
    let tick = berth::jobs::schedule::tick(&app.state.job_env()).await.unwrap();
    assert_eq!(tick.started, 0);
    let next: time::OffsetDateTime =
        sqlx::query_scalar("select next_full_at from backup_schedules where store_id = $1")
            .bind(store_id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(next > app.clock_now(), "skipped, not retried at every tick: {next}");
    let count: i64 = sqlx::query_scalar("select count(*) from backups").fetch_one(&app.db).await.unwrap();
    assert_eq!(count, 1);

    override_quota(&app, "backup_bytes", 1001).await;
    let r = app.post(&backups).cookie(&owner).json(json!({"kind": "full"})).send().await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "under the quota: {}", r.text());
}

#[tokio::test]
async fn the_node_port_range_running_out_is_503_capacity_exhausted() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let path = format!("/api/v1/orgs/{}/stores", app.owner_org);
    let first = app.new_store(&owner, "first", 1).await.id;
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
    assert!(refused.string_at("/detail").contains("needs 5"), "{}", refused.text());
    let (refused, made) = create_until_refused(1).await;
    refused.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "capacity_exhausted");
    assert!(refused.header("retry-after").is_some_and(|v| v.parse::<u64>().is_ok()), "{:?}", refused.headers);
    let stores: i64 = sqlx::query_scalar("select count(*) from stores").fetch_one(&app.db).await.unwrap();
    assert_eq!(stores, made as i64, "a refused store is not made");

    // Adding a node when no port is left is the same answer.
    settle(&app, first).await;
    let r = app.post(&format!("{path}/{first}/nodes")).cookie(&owner).send().await;
    r.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "capacity_exhausted");
}
