use axum::http::StatusCode;
use sqlx::{Connection, PgConnection};

use crate::helpers::TestApp;

#[tokio::test]
async fn a_real_workload_moves_the_counters() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let ready = app.new_ready_store(&owner, "busy", 1).await;
    let (id, password, port) = (ready.id, ready.password.clone(), ready.port());
    let env = app.state.job_env();
    let retention = time::Duration::days(7);

    assert_eq!(berth::jobs::stats::collect_all(&env, retention).await.unwrap(), 1);
    let before =
        app.get(&format!("/api/v1/orgs/{org}/stores/{id}/stats/summary")).cookie(&owner).send().await.json();
    let before = before["items"][0].clone();

    let opts = crate::helpers::node_options(port, "dbadmin", &password, "defaultdb");
    let mut c = PgConnection::connect_with(&opts).await.unwrap();
    sqlx::raw_sql("create table w (x int)").execute(&mut c).await.unwrap();
    for i in 0..50 {
        sqlx::query("insert into w values ($1)").bind(i).execute(&mut c).await.unwrap();
    }
    sqlx::raw_sql("update w set x = x + 1; delete from w where x < 10; select count(*) from w")
        .execute(&mut c)
        .await
        .unwrap();

    let still_connected = PgConnection::connect_with(&opts).await.unwrap();
    // A backend reports its counters when it ends (or idles): close the one that did the work.
    c.close().await.unwrap();
    let mut samples = 1;
    let after = loop {
        app.clock.advance(time::Duration::seconds(10));
        berth::jobs::stats::collect_all(&env, retention).await.unwrap();
        samples += 1;
        let a = app
            .get(&format!("/api/v1/orgs/{org}/stores/{id}/stats/summary"))
            .cookie(&owner)
            .send()
            .await
            .json();
        let a = a["items"][0].clone();
        if a["tup_inserted"].as_i64().unwrap() > before["tup_inserted"].as_i64().unwrap() || samples > 30 {
            break a;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    for counter in ["xact_commit", "tup_inserted", "tup_updated", "tup_deleted"] {
        assert!(
            after[counter].as_i64().unwrap() > before[counter].as_i64().unwrap(),
            "{counter}: {before} → {after}"
        );
    }
    assert!(after["tup_inserted"].as_i64().unwrap() - before["tup_inserted"].as_i64().unwrap() >= 50);
    assert!(after["connections"].as_i64().unwrap() >= 1, "our client is connected");
    assert!(after["db_size_bytes"].as_i64().unwrap() > 0);

    drop(still_connected);
    let from = (app.clock_now() - time::Duration::minutes(10))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let to = (app.clock_now() + time::Duration::minutes(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let s = app
        .get(&format!(
            "/api/v1/orgs/{org}/stores/{id}/stats?metric=xact_commit&step=5&from={}&to={}",
            urlencode(&from),
            urlencode(&to)
        ))
        .cookie(&owner)
        .send()
        .await;
    assert_eq!(s.status, StatusCode::OK, "{}", s.text());
    let points = s.json()["items"][0]["points"].as_array().unwrap().clone();
    assert_eq!(points.len(), samples, "one sample a bucket, ten seconds apart in 5 s buckets: {points:?}");
    assert!(points.last().unwrap()["max"].as_f64().unwrap() > points[0]["max"].as_f64().unwrap());

    let bad = app
        .get(&format!("/api/v1/orgs/{org}/stores/{id}/stats?metric=passwords"))
        .cookie(&owner)
        .send()
        .await;
    bad.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let bad = app
        .get(&format!("/api/v1/orgs/{org}/stores/{id}/stats?metric=connections&step=0"))
        .cookie(&owner)
        .send()
        .await;
    bad.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");

    // Retention: samples older than it go.
    app.clock.advance(time::Duration::days(8));
    berth::jobs::stats::collect_all(&env, retention).await.unwrap();
    let n: i64 = sqlx::query_scalar("select count(*) from store_stats").fetch_one(&app.db).await.unwrap();
    assert_eq!(n, 1, "only the newest sample is left");

    let owner = app.login_owner().await;
    app.delete_store(&owner, org, id).await;
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
