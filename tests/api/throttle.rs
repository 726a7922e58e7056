//! Throttles that hold however requests arrive: at once, from one address across accounts, or
//! as a flood of made-up tokens.

use axum::http::StatusCode;
use berth::config::AuthConfig;
use futures::future::join_all;
use serde_json::json;
use time::Duration;

use crate::helpers::{
    OWNER_EMAIL, OWNER_PASSWORD, TestApp, TestResponse, basic, create_credential, test_auth_config, untagged,
};

const LOGIN: &str = "/api/auth/login";
const TOKEN: &str = "/api/auth/oauth2/token";
const CC: [(&str, &str); 1] = [("grant_type", "client_credentials")];

fn statuses(rs: &[TestResponse]) -> (usize, usize) {
    let unauthorized = rs.iter().filter(|r| r.status == StatusCode::UNAUTHORIZED).count();
    let throttled = rs.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS).count();
    (unauthorized, throttled)
}

#[track_caller]
fn assert_retry_after(r: &TestResponse, most: i64) {
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    let secs: i64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=most).contains(&secs), "Retry-After {secs}");
}

async fn wrong_login(app: &TestApp, login: &str, address: Option<&str>) -> TestResponse {
    app.post(LOGIN).peer(address).json(json!({"login": login, "password": "guess-guess-guess"})).send().await
}

async fn owner_login(app: &TestApp, address: Option<&str>) -> TestResponse {
    app.post(LOGIN).peer(address).json(json!({"login": OWNER_EMAIL, "password": OWNER_PASSWORD})).send().await
}

#[tokio::test]
async fn sixty_wrong_passwords_at_once_get_ten_hashes_then_even_the_right_one_waits() {
    let app = TestApp::spawn().await;
    let all = join_all((0..60).map(|_| wrong_login(&app, OWNER_EMAIL, None))).await;
    // A 401 is an answer from the hash; a 429 was refused before it.
    assert_eq!(statuses(&all), (10, 50), "{:?}", all.iter().map(|r| r.status).collect::<Vec<_>>());
    for r in all.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS) {
        r.assert_problem(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
        assert_retry_after(r, 900);
    }
    let counted: i32 =
        sqlx::query_scalar("select cardinality(attempts) from auth_attempts where subject = $1")
            .bind(format!("login:{OWNER_EMAIL}"))
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(counted, 10);
    let right = app.post(LOGIN).json(json!({"login": OWNER_EMAIL, "password": OWNER_PASSWORD})).send().await;
    assert_retry_after(&right, 900);
    app.clock.advance(Duration::minutes(15) + Duration::seconds(1));
    app.login_owner().await;
}

#[tokio::test]
async fn right_passwords_at_once_each_give_their_place_back() {
    let app = TestApp::spawn().await;
    // Fewer than the limit at once, three times over: successes do not fill the window.
    for _ in 0..3 {
        let all = join_all((0..8).map(|_| owner_login(&app, None))).await;
        assert!(
            all.iter().all(|r| r.status == StatusCode::OK),
            "{:?}",
            all.iter().map(|r| r.status).collect::<Vec<_>>()
        );
    }
    let counted: Option<i64> = sqlx::query_scalar("select sum(cardinality(attempts)) from auth_attempts")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(counted.unwrap_or(0), 0, "nothing counted after successes");
}

fn spray_config() -> AuthConfig {
    AuthConfig { address_max_failures: 5, ..test_auth_config() }
}

