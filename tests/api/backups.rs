use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use sqlx::PgConnection;

use crate::helpers::{TestApp, wait_job};
use crate::stores::{create, wait_for};

async fn conn(port: i64, password: &str) -> PgConnection {
    crate::helpers::node_connect(port, "dbadmin", password, "defaultdb").await.unwrap()
}

async fn count(port: i64, password: &str) -> i64 {
    sqlx::query_scalar("select count(*) from t").fetch_one(&mut conn(port, password).await).await.unwrap()
}

#[tokio::test]
async fn backups_restore_exactly_and_to_a_point_in_time() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let created = create(&app, &owner, "safe", 1).await;
    let id = created["store"]["id"].as_str().unwrap().to_owned();
    let password = created["credentials"]["password"].as_str().unwrap().to_owned();
    let store = wait_for(&app, &owner, org, &id, "available").await;
    let port = store["nodes"][0]["port"].as_i64().unwrap();
    let base = format!("/api/v1/orgs/{org}/stores/{id}");
    sqlx::raw_sql("create table t (x int); insert into t select generate_series(1, 1000)")
        .execute(&mut conn(port, &password).await)
        .await
        .unwrap();

    let b = app.post(&format!("{base}/backups")).cookie(&owner).json(json!({"kind": "full"})).send().await;
    assert_eq!(b.status, StatusCode::ACCEPTED, "{}", b.text());
    let backup_id = b.json()["backup"]["id"].as_str().unwrap().to_owned();
    let job = wait_job(&app, &owner, org, b.json()["job"]["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let backup = app.get(&format!("{base}/backups/{backup_id}")).cookie(&owner).send().await.json();
    assert_eq!(backup["status"], "succeeded");
    assert_eq!(backup["sha256"].as_str().unwrap().len(), 64);
    assert!(backup["size_bytes"].as_i64().unwrap() > 1000);

    // More writes after the backup; a moment between them; then more.
    sqlx::raw_sql("insert into t values (-1)").execute(&mut conn(port, &password).await).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let moment = time::OffsetDateTime::now_utc();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    sqlx::raw_sql("insert into t values (-2)").execute(&mut conn(port, &password).await).await.unwrap();
    // The clock the API checks "not in the future" against.
    app.clock.advance(time::OffsetDateTime::now_utc() - app.clock_now());

    let pitr = moment.format(&time::format_description::well_known::Rfc3339).unwrap();
    let r = app
        .post(&format!("{base}/restore"))
        .cookie(&owner)
        .json(json!({"point_in_time": pitr, "confirm": "wrong"}))
        .send()
        .await;
    r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let r = app
        .post(&format!("{base}/restore"))
        .cookie(&owner)
        .json(json!({"point_in_time": pitr, "confirm": "safe"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let job = wait_job(&app, &owner, org, r.json()["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    wait_for(&app, &owner, org, &id, "available").await;
    assert_eq!(count(port, &password).await, 1001, "A (-1) without B (-2)");

    let r = app
        .post(&format!("{base}/restore"))
        .cookie(&owner)
        .json(json!({"backup_id": backup_id, "confirm": "safe"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let job = wait_job(&app, &owner, org, r.json()["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    wait_for(&app, &owner, org, &id, "available").await;
    assert_eq!(count(port, &password).await, 1000, "only the rows of the backup");

    let dl = app.get(&format!("{base}/backups/{backup_id}/download")).cookie(&owner).send().await;
    assert_eq!(dl.status, StatusCode::OK);
    assert_eq!(dl.header("x-checksum-sha256"), backup["sha256"].as_str());
    use sha2::Digest;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&dl.body)),
        backup["sha256"].as_str().unwrap(),
        "the download is the archive"
    );

    // Corrupt the archive on disk: verify says so, restore refuses.
    let path = app.state.plane.backups.path(&format!("{id}/{backup_id}.tar.gz")).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let v = app.post(&format!("{base}/backups/{backup_id}/verify")).cookie(&owner).send().await.json();
    assert_eq!(v["valid"], false, "{v}");
    let r = app
        .post(&format!("{base}/restore"))
        .cookie(&owner)
        .json(json!({"backup_id": backup_id, "confirm": "safe"}))
        .send()
        .await;
    r.assert_problem(StatusCode::CONFLICT, "backup_corrupt");
    assert_eq!(count(port, &password).await, 1000, "nothing changed");

    let listed = app.get(&format!("{base}/backups")).cookie(&owner).send().await.json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.delete(&format!("{base}/backups/{backup_id}")).cookie(&owner).send().await.status,
        StatusCode::NO_CONTENT
    );
    assert!(!path.exists(), "the archive is removed with the backup");

    let d = app.delete(&format!("/api/v1/orgs/{org}/stores/{id}")).cookie(&owner).send().await;
    assert_eq!(d.status, StatusCode::ACCEPTED);
    wait_for(&app, &owner, org, &id, "gone").await;
}
