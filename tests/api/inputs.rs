//! Inputs PostgreSQL cannot store or Berth must refuse answer 4xx problems, never a 500.

use axum::http::StatusCode;
use serde_json::json;

use crate::client::{Fields, store_body};
use crate::helpers::{TestApp, TestResponse};

/// A 422 problem naming `field` as holding a NUL.
#[track_caller]
fn assert_nul_refused(r: &TestResponse, field: &str) {
    r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let errors = &r.json()["errors"];
    assert_eq!(errors[0]["field"], field, "{}", r.text());
    assert!(errors[0].str_at("/message").contains("NUL"), "{}", r.text());
}

#[tokio::test]
async fn a_nul_in_any_string_is_a_422_naming_the_field() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let store = uuid::Uuid::now_v7();

    let r = app
        .post("/api/auth/login")
        .json(json!({"login": "owner\u{0}@example.com", "password": "x"}))
        .send()
        .await;
    assert_nul_refused(&r, "login");

    let mut body = store_body("nul\u{0}store", 1);
    let r = app.post(&format!("/api/v1/orgs/{org}/stores")).cookie(&owner).json(body.clone()).send().await;
    assert_nul_refused(&r, "name");
    body["name"] = json!("fine");
    body["tags"] = json!(["ok", "a\u{0}"]);
    let r = app.post(&format!("/api/v1/orgs/{org}/stores")).cookie(&owner).json(body).send().await;
    assert_nul_refused(&r, "tags[1]");

    let r = app
        .post(&format!("/api/v1/orgs/{org}/credentials"))
        .cookie(&owner)
        .json(json!({"description": "ci\u{0}", "scopes": ["stores:read"]}))
        .send()
        .await;
    assert_nul_refused(&r, "description");

    let r = app
        .delete(&format!("/api/v1/orgs/{org}/stores/{store}/databases/app%00x"))
        .cookie(&owner)
        .send()
        .await;
    assert_nul_refused(&r, "name");
    let r =
        app.delete(&format!("/api/v1/orgs/{org}/stores/{store}/db-users/%00")).cookie(&owner).send().await;
    assert_nul_refused(&r, "name");

    let r = app.get(&format!("/api/v1/orgs/{org}/stores?tag=team%3Da%00")).cookie(&owner).send().await;
    assert_nul_refused(&r, "tag");
    let r = app.get(&format!("/api/v1/orgs/{org}/audit-events?actor=%00")).cookie(&owner).send().await;
    assert_nul_refused(&r, "actor");
}

/// The statuses of two requests sent at once, in order, with the refused one's body.
async fn race(app: &TestApp, cookie: &str, path: &str, body: serde_json::Value) -> (Vec<u16>, TestResponse) {
    let (a, b) = tokio::join!(
        app.post(path).cookie(cookie).json(body.clone()).send(),
        app.post(path).cookie(cookie).json(body).send(),
    );
    let mut statuses = vec![a.status.as_u16(), b.status.as_u16()];
    statuses.sort_unstable();
    (statuses, if a.status == StatusCode::CREATED { b } else { a })
}

#[tokio::test]
async fn system_databases_are_refused_and_concurrent_creates_are_one_201_and_one_409() {
    let app = TestApp::spawn().await.with_workers(1).await;
    let owner = app.login_owner().await;
    let base = app.new_ready_store(&owner, "inputs", 1).await.path();

    for system in ["template1", "template0", "postgres"] {
        let r = app.delete(&format!("{base}/databases/{system}")).cookie(&owner).send().await;
        r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(r.json()["errors"][0]["field"], "name", "{}", r.text());
        let r = app
            .post(&format!("{base}/db-users"))
            .cookie(&owner)
            .json(json!({"username": "sneaky", "privileges": "read", "database": system}))
            .send()
            .await;
        r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(r.json()["errors"][0]["field"], "database", "{}", r.text());
    }
    // template1 is still there to make databases from.
    let r = app.post(&format!("{base}/databases")).cookie(&owner).json(json!({"name": "after"})).send().await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());

    for i in 0..3 {
        let (statuses, refused) =
            race(&app, &owner, &format!("{base}/databases"), json!({"name": format!("race{i}")})).await;
        assert_eq!(statuses, [201, 409], "{}", refused.text());
        refused.assert_problem(StatusCode::CONFLICT, "database_exists");

        let user = json!({"username": format!("racer{i}"), "privileges": "readwrite"});
        let (statuses, refused) = race(&app, &owner, &format!("{base}/db-users"), user).await;
        assert_eq!(statuses, [201, 409], "{}", refused.text());
        refused.assert_problem(StatusCode::CONFLICT, "db_user_exists");
    }
    let users = app.get(&format!("{base}/db-users")).cookie(&owner).send().await.json();
    assert_eq!(users["items"].as_array().unwrap().len(), 3, "{users}");
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413_and_one_of_another_type_a_415() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let limit = berth::http::extract::MAX_JSON_BODY;

    let huge = format!("{{\"name\": \"{}\"}}", "a".repeat(limit));
    let r = app.post("/api/v1/orgs").cookie(&owner).raw("application/json", huge).send().await;
    r.assert_problem(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    let r = app.post("/api/v1/orgs").cookie(&owner).raw("text/plain", r#"{"name": "Acme"}"#).send().await;
    r.assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");

    let r = app.post("/api/v1/orgs").cookie(&owner).raw("application/json", r#"{"name": "#).send().await;
    r.assert_problem(StatusCode::BAD_REQUEST, "bad_request");

    // Nothing was made of any of them.
    let r = app.get("/api/v1/orgs").cookie(&owner).send().await;
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 1, "{}", r.text());
}
