use std::time::{Duration, Instant};

use axum::http::StatusCode;
use berth::jobs::{JobKind, Step, kinds};

use crate::helpers::TestApp;

/// Enqueues `n` no-op jobs straight into the queue.
async fn noop_jobs(app: &TestApp, n: usize) {
    // Due by the app's (manual) clock.
    let now = app.clock_now() - time::Duration::SECOND;
    for _ in 0..n {
        sqlx::query(
            "insert into jobs (id, org_id, kind, status, steps, run_after, created_at, updated_at)
             values ($1, $2, $3, 'queued', $4, $5, $5, $5)",
        )
        .bind(uuid::Uuid::now_v7())
        .bind(app.owner_org)
        .bind(kinds::Noop::KIND)
        .bind(vec![Step::Noop.to_string()])
        .bind(now)
        .execute(&app.db)
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn two_instances_share_the_queue_and_run_each_job_once() {
    let a = TestApp::spawn().await.with_workers(2).await;
    let b = TestApp::on(&a.db_options, a.clock.clone()).await.with_workers(2).await;
    noop_jobs(&a, 300).await;
    a.state.wake.notify_waiters();
    b.state.wake.notify_waiters();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left: i64 = sqlx::query_scalar("select count(*) from jobs where status <> 'succeeded'")
            .fetch_one(&a.db)
            .await
            .unwrap();
        if left == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{left} jobs still not done");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let twice: i64 =
        sqlx::query_scalar("select count(*) from jobs where attempts <> 1").fetch_one(&a.db).await.unwrap();
    assert_eq!(twice, 0, "every job was claimed exactly once");
    let workers: i64 = sqlx::query_scalar("select count(*) from workers").fetch_one(&a.db).await.unwrap();
    assert_eq!(workers, 2, "both processes registered");
}

#[tokio::test]
async fn a_job_whose_worker_died_is_taken_over_when_its_lease_runs_out() {
    let app = TestApp::spawn().await;
    noop_jobs(&app, 1).await;
    // A worker that claimed the job and then vanished: running, with a lease that has run out.
    crate::helpers::strand_jobs(&app).await;
    let app = app.with_workers(1).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, attempts): (String, i32) =
            sqlx::query_as("select status, attempts from jobs").fetch_one(&app.db).await.unwrap();
        if status == "succeeded" {
            assert_eq!(attempts, 2, "the second claim ran it");
            break;
        }
        assert!(Instant::now() < deadline, "the job was never taken over ({status})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_failing_step_is_retried_with_backoff_then_fails_the_job_with_its_reason() {
    let app = TestApp::spawn().await.with_workers(1).await;
    sqlx::query(
        "insert into jobs (id, org_id, kind, status, steps, max_attempts, run_after, created_at, updated_at)
         values ($1, $2, 'noop', 'queued', '{no_such_step}', 2, $3, $3, $3)",
    )
    .bind(uuid::Uuid::now_v7())
    .bind(app.owner_org)
    .bind(app.clock_now() - time::Duration::SECOND)
    .execute(&app.db)
    .await
    .unwrap();
    app.state.wake.notify_waiters();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, attempts, error): (String, i32, Option<String>) =
            sqlx::query_as("select status, attempts, error from jobs").fetch_one(&app.db).await.unwrap();
        if attempts == 1 && status == "queued" {
            // Waiting out the backoff, by the app's clock.
            app.clock.advance(time::Duration::seconds(3));
        }
        if status == "failed" {
            assert_eq!(attempts, 2);
            assert!(error.unwrap().contains("unknown step no_such_step"));
            break;
        }
        assert!(Instant::now() < deadline, "still {status} after {attempts} attempts");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn system_status_reports_workers_queue_driver_and_stores() {
    let app = TestApp::spawn().await.with_workers(1).await;
    let owner = app.login_owner().await;
    let s = app.get("/api/v1/system/status").cookie(&owner).send().await;
    assert_eq!(s.status, StatusCode::OK, "{}", s.text());
    let s = s.json();
    assert_eq!(s["database"]["reachable"], true);
    assert_eq!(s["live_workers"], 1);
    assert_eq!(s["workers"].as_array().unwrap().len(), 1);
    assert_eq!(s["queue"]["queued"], 0);
    assert_eq!(s["driver"]["name"], "local");
    assert!(!s["driver"]["postgres_versions"].as_array().unwrap().is_empty());
    assert_eq!(s["organizations"][0]["org_id"], app.owner_org.to_string());

    // A viewer sees the summary, not the details.
    let (_, viewer) = app.active_member(&owner, app.owner_org, "v@example.com", "viewer").await;
    let v = app.get("/api/v1/system/status").cookie(&viewer).send().await.json();
    assert_eq!(v["live_workers"], 1);
    assert!(v.get("workers").is_none() && v.get("driver").is_none());
    assert_eq!(v["organizations"].as_array().unwrap().len(), 0);
    assert_eq!(app.get("/api/v1/system/status").send().await.status, StatusCode::UNAUTHORIZED);
}