#[tokio::test]
async fn spraying_accounts_from_one_address_is_throttled_there_only() {
    let app = TestApp::spawn_with(spray_config()).await;
    for i in 0..5 {
        let r = wrong_login(&app, &format!("user{i}@example.com"), Some("203.0.113.7")).await;
        r.assert_problem(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    // A sixth account, even with its right password, from that address: refused unhashed.
    let right = owner_login(&app, Some("203.0.113.7")).await;
    right.assert_problem(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    assert_retry_after(&right, 900);
    // Another address is not affected.
    let elsewhere = owner_login(&app, Some("198.51.100.1")).await;
    assert_eq!(elsewhere.status, StatusCode::OK, "{}", elsewhere.text());
    // Requests without an address share one bucket: they do not escape the limit.
    for i in 0..5 {
        assert_eq!(
            wrong_login(&app, &format!("anon{i}@example.com"), None).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_retry_after(&wrong_login(&app, "anon9@example.com", None).await, 900);
    app.clock.advance(Duration::minutes(15) + Duration::seconds(1));
    assert_eq!(
        wrong_login(&app, "user9@example.com", Some("203.0.113.7")).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn right_secret(app: &TestApp, id: &str, secret: &str, address: Option<&str>) -> TestResponse {
    app.post(TOKEN).peer(address).header("authorization", &basic(id, secret)).form(&CC).send().await
}

async fn wrong_secret(app: &TestApp, client_id: &str, address: Option<&str>) -> TestResponse {
    app.post(TOKEN)
        .peer(address)
        .header("authorization", &basic(client_id, "brs_guess"))
        .form(&CC)
        .send()
        .await
}

#[tokio::test]
async fn wrong_secrets_at_once_are_counted_before_they_are_answered() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let (id, secret) = create_credential(&app, &owner, app.owner_org, &["org:read"]).await;
    let all = join_all((0..150).map(|_| wrong_secret(&app, &id, None))).await;
    assert_eq!(statuses(&all), (100, 50), "{:?}", all.iter().map(|r| r.status).collect::<Vec<_>>());
    for r in all.iter().filter(|r| r.status == StatusCode::TOO_MANY_REQUESTS) {
        assert_eq!(r.json()["error"], "temporarily_unavailable");
        assert_retry_after(r, 3600);
    }
    let right = right_secret(&app, &id, &secret, None).await;
    assert_retry_after(&right, 3600);
    app.clock.advance(Duration::hours(1) + Duration::seconds(1));
    app.token(&id, &secret).await;
}

#[tokio::test]
async fn spraying_clients_from_one_address_is_throttled_there_only() {
    let app = TestApp::spawn_with(spray_config()).await;
    let owner = app.login_owner().await;
    let (id, secret) = create_credential(&app, &owner, app.owner_org, &["org:read"]).await;
    // Made-up client ids have no secret to guess, and are not counted.
    for i in 0..10 {
        let r = wrong_secret(&app, &format!("brc_made_up_{i}"), Some("203.0.113.7")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    }
    // Unknown ones of the form issued before the tags are looked up, and counted.
    for _ in 0..5 {
        let r = wrong_secret(&app, &untagged("brc_", 16), Some("203.0.113.7")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
    }
    let right = right_secret(&app, &id, &secret, Some("203.0.113.7")).await;
    assert_retry_after(&right, 900);
    assert_eq!(right.json()["error"], "temporarily_unavailable");
    // Logins and client secrets count against the same address.
    let login = owner_login(&app, Some("203.0.113.7")).await;
    login.assert_problem(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    let elsewhere = right_secret(&app, &id, &secret, Some("198.51.100.1")).await;
    assert_eq!(elsewhere.status, StatusCode::OK, "{}", elsewhere.text());
}

async fn audit_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("select count(*) from audit_events").fetch_one(&app.db).await.unwrap()
}

#[tokio::test]
async fn a_flood_of_made_up_tokens_and_clients_is_audited_once_per_minute() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let (id, secret) = create_credential(&app, &owner, app.owner_org, &["org:read"]).await;
    let good = app.token(&id, &secret).await.access_token;
    let before = audit_rows(&app).await;

    let org = format!("/api/v1/orgs/{}", app.owner_org);
    let garbage = (0..300).map(|i| {
        let org = org.clone();
        let app = &app;
        async move { app.get(&org).bearer(&format!("brt_made_up_{i}")).send().await.status }
    });
    let unknown = (0..60).map(|_| async { wrong_secret(&app, "brc_nobody", None).await.status });
    let beside = async { app.get(&org).bearer(&good).send().await };
    let (garbage, unknown, beside) = tokio::join!(join_all(garbage), join_all(unknown), beside);
    assert!(garbage.iter().all(|s| *s == StatusCode::UNAUTHORIZED));
    assert!(unknown.iter().all(|s| *s == StatusCode::UNAUTHORIZED));
    assert_eq!(
        beside.status,
        StatusCode::OK,
        "the good client is served during the flood: {}",
        beside.text()
    );
    assert_eq!(audit_rows(&app).await, before, "nothing appended per refused request");

    // Once the minute is over: one event per kind of refusal, with its count.
    assert_eq!(app.flush_refusals().await, 2);
    let events: Vec<(Option<String>, String)> =
        sqlx::query_as("select actor, details from audit_events where action = 'token.refused' order by id")
            .fetch_all(&app.db)
            .await
            .unwrap();
    let counts: Vec<(Option<String>, i64)> = events
        .iter()
        .map(|(actor, d)| {
            (actor.clone(), serde_json::from_str::<serde_json::Value>(d).unwrap()["count"].as_i64().unwrap())
        })
        .collect();
    assert!(counts.contains(&(None, 300)), "{counts:?}");
    assert!(counts.contains(&(Some("brc_nobody".into()), 60)), "{counts:?}");
    assert_eq!(app.flush_refusals().await, 0, "each is written once");
}

#[tokio::test]
async fn made_up_tokens_and_clients_are_refused_without_the_database() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let (id, secret) = create_credential(&app, &owner, app.owner_org, &["org:read"]).await;
    let good = app.token(&id, &secret).await;
    let access = &good.access_token;
    let refresh = &good.refresh_token;
    let org = format!("/api/v1/orgs/{}", app.owner_org);
    let mut forged = access.to_owned();
    forged.replace_range(10..11, if &access[10..11] == "A" { "B" } else { "A" });
    let refused = app.get(&org).bearer("brt_made_up").send().await;

    // From here on, any use of the pool fails.
    app.db.close().await;
    for tok in ["brt_made_up", forged.as_str(), refresh, &format!("{access}x")] {
        let r = app.get(&org).bearer(tok).send().await;
        r.assert_problem(StatusCode::UNAUTHORIZED, "invalid_token");
        assert_eq!(r.body, refused.body, "{tok}: as any invalid token");
    }
    for client in ["brc_made_up", &secret, &id[..id.len() - 1]] {
        let r = wrong_secret(&app, client, Some("203.0.113.7")).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text());
        assert_eq!(r.json()["error"], "invalid_client");
    }
    let r = app.get(&org).bearer(access).send().await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "a genuine token is looked up: {}", r.text());
}

/// A refused credential waits for its 401 (only its own connection does); a request without any
/// credential, or with a good one, is answered at once.
#[tokio::test]
async fn refused_credentials_are_answered_late_and_others_at_once() {
    let delay = std::time::Duration::from_secs(3);
    let app = TestApp::spawn_with(AuthConfig { refusal_delay: delay, ..test_auth_config() }).await;
    let owner = app.login_owner().await;
    let (id, secret) = create_credential(&app, &owner, app.owner_org, &["org:read"]).await;
    let token = app.token(&id, &secret).await.access_token;
    let org = format!("/api/v1/orgs/{}", app.owner_org);

    let started = std::time::Instant::now();
    let (made_up, wrong_secret, none, good) = tokio::join!(
        app.get(&org).bearer("brt_made-up").send(),
        app.post(TOKEN).header("authorization", &basic(&id, "brs_wrong")).form(&CC).send(),
        app.get(&org).send(),
        app.get(&org).bearer(&token).send(),
    );
    assert_eq!(made_up.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_secret.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(good.status, StatusCode::OK);
    // The four went at once: the two refusals took the delay, together, not one after the other.
    let elapsed = started.elapsed();
    assert!(elapsed >= delay, "refusals answered after {elapsed:?}");
    assert!(elapsed < delay * 2, "the refusals waited one after the other: {elapsed:?}");

    // Alone, the uncredentialed and the good request do not wait.
    let started = std::time::Instant::now();
    assert_eq!(app.get(&org).send().await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get(&org).bearer(&token).send().await.status, StatusCode::OK);
    assert!(started.elapsed() < delay, "{:?}", started.elapsed());
}
