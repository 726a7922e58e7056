use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::client::{Backup, Fields, store_body, store_path};
use crate::helpers::TestApp;

pub async fn conn(port: i64, password: &str) -> PgConnection {
    crate::helpers::node_connect(port, "dbadmin", password, "defaultdb").await.unwrap()
}

pub async fn count(port: i64, password: &str) -> i64 {
    sqlx::query_scalar("select count(*) from t").fetch_one(&mut conn(port, password).await).await.unwrap()
}

/// Restores the store at `base` in place with `body`, and waits until it is available again.
async fn restore_in_place(app: &TestApp, owner: &str, base: &str, id: Uuid, body: serde_json::Value) {
    let r = app.post(&format!("{base}/restore")).cookie(owner).json(body).send().await;
    app.job_succeeded(owner, app.owner_org, r.accepted_job()).await;
    app.wait_store(owner, app.owner_org, id, "available").await;
}

/// A running one-node store whose table `t` holds 1..=`rows`.
pub struct Source {
    pub id: Uuid,
    pub password: String,
    pub port: i64,
    /// `/api/v1/orgs/{org}/stores/{id}`.
    pub base: String,
}

pub async fn store_with_rows(app: &TestApp, owner: &str, name: &str, rows: i64) -> Source {
    let store = app.new_ready_store(owner, name, 1).await;
    let port = store.port();
    sqlx::raw_sql(&format!("create table t (x int); insert into t select generate_series(1, {rows})"))
        .execute(&mut conn(port, &store.password).await)
        .await
        .unwrap();
    Source { base: store.path(), id: store.id, password: store.password, port }
}

#[tokio::test]
async fn backups_restore_exactly_and_to_a_point_in_time() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let Source { id, password, port, base } = store_with_rows(&app, &owner, "safe", 1000).await;

    let Backup { id: backup_id, body: backup } = app.take_backup(&owner, org, id, "full").await;
    assert_eq!(backup["status"], "succeeded");
    assert_eq!(backup.str_at("/sha256").len(), 64);
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
    restore_in_place(&app, &owner, &base, id, json!({"point_in_time": pitr, "confirm": "safe"})).await;
    assert_eq!(count(port, &password).await, 1001, "A (-1) without B (-2)");

    restore_in_place(&app, &owner, &base, id, json!({"backup_id": backup_id, "confirm": "safe"})).await;
    assert_eq!(count(port, &password).await, 1000, "only the rows of the backup");

    let dl = app.get(&format!("{base}/backups/{backup_id}/download")).cookie(&owner).send().await;
    assert_eq!(dl.status, StatusCode::OK);
    assert_eq!(dl.header("x-checksum-sha256"), backup["sha256"].as_str());
    use sha2::Digest;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&dl.body)),
        backup.str_at("/sha256"),
        "the download is the archive"
    );

    // Corrupt the archive on disk: verify says so, restore refuses.
    let path = app.state.plane.backups.readable(&format!("{id}/{backup_id}.tar.gz")).await.unwrap();
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

    app.delete_store(&owner, org, id).await;
}

/// Creates a store made from a backup and waits until it is available; returns (store, password).
async fn fork(
    app: &TestApp,
    owner: &str,
    name: &str,
    from: serde_json::Value,
) -> (serde_json::Value, String) {
    let mut body = store_body(name, 1);
    body["restore_from"] = from;
    let created = app.create_store(owner, app.owner_org, body).await;
    app.job_succeeded(owner, app.owner_org, created.job_id).await;
    let store = app.wait_store(owner, app.owner_org, created.id, "available").await;
    (store, created.password)
}

