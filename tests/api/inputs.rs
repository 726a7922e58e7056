//! Inputs PostgreSQL cannot store or Berth must refuse answer 4xx problems, never a 500.

use axum::http::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, TestResponse};
use crate::stores;

/// A 422 problem naming `field` as holding a NUL.
#[track_caller]
fn assert_nul_refused(r: &TestResponse, field: &str) {
    r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let errors = &r.json()["errors"];
    assert_eq!(errors[0]["field"], field, "{}", r.text());
    assert!(errors[0]["message"].as_str().unwrap().contains("NUL"), "{}", r.text());
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

    let mut body = stores::body("nul\u{0}store", 1);
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
