use std::sync::Arc;

use axum::http::StatusCode;
use berth::build_router;
use berth::config::AuthConfig;
use serde_json::json;

use crate::helpers::{OWNER_EMAIL, OWNER_PASSWORD, TestApp, TestResponse, test_auth_config};

/// The same app (and database) answering under another configuration.
fn reconfigured(app: TestApp, auth: AuthConfig) -> TestApp {
    let mut state = app.state.clone();
    state.auth = Arc::new(auth);
    TestApp { router: build_router(state.clone()), state, ..app }
}

#[track_caller]
fn assert_hardened(r: &TestResponse) {
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"), "{:?}", r.headers);
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{:?}", r.headers);
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
}

#[tokio::test]
async fn every_api_answer_carries_a_strict_policy_and_no_hsts_without_tls() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let answers = [
        app.get("/api/status").send().await,
        app.get("/api/auth/check").send().await,
        app.get(&format!("/api/v1/orgs/{}", app.owner_org)).cookie(&owner).send().await,
        app.get("/no/such/route").send().await,
        app.post("/api/auth/login").json(json!({"login": 1})).send().await,
    ];
    let statuses: Vec<u16> = answers.iter().map(|r| r.status.as_u16()).collect();
    assert_eq!(statuses, [200, 401, 200, 404, 422]);
    for r in &answers {
        assert_hardened(r);
        assert_eq!(r.header("content-security-policy"), Some("default-src 'none'; frame-ancestors 'none'"));
        assert_eq!(r.header("strict-transport-security"), None, "plain HTTP: no HSTS");
    }
}

#[tokio::test]
async fn the_swagger_ui_gets_a_policy_that_admits_its_own_files_only() {
    let app = TestApp::spawn().await;
    let page = app.get("/api/swagger/").send().await;
    assert_eq!(page.status, StatusCode::OK);
    assert_hardened(&page);
    let csp = page.header("content-security-policy").unwrap().to_owned();
    let directive = |name: &str| {
        csp.split(';').map(str::trim).find(|d| d.starts_with(&format!("{name} "))).map(str::to_owned)
    };
    assert_eq!(directive("default-src").as_deref(), Some("default-src 'none'"));
    assert_eq!(directive("script-src").as_deref(), Some("script-src 'self'"));
    let style_src = directive("style-src").unwrap();
    assert!(style_src.starts_with("style-src 'self'"), "{csp}");
    assert_eq!(directive("connect-src").as_deref(), Some("connect-src 'self'"), "it fetches the document");
    assert!(!csp.contains("unsafe"), "{csp}");

    // What the policy must then admit: the page has no inline script or style, and every file it
    // names is served, under the same policy.
    let html = page.text();
    let tags: Vec<&str> = html.split('<').skip(1).collect();
    let scripts: Vec<&&str> = tags.iter().filter(|t| t.starts_with("script")).collect();
    assert!(scripts.len() >= 2, "{html}");
    for t in &scripts {
        let (open, inner) = t.split_once('>').unwrap();
        assert!(open.contains("src=") && inner.trim().is_empty(), "inline script: <{t}");
    }
    assert!(!tags.iter().any(|t| t.starts_with("style")), "an inline <style>: {html}");
    assert!(!html.contains(" style="), "an inline style attribute: {html}");
    for file in [
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
        "swagger-initializer.js",
        "swagger-ui.css",
    ] {
        assert!(html.contains(file), "{file} not in {html}");
        let r = app.get(&format!("/api/swagger/{file}")).send().await;
        assert_eq!(r.status, StatusCode::OK, "{file}");
        assert_eq!(r.header("content-security-policy"), Some(csp.as_str()), "{file}");
    }
    let init = app.get("/api/swagger/swagger-initializer.js").send().await.text();
    assert!(init.contains("/api/openapi.json"), "the document it loads is on this origin: {init}");

    // The scripts render one inline <style> (the logo's): the policy admits exactly its hash.
    let preset = app.get("/api/swagger/swagger-ui-standalone-preset.js").send().await.text();
    let marker = r#"createElement("style",null,""#;
    let styles: Vec<&str> =
        preset.split(marker).skip(1).map(|rest| rest.split_once('"').expect("a string literal").0).collect();
    assert!(!styles.is_empty(), "the logo's <style> is gone: update SWAGGER_CSP");
    use base64::Engine;
    use sha2::Digest;
    let hashes: Vec<String> = styles
        .iter()
        .map(|s| {
            format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(s)))
        })
        .collect();
    let mut allowed: Vec<&str> = style_src.split(' ').filter(|t| t.starts_with("'sha256-")).collect();
    allowed.sort_unstable();
    let mut wanted: Vec<&str> = hashes.iter().map(String::as_str).collect();
    wanted.sort_unstable();
    wanted.dedup();
    assert_eq!(allowed, wanted, "style-src must admit the inline styles the UI renders, and only those");
}

