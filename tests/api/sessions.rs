use axum::http::StatusCode;
use serde_json::json;
use time::Duration;

use crate::client::Fields;
use crate::helpers::{OWNER_EMAIL, OWNER_PASSWORD, TestApp};

#[tokio::test]
async fn an_idle_session_ends_after_the_idle_timeout_an_active_one_does_not() {
    let app = TestApp::spawn().await;
    let cookie = app.login_owner().await;
    for _ in 0..4 {
        app.clock.advance(Duration::minutes(29));
        assert_eq!(app.get("/api/auth/check").cookie(&cookie).send().await.status, StatusCode::OK);
    }
    app.clock.advance(Duration::minutes(31));
    let r = app.get("/api/auth/check").cookie(&cookie).send().await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // The answer also tells the browser to drop the dead cookie.
    assert!(
        r.set_cookies().iter().any(|c| c.starts_with("__Host-berth_session=;") && c.contains("Max-Age=0")),
        "{:?}",
        r.set_cookies()
    );
    // A live session's answers set no cookie: nothing about it changed.
    let live = app.login_owner().await;
    let r = app.get("/api/auth/check").cookie(&live).send().await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.set_cookies().is_empty(), "{:?}", r.set_cookies());
}

#[tokio::test]
async fn a_session_ends_after_the_absolute_timeout_however_active() {
    let app = TestApp::spawn().await;
    let cookie = app.login_owner().await;
    // Active every 20 minutes for 11 h 40 min: still signed in.
    for _ in 0..35 {
        app.clock.advance(Duration::minutes(20));
        assert_eq!(app.get("/api/auth/check").cookie(&cookie).send().await.status, StatusCode::OK);
    }
    app.clock.advance(Duration::minutes(20) + Duration::seconds(1));
    assert_eq!(app.get("/api/auth/check").cookie(&cookie).send().await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn two_instances_share_sessions_and_logout_on_one_kills_it_on_the_other() {
    let a = TestApp::spawn().await;
    let b = TestApp::on(&a.db_options, a.clock.clone()).await;
    let cookie = a.login_owner().await;
    assert_eq!(b.get("/api/auth/check").cookie(&cookie).send().await.status, StatusCode::OK);
    assert_eq!(a.post("/api/auth/logout").cookie(&cookie).send().await.status, StatusCode::NO_CONTENT);
    assert_eq!(b.get("/api/auth/check").cookie(&cookie).send().await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn changing_the_password_ends_the_other_sessions_and_keeps_this_one() {
    let app = TestApp::spawn().await;
    let other_instance = TestApp::on(&app.db_options, app.clock.clone()).await;
    let here = app.login_owner().await;
    let elsewhere = other_instance.login_owner().await;
    let new_password = "a-brand-new-password-42";

    let wrong = app
        .post("/api/v1/users/me/password")
        .cookie(&here)
        .json(json!({"current_password": "not-my-password", "new_password": new_password}))
        .send()
        .await;
    wrong.assert_problem(StatusCode::FORBIDDEN, "wrong_current_password");
    let short = app
        .post("/api/v1/users/me/password")
        .cookie(&here)
        .json(json!({"current_password": OWNER_PASSWORD, "new_password": "short"}))
        .send()
        .await;
    short.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(short.json()["errors"][0]["field"], "new_password");

    let r = app
        .post("/api/v1/users/me/password")
        .cookie(&here)
        .json(json!({"current_password": OWNER_PASSWORD, "new_password": new_password}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let renewed = r.session_cookie().expect("this session continues under a new id");
    assert_ne!(renewed, here);
    assert_eq!(app.get("/api/auth/check").cookie(&renewed).send().await.status, StatusCode::OK);
    assert_eq!(app.get("/api/auth/check").cookie(&here).send().await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        other_instance.get("/api/auth/check").cookie(&elsewhere).send().await.status,
        StatusCode::UNAUTHORIZED
    );
    let old = app
        .post("/api/auth/login")
        .json(json!({"login": crate::helpers::OWNER_EMAIL, "password": OWNER_PASSWORD}))
        .send()
        .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    app.login(crate::helpers::OWNER_EMAIL, new_password).await;
}

/// Checks that arrive together are read by one statement: each must still get its own user with
/// their own organizations and roles, a session ended before the check must be refused, and many
/// checks with one cookie must all pass.
#[tokio::test]
async fn checks_read_together_each_get_their_own_session() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let r = app.post("/api/v1/orgs").cookie(&owner).json(json!({"name": "Second"})).send().await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let (_, alice) = app.active_member(&owner, app.owner_org, "alice@example.com", "member").await;
    let (_, bob) = app.active_member(&owner, app.owner_org, "bob@example.com", "viewer").await;
    let ended = app.login_owner().await;
    assert_eq!(app.post("/api/auth/logout").cookie(&ended).send().await.status, StatusCode::NO_CONTENT);

    // (cookie, login and roles it must answer with; none for the ended session)
    let owner_roles = ["owner", "owner"];
    let expected = [
        (&owner, Some(OWNER_EMAIL), &owner_roles[..]),
        (&alice, Some("alice@example.com"), &["member"][..]),
        (&bob, Some("bob@example.com"), &["viewer"][..]),
        (&ended, None, &[][..]),
    ];
    let app = &app;
    let calls = (0..48).map(|i| {
        let (cookie, login, roles) = expected[i % expected.len()];
        async move { (login, roles, app.get("/api/auth/check").cookie(cookie).send().await) }
    });
    for (login, roles, r) in futures::future::join_all(calls).await {
        let Some(login) = login else {
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
            continue;
        };
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let body = r.json();
        assert_eq!(body["login"], login);
        let got: Vec<&str> =
            body["organizations"].as_array().unwrap().iter().map(|o| o.str_at("/role")).collect();
        assert_eq!(got, roles, "{body}");
    }
}