#[tokio::test]
async fn a_deleted_store_comes_back_from_its_backups_full_or_logical() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let Source { id, password, port, base } = store_with_rows(&app, &owner, "doomed", 500).await;
    let full = app.take_backup(&owner, org, id, "full").await.id;
    sqlx::raw_sql("insert into t values (-1)").execute(&mut conn(port, &password).await).await.unwrap();
    let Backup { id: logical_id, body: logical } = app.take_backup(&owner, org, id, "logical").await;
    assert_eq!(logical["kind"], "logical");
    assert_eq!(logical["trigger"], "manual");
    assert_eq!(logical["start_lsn"], serde_json::Value::Null, "a dump covers no WAL range");
    assert_eq!(logical.str_at("/sha256").len(), 64);

    // A mistaken delete: the backups stay, listed under the deleted store.
    app.delete_store(&owner, org, id).await;
    let listed = app.get(&format!("{base}/backups")).cookie(&owner).send().await.json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 2, "{listed}");

    // Another version cannot take a physical copy.
    let mut wrong = store_body("wrong-version", 1);
    wrong["version"] = json!("9");
    wrong["restore_from"] = json!({"store_id": id, "backup_id": full});
    let r = app.post(&format!("/api/v1/orgs/{org}/stores")).cookie(&owner).json(wrong).send().await;
    r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    let (copy, copy_password) =
        fork(&app, &owner, "from-full", json!({"store_id": id, "backup_id": full})).await;
    let copy_port = copy["nodes"][0]["port"].as_i64().unwrap();
    assert_ne!(copy_password, password, "a fork has its own password");
    assert_eq!(count(copy_port, &copy_password).await, 500, "the rows of the full backup only");

    let (copy, copy_password) =
        fork(&app, &owner, "from-dump", json!({"store_id": id, "backup_id": logical_id})).await;
    let copy_port = copy["nodes"][0]["port"].as_i64().unwrap();
    assert_eq!(count(copy_port, &copy_password).await, 501, "the rows of the dump");
    let owner_of_t: String =
        sqlx::query_scalar("select tableowner::text from pg_tables where tablename = 't'")
            .fetch_one(&mut conn(copy_port, &copy_password).await)
            .await
            .unwrap();
    assert_eq!(owner_of_t, "dbadmin", "restored objects belong to the new store's admin");

    // Asked to, a deletion takes the backups with it.
    let copy_id = copy.uuid_at("/id");
    let copy_base = store_path(org, copy_id);
    let b = app.take_backup(&owner, org, copy_id, "full").await;
    let key = format!("{copy_id}/{}.tar.gz", b.id);
    let archive = app.state.plane.backups.readable(&key).await.unwrap();
    assert!(archive.exists());
    let d = app.delete(&format!("{copy_base}?delete_backups=true")).cookie(&owner).send().await;
    app.job_succeeded(&owner, org, d.accepted_job()).await;
    let listed = app.get(&format!("{copy_base}/backups")).cookie(&owner).send().await.json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 0, "{listed}");
    assert!(!archive.exists(), "the archive went with the store");
    assert!(!app.state.plane.backups.wal_dir(copy_id.into()).exists(), "and its WAL");
}

