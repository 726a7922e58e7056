use axum::http::StatusCode;
use serde_json::json;

use crate::client::Fields;
use crate::helpers::{OWNER_EMAIL, TestApp, basic, create_credential};

#[tokio::test]
async fn the_trail_records_logins_credentials_tokens_and_members() {
    let app = TestApp::spawn().await;
    let org = app.owner_org;
    app.post("/api/auth/login")
        .json(json!({"login": OWNER_EMAIL, "password": "wrong-password-1"}))
        .send()
        .await;
    let owner = app.login_owner().await;
    let (id, _) = create_credential(&app, &owner, org, &["org:read"]).await;
    app.post("/api/auth/oauth2/token")
        .header("authorization", &basic(&id, "brs_wrong"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await;
    // The wrong secret's refusal is appended with its minute's.
    assert_eq!(app.flush_refusals().await, 1);
    app.post(&format!("/api/v1/orgs/{org}/members"))
        .cookie(&owner)
        .json(json!({"email": "n@example.com", "role": "viewer"}))
        .send()
        .await;
    app.delete(&format!("/api/v1/orgs/{org}/credentials/{id}")).cookie(&owner).send().await;

    let r = app
        .get(&format!("/api/v1/orgs/{org}/audit-events"))
        .cookie(&owner)
        .header("x-request-id", "req-123")
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let events = r.json()["items"].as_array().unwrap().clone();
    let actions: Vec<(String, String)> =
        events.iter().map(|e| (e.string_at("/action"), e.string_at("/outcome"))).collect();
    for want in [
        ("login", "failure"),
        ("login", "success"),
        ("credential.created", "success"),
        ("token.refused", "denied"),
        ("member.invited", "success"),
        ("credential.revoked", "success"),
    ] {
        assert!(actions.contains(&(want.0.into(), want.1.into())), "{want:?} missing from {actions:?}");
    }
    let created = events.iter().find(|e| e["action"] == "credential.created").unwrap();
    assert_eq!(created["actor"], OWNER_EMAIL);
    assert_eq!(created["target"], format!("credential:{id}"));
    assert!(created["request_id"].is_string(), "every event names its request");
    // Newest first.
    assert_eq!(events[0]["action"], "credential.revoked");

    let only = app
        .get(&format!("/api/v1/orgs/{org}/audit-events?action=credential."))
        .cookie(&owner)
        .send()
        .await
        .json();
    assert!(only["items"].as_array().unwrap().iter().all(|e| e.str_at("/action").starts_with("credential.")));
    assert_eq!(only["items"].as_array().unwrap().len(), 2);
    let bad = app.get(&format!("/api/v1/orgs/{org}/audit-events?limit=0")).cookie(&owner).send().await;
    bad.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

#[tokio::test]
async fn pages_follow_the_cursor_without_gaps_or_repeats() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    app.add_viewers(&owner, "m", 7).await;
    let mut seen = vec![];
    let mut cursor: Option<String> = None;
    loop {
        let q = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let page = app
            .get(&format!("/api/v1/orgs/{org}/audit-events?limit=3{q}"))
            .cookie(&owner)
            .send()
            .await
            .json();
        seen.extend(page["items"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let all: i64 = sqlx::query_scalar("select count(*) from audit_events where org_id = $1")
        .bind(org)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(seen.len() as i64, all);
    let mut sorted = seen.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(seen, sorted);
}

#[tokio::test]
async fn tampering_with_history_breaks_the_chain() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    app.add_viewers(&owner, "t", 3).await;
    let verify = format!("/api/v1/orgs/{org}/audit-events/verify");
    let ok = app.get(&verify).cookie(&owner).send().await.json();
    assert_eq!(ok["valid"], true, "{ok}");
    assert!(ok["events_checked"].as_i64().unwrap() >= 4);

    let victim: i64 = sqlx::query_scalar(
        "select id from audit_events where org_id = $1 and action = 'member.added' order by id limit 1",
    )
    .bind(org)
    .fetch_one(&app.db)
    .await
    .unwrap();
    sqlx::query("update audit_events set actor = 'someone-else@example.com' where id = $1")
        .bind(victim)
        .execute(&app.db)
        .await
        .unwrap();
    let broken = app.get(&verify).cookie(&owner).send().await.json();
    assert_eq!(broken["valid"], false);
    assert_eq!(broken["first_invalid_event_id"], victim);

    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    app.add_viewers(&owner, "d", 3).await;
    let ids: Vec<i64> = sqlx::query_scalar("select id from audit_events where org_id = $1 order by id")
        .bind(org)
        .fetch_all(&app.db)
        .await
        .unwrap();
    sqlx::query("delete from audit_events where id = $1").bind(ids[1]).execute(&app.db).await.unwrap();
    let broken =
        app.get(&format!("/api/v1/orgs/{org}/audit-events/verify")).cookie(&owner).send().await.json();
    assert_eq!(broken["valid"], false);
    assert_eq!(broken["first_invalid_event_id"], ids[2], "the event after a deleted one no longer links");
}

#[tokio::test]
async fn only_owners_and_admins_read_the_trail() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let (_, member) = app.active_member(&owner, org, "m@example.com", "member").await;
    let (_, admin) = app.active_member(&owner, org, "a@example.com", "admin").await;
    app.get(&format!("/api/v1/orgs/{org}/audit-events"))
        .cookie(&member)
        .send()
        .await
        .assert_problem(StatusCode::FORBIDDEN, "insufficient_role");
    assert_eq!(
        app.get(&format!("/api/v1/orgs/{org}/audit-events")).cookie(&admin).send().await.status,
        StatusCode::OK
    );
    let tok = app.bearer_token(&owner, org, &["org:read"]).await;
    app.get(&format!("/api/v1/orgs/{org}/audit-events"))
        .bearer(&tok)
        .send()
        .await
        .assert_problem(StatusCode::FORBIDDEN, "insufficient_scope");
}