#[tokio::test]
async fn hsts_only_when_serving_tls() {
    let app = reconfigured(TestApp::spawn().await, AuthConfig { serves_tls: true, ..test_auth_config() });
    for path in ["/api/status", "/api/swagger/", "/no/such/route"] {
        let r = app.get(path).send().await;
        assert_hardened(&r);
        assert_eq!(r.header("strict-transport-security"), Some("max-age=31536000"), "{path}");
    }
}

fn cookie_names(r: &TestResponse) -> Vec<String> {
    r.set_cookies().iter().filter_map(|c| c.split('=').next()).map(str::to_owned).collect()
}

async fn login_from_the_page(app: &TestApp) -> TestResponse {
    app.post("/api/auth/login")
        .header("origin", "http://berth.test")
        .json(json!({"login": OWNER_EMAIL, "password": OWNER_PASSWORD}))
        .send()
        .await
}

#[tokio::test]
async fn a_secure_session_cookie_is_host_prefixed_and_works_under_that_name() {
    let app = TestApp::spawn().await;
    let r = login_from_the_page(&app).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(cookie_names(&r), ["__Host-berth_session"]);
    let set = r.set_cookies()[0].to_ascii_lowercase();
    assert!(set.contains("; secure") && set.contains("; path=/") && !set.contains("domain="), "{set}");
    let cookie = r.session_cookie().unwrap();
    assert_eq!(app.get("/api/auth/check").cookie(&cookie).send().await.status, StatusCode::OK);
    // The CSRF guard knows the cookie by its prefixed name.
    app.post("/api/v1/orgs")
        .cookie(&cookie)
        .header("origin", "https://evil.example")
        .json(json!({"name": "x"}))
        .send()
        .await
        .assert_problem(StatusCode::FORBIDDEN, "cross_site_request");
    // The name without the prefix is nobody's session.
    let unprefixed = cookie.trim_start_matches("__Host-");
    assert_eq!(app.get("/api/auth/check").cookie(unprefixed).send().await.status, StatusCode::UNAUTHORIZED);

    let plain = reconfigured(app, AuthConfig { cookie_secure: false, ..test_auth_config() });
    let r = login_from_the_page(&plain).await;
    assert_eq!(cookie_names(&r), ["berth_session"], "no __Host- without Secure, which browsers would refuse");
    assert!(!r.set_cookies()[0].to_ascii_lowercase().contains("secure"));
}

#[tokio::test]
async fn health_tells_anonymous_callers_no_versions() {
    let app = TestApp::spawn().await.with_workers(1).await;
    let r = app.get("/api/health").send().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let health = r.json();
    assert_eq!(health["status"], "ok");
    assert!(health.get("version").is_none(), "{health}");
    assert!(health["database"].get("server_version").is_none(), "{health}");
    assert!(!r.text().contains(env!("CARGO_PKG_VERSION")), "{health}");

    let owner = app.login_owner().await;
    let status = app.get("/api/v1/system/status").cookie(&owner).send().await.json();
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert!(status["database"]["server_version"].is_string(), "{status}");
}