#[tokio::test]
async fn a_point_in_time_fork_and_an_in_place_logical_restore() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let Source { id, password, port, base } = store_with_rows(&app, &owner, "source", 10).await;
    let logical = app.take_backup(&owner, org, id, "logical").await.id;
    app.take_backup(&owner, org, id, "full").await;
    sqlx::raw_sql("insert into t values (-1)").execute(&mut conn(port, &password).await).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let moment = time::OffsetDateTime::now_utc();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    sqlx::raw_sql("insert into t values (-2)").execute(&mut conn(port, &password).await).await.unwrap();
    app.clock.advance(time::OffsetDateTime::now_utc() - app.clock_now());

    let window = app.get(&format!("{base}/restore-window")).cookie(&owner).send().await.json();
    let earliest = time::OffsetDateTime::parse(
        window.str_at("/earliest"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(earliest <= moment, "{window}");
    assert_eq!(
        window["latest"].as_str(),
        Some(app.clock_now().format(&time::format_description::well_known::Rfc3339).unwrap().as_str()),
        "a running store restores to now"
    );
    assert_eq!(window["gaps"], json!([]));

    let pitr = moment.format(&time::format_description::well_known::Rfc3339).unwrap();
    let (copy, copy_password) =
        fork(&app, &owner, "then", json!({"store_id": id, "point_in_time": pitr})).await;
    let copy_port = copy["nodes"][0]["port"].as_i64().unwrap();
    assert_eq!(count(copy_port, &copy_password).await, 11, "A (-1) without B (-2)");
    assert_eq!(count(port, &password).await, 12, "the source is untouched");

    // The dump, in place: the table as it was when the dump was taken.
    restore_in_place(&app, &owner, &base, id, json!({"backup_id": logical, "confirm": "source"})).await;
    assert_eq!(count(port, &password).await, 10);
}

#[tokio::test]
async fn schedules_validate_start_backups_once_across_instances_and_retention_prunes() {
    let app = TestApp::spawn().await.with_workers(1).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let store = app.new_ready_store(&owner, "scheduled", 1).await;
    let (id, base) = (store.id, store.path());
    let path = format!("{base}/backup-schedule");

    let s = app.get(&path).cookie(&owner).send().await.json();
    assert_eq!(s["full_cron"], "0 3 * * *", "every store starts with a daily backup: {s}");
    assert_eq!(s["retention"], json!({"count": 7, "days": 7}));

    for (bad, field) in [
        (json!({"full_cron": "61 * * * *", "retention": {"count": 2}}), "full_cron"),
        (
            json!({"full_cron": "0 * * * *", "logical_cron": "every day", "retention": {"count": 2}}),
            "logical_cron",
        ),
        (json!({"full_cron": "0 0 30 2 *", "retention": {"count": 2}}), "full_cron"),
        (json!({"full_cron": "0 * * * *", "retention": {"count": 0}}), "retention.count"),
        (json!({"full_cron": "0 * * * *", "retention": {"days": 2}, "source": "somewhere"}), "source"),
    ] {
        let r = app.put(&path).cookie(&owner).json(bad.clone()).send().await;
        r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(r.json()["errors"][0]["field"], field, "{bad}: {}", r.text());
    }
    let r =
        app.put(&path).cookie(&owner).json(json!({"full_cron": "61 * * * *", "retention": {}})).send().await;
    assert!(r.string_at("/detail").contains("61"), "the reason names the value: {}", r.text());
    assert_eq!(
        app.get(&path).cookie(&owner).send().await.json()["full_cron"],
        "0 3 * * *",
        "nothing changed"
    );

    let r = app
        .put(&path)
        .cookie(&owner)
        .json(json!({"full_cron": "0 * * * *", "retention": {"count": 2}, "source": "primary"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let next = r.string_at("/next_full_at");

    // Two Berth instances on one database, their schedulers ticking at the same moment.
    let other = crate::helpers::pool(&app.db_options).await;
    let env_a = app.state.job_env();
    let env_b = berth::jobs::JobEnv { db: other, ..app.state.job_env() };
    let tick = |e: berth::jobs::JobEnv| async move { berth::jobs::schedule::tick(&e).await.unwrap() };
    let (a, b) = tokio::join!(tick(env_a.clone()), tick(env_b.clone()));
    assert_eq!(a.started + b.started, 0, "nothing is due before {next}");
    app.clock.advance(time::Duration::hours(1));
    // The hour outlasts the session's idle timeout.
    let owner = app.login_owner().await;
    let (a, b) = tokio::join!(tick(env_a.clone()), tick(env_b.clone()));
    assert_eq!(a.started + b.started, 1, "the due backup starts once");
    let listed = app.get(&format!("{base}/backups")).cookie(&owner).send().await.json();
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{listed}");
    assert_eq!(items[0]["trigger"], "schedule");
    let (a, b) = tokio::join!(tick(env_a.clone()), tick(env_b.clone()));
    assert_eq!(a.started + b.started, 0, "and not again within the hour");
    let first = items[0].uuid_at("/id");
    let job = app.get(&format!("{base}/jobs")).cookie(&owner).send().await.uuid_at("/items/0/id");
    assert_eq!(app.wait_job(&owner, org, job).await["status"], "succeeded");
    let taken = app.get(&format!("{base}/backups/{first}")).cookie(&owner).send().await.json();
    assert_eq!(taken["status"], "succeeded", "{taken}");

    // Two more by hand: retention (2) lets the oldest go, with the WAL before the oldest kept.
    app.take_backup(&owner, org, id, "full").await;
    let newest = app.take_backup(&owner, org, id, "full").await;
    let store_id = id;
    let wal_before = app.state.plane.backups.wal_segments(store_id.into()).await.unwrap().len();
    let (a, b) = tokio::join!(tick(env_a.clone()), tick(env_b.clone()));
    assert_eq!(a.pruned + b.pruned, 1);
    let listed = app.get(&format!("{base}/backups")).cookie(&owner).send().await.json();
    let ids: Vec<Uuid> = listed["items"].as_array().unwrap().iter().map(|b| b.uuid_at("/id")).collect();
    assert_eq!(ids.len(), 2);
    assert!(!ids.contains(&first), "the oldest is pruned");
    assert_eq!(ids[0], newest.id);
    let archive = app.state.plane.backups.readable(&format!("{id}/{first}.tar.gz")).await.unwrap();
    assert!(!archive.exists(), "with its archive");
    let oldest_start = listed.str_at("/items/1/start_lsn");
    let keep_from = berth::backup::lsn_segment(oldest_start).unwrap();
    let segments = app.state.plane.backups.wal_segments(store_id.into()).await.unwrap();
    assert!(!segments.is_empty() && segments.len() < wal_before, "{wal_before} → {}", segments.len());
    assert!(segments.iter().all(|s| s.number().unwrap() >= keep_from), "no WAL older than the oldest backup");
}

#[tokio::test]
async fn archives_are_for_members_only_and_every_download_is_audited() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let Source { id: store, base, .. } = store_with_rows(&app, &owner, "guarded", 10).await;
    let Backup { id, body: b } = app.take_backup(&owner, org, store, "full").await;
    let (download, verify) = (format!("{base}/backups/{id}/download"), format!("{base}/backups/{id}/verify"));
    let (_, viewer) = app.active_member(&owner, org, "viewer@example.com", "viewer").await;
    let (_, member) = app.active_member(&owner, org, "member@example.com", "member").await;

    assert_eq!(app.get(&format!("{base}/backups/{id}")).cookie(&viewer).send().await.status, StatusCode::OK);
    app.get(&download)
        .cookie(&viewer)
        .send()
        .await
        .assert_problem(StatusCode::FORBIDDEN, "insufficient_role");
    app.post(&verify).cookie(&viewer).send().await.assert_problem(StatusCode::FORBIDDEN, "insufficient_role");
    let downloads = |app: &TestApp| {
        let db = app.db.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "select actor from audit_events where org_id = $1 and action = 'backup.downloaded' order by id",
            )
            .bind(org)
            .fetch_all(&db)
            .await
            .unwrap()
        }
    };
    assert!(downloads(&app).await.is_empty(), "a refused download is no download");

    let dl = app.get(&download).cookie(&member).send().await;
    assert_eq!(dl.status, StatusCode::OK);
    assert_eq!(dl.body.len() as i64, b["size_bytes"].as_i64().unwrap());
    assert_eq!(app.post(&verify).cookie(&member).send().await.json()["valid"], true);
    assert_eq!(downloads(&app).await, ["member@example.com"]);

    // A credential needs the scope of its own; backups:read is not enough, and a viewer cannot
    // grant it.
    let tok = app.bearer_token(&member, org, &["backups:read", "backups:write"]).await;
    app.get(&download).bearer(&tok).send().await.assert_problem(StatusCode::FORBIDDEN, "insufficient_scope");
    let tok = app.bearer_token(&member, org, &["backups:download"]).await;
    assert_eq!(app.get(&download).bearer(&tok).send().await.status, StatusCode::OK);
    let credential: Option<uuid::Uuid> = sqlx::query_scalar(
        "select credential_id from audit_events where action = 'backup.downloaded' order by id desc limit 1",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(credential.is_some(), "the download by a token names its credential");
    assert_eq!(downloads(&app).await.len(), 2);
    let expires = (app.clock_now() + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    app.post(&format!("/api/v1/orgs/{org}/credentials"))
        .cookie(&viewer)
        .json(json!({"description": "x", "expires_at": expires, "scopes": ["backups:download"]}))
        .send()
        .await
        .assert_problem(StatusCode::FORBIDDEN, "insufficient_role");
}
