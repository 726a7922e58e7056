use axum::http::StatusCode;
use serde_json::json;
use time::Duration;

use crate::helpers::{OWNER_EMAIL, OWNER_PASSWORD, TestApp};

#[tokio::test]
async fn login_returns_the_user_and_a_hardened_session_cookie() {
    let app = TestApp::spawn().await;
    let r = app
        .post("/api/auth/login")
        .json(json!({"login": " Owner@Example.com ", "password": OWNER_PASSWORD}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let user = r.json();
    assert_eq!(user["login"], OWNER_EMAIL);
    assert_eq!(user["origin"], "local");
    assert!(user["createdAt"]["seconds"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(user["organizations"][0]["role"], "owner");
    assert_eq!(user["organizations"][0]["id"], app.owner_org.to_string());

    let cookies = r.set_cookies();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let attrs: Vec<String> = cookies[0].split(';').map(|a| a.trim().to_ascii_lowercase()).collect();
    assert!(
        attrs[0].starts_with("__host-berth_session="),
        "the Secure cookie is __Host- prefixed: {cookies:?}"
    );
    for want in ["httponly", "secure", "samesite=lax", "path=/"] {
        assert!(attrs.iter().any(|a| a == want), "{want} missing from {cookies:?}");
    }
    assert!(!attrs.iter().any(|a| a.starts_with("domain")), "no Domain: {cookies:?}");
    assert_eq!(r.header("cache-control"), Some("no-store"));

    let cookie = r.session_cookie().unwrap();
    let check = app.get("/api/auth/check").cookie(&cookie).send().await;
    assert_eq!(check.status, StatusCode::OK);
    assert_eq!(check.json()["authMethod"], "session");
    assert_eq!(check.json()["login"], OWNER_EMAIL);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_answer() {
    let app = TestApp::spawn().await;
    let wrong = app
        .post("/api/auth/login")
        .json(json!({"login": OWNER_EMAIL, "password": "not-the-password"}))
        .send()
        .await;
    let unknown = app
        .post("/api/auth/login")
        .json(json!({"login": "nobody@example.com", "password": "not-the-password"}))
        .send()
        .await;
    wrong.assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(wrong.status, unknown.status);
    assert_eq!(wrong.body, unknown.body);
    assert!(wrong.set_cookies().is_empty() && unknown.set_cookies().is_empty());
    let sessions: i64 = sqlx::query_scalar("select count(*) from sessions").fetch_one(&app.db).await.unwrap();
    assert_eq!(sessions, 0);
}

#[tokio::test]
async fn check_without_credentials_is_401_with_a_challenge() {
    let app = TestApp::spawn().await;
    let r = app.get("/api/auth/check").send().await;
    r.assert_problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(r.header("www-authenticate"), Some(r#"Bearer realm="berth""#));
    let forged =
        app.get("/api/auth/check").cookie("__Host-berth_session=AAAAAAAAAAAAAAAAAAAAAA").send().await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn login_issues_a_new_session_id_and_kills_the_planted_one() {
    let app = TestApp::spawn().await;
    let first = app.login_owner().await;
    // Logging in again while presenting the first session (as a fixation attacker would have
    // planted it) must give a different id, and the old one must stop working.
    let r = app
        .post("/api/auth/login")
        .cookie(&first)
        .json(json!({"login": OWNER_EMAIL, "password": OWNER_PASSWORD}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let second = r.session_cookie().unwrap();
    assert_ne!(first, second);
    assert_eq!(app.get("/api/auth/check").cookie(&first).send().await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/api/auth/check").cookie(&second).send().await.status, StatusCode::OK);
}

#[tokio::test]
async fn logout_revokes_the_session_at_the_next_request() {
    let app = TestApp::spawn().await;
    let cookie = app.login_owner().await;
    let r = app.post("/api/auth/logout").cookie(&cookie).send().await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(
        r.set_cookies().iter().any(|c| c.starts_with("__Host-berth_session=;") || c.contains("Max-Age=0")),
        "{:?}",
        r.set_cookies()
    );
    assert_eq!(app.get("/api/auth/check").cookie(&cookie).send().await.status, StatusCode::UNAUTHORIZED);
    let rows: i64 = sqlx::query_scalar("select count(*) from sessions").fetch_one(&app.db).await.unwrap();
    assert_eq!(rows, 0, "the session row is gone");
}

#[tokio::test]
async fn sessions_are_stored_hashed() {
    let app = TestApp::spawn().await;
    let cookie = app.login_owner().await;
    let value = cookie.split_once('=').unwrap().1;
    let stored: Vec<Vec<u8>> =
        sqlx::query_scalar("select id_hash from sessions").fetch_all(&app.db).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].len(), 32, "a SHA-256");
    assert!(!String::from_utf8_lossy(&stored[0]).contains(value));
}

#[tokio::test]
async fn ten_failures_throttle_the_account_not_others_until_the_window_passes() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    app.active_member(&owner, app.owner_org, "other@example.com", "viewer").await;
    for _ in 0..10 {
        let r = app
            .post("/api/auth/login")
            .json(json!({"login": OWNER_EMAIL, "password": "guess-guess-guess"}))
            .send()
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = app
        .post("/api/auth/login")
        .json(json!({"login": OWNER_EMAIL, "password": OWNER_PASSWORD}))
        .send()
        .await;
    r.assert_problem(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    let retry: i64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "Retry-After {retry}");
    // The throttle is per account.
    app.login("other@example.com", &crate::helpers::member_password("other@example.com")).await;
    // An unknown login is throttled exactly like a known one.
    for _ in 0..10 {
        app.post("/api/auth/login")
            .json(json!({"login": "ghost@example.com", "password": "guess-guess-guess"}))
            .send()
            .await;
    }
    let ghost =
        app.post("/api/auth/login").json(json!({"login": "ghost@example.com", "password": "x"})).send().await;
    assert_eq!(ghost.status, StatusCode::TOO_MANY_REQUESTS);

    app.clock.advance(Duration::minutes(14));
    let still = app
        .post("/api/auth/login")
        .json(json!({"login": OWNER_EMAIL, "password": OWNER_PASSWORD}))
        .send()
        .await;
    assert_eq!(still.status, StatusCode::TOO_MANY_REQUESTS);
    app.clock.advance(Duration::minutes(1) + Duration::seconds(1));
    app.login_owner().await;
}

#[tokio::test]
async fn cross_site_cookie_requests_are_refused_bearerless_same_origin_allowed() {
    let app = TestApp::spawn().await;
    let cookie = app.login_owner().await;
    let org = app.owner_org;
    let body = json!({"email": "x@example.com", "role": "viewer"});
    let path = format!("/api/v1/orgs/{org}/members");

    let evil = app
        .post(&path)
        .cookie(&cookie)
        .header("origin", "https://evil.example")
        .json(body.clone())
        .send()
        .await;
    evil.assert_problem(StatusCode::FORBIDDEN, "cross_site_request");
    let fetch = app
        .post(&path)
        .cookie(&cookie)
        .header("sec-fetch-site", "cross-site")
        .json(body.clone())
        .send()
        .await;
    fetch.assert_problem(StatusCode::FORBIDDEN, "cross_site_request");
    let sibling =
        app.post(&path).cookie(&cookie).header("sec-fetch-site", "same-site").json(body.clone()).send().await;
    assert_eq!(sibling.status, StatusCode::FORBIDDEN);
    let members = app.get(&path).cookie(&cookie).send().await.json();
    assert_eq!(members["items"].as_array().unwrap().len(), 1, "nothing was added");

    let login = app
        .post("/api/auth/login")
        .header("origin", "https://evil.example")
        .json(json!({"login": OWNER_EMAIL, "password": OWNER_PASSWORD}))
        .send()
        .await;
    assert_eq!(login.status, StatusCode::FORBIDDEN, "login CSRF");

    let same = app
        .post(&path)
        .cookie(&cookie)
        .header("origin", "http://berth.test")
        .header("sec-fetch-site", "same-origin")
        .json(body)
        .send()
        .await;
    assert_eq!(same.status, StatusCode::ACCEPTED, "invited: {}", same.text());
    // Reads are never refused.
    let read = app.get(&path).cookie(&cookie).header("sec-fetch-site", "cross-site").send().await;
    assert_eq!(read.status, StatusCode::OK);
}

#[tokio::test]
async fn malformed_logins_are_problem_documents() {
    let app = TestApp::spawn().await;
    let unknown_field = app
        .post("/api/auth/login")
        .json(json!({"login": OWNER_EMAIL, "password": OWNER_PASSWORD, "remember": true}))
        .send()
        .await;
    unknown_field.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(unknown_field.json()["errors"][0]["field"], "remember");
    let missing = app.post("/api/auth/login").json(json!({"login": OWNER_EMAIL})).send().await;
    missing.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let syntax = app.post("/api/auth/login").raw("application/json", "{\"login\":").send().await;
    syntax.assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    let form = app.post("/api/auth/login").raw("text/plain", "login=x").send().await;
    form.assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let huge = app
        .post("/api/auth/login")
        .json(json!({"login": OWNER_EMAIL, "password": "x".repeat(1025)}))
        .send()
        .await;
    huge.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let failures: i64 =
        sqlx::query_scalar("select count(*) from auth_attempts").fetch_one(&app.db).await.unwrap();
    assert_eq!(failures, 0, "rejected requests are not counted as attempts");
}

#[tokio::test]
async fn status_health_and_unknown_routes() {
    let app = TestApp::spawn().await;
    let s = app.get("/api/status").send().await;
    assert_eq!(s.json(), json!({"alive": true}));
    let h = app.get("/api/health").send().await;
    assert_eq!(h.status, StatusCode::SERVICE_UNAVAILABLE, "no worker is alive yet");
    assert_eq!(h.json()["live_workers"], 0);
    let app = app.with_workers(1).await;
    let h = app.get("/api/health").send().await;
    assert_eq!(h.status, StatusCode::OK, "{}", h.text());
    assert_eq!(h.json()["live_workers"], 1);
    assert_eq!(h.json()["database"]["reachable"], true);
    assert_eq!(h.json()["database"]["migrations_applied"], h.json()["database"]["migrations_known"]);
    app.get("/api/nope").send().await.assert_problem(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn health_is_503_when_the_database_is_gone() {
    let app = TestApp::spawn().await;
    app.db.close().await;
    let h = app.get("/api/health").send().await;
    assert_eq!(h.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(h.json()["database"]["reachable"], false);
    assert_eq!(app.get("/api/status").send().await.status, StatusCode::OK, "liveness needs no database");
}
