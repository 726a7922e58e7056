use axum::http::StatusCode;
use serde_json::json;
use time::Duration;

use berth::auth::token;

use crate::client::Fields;
use crate::helpers::{TestApp, TestResponse, basic, create_credential, untagged};

const TOKEN: &str = "/api/auth/oauth2/token";

#[track_caller]
fn assert_oauth_error(r: &TestResponse, status: StatusCode, error: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.json()["error"], error, "{}", r.text());
    assert!(r.json()["error_description"].is_string());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("pragma"), Some("no-cache"));
    if status == StatusCode::UNAUTHORIZED {
        assert_eq!(r.header("www-authenticate"), Some(r#"Basic realm="berth""#));
    }
}

#[tokio::test]
async fn a_credential_is_shown_once_and_listed_without_its_secret() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let (id, secret) = create_credential(&app, &owner, org, &["stores:read", "org:read"]).await;
    assert!(id.starts_with("brc_") && secret.starts_with("brs_"));
    assert!(secret.len() >= 4 + 43, "256 bits");
    let list = app.get(&format!("/api/v1/orgs/{org}/credentials")).cookie(&owner).send().await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(!list.text().contains(&secret));
    let item = &list.json()["items"][0];
    assert_eq!(item["client_id"], id.as_str());
    assert_eq!(item["scopes"], json!(["org:read", "stores:read"]));
    assert_eq!(item["created_by_email"], "owner@example.com");
    assert!(item["last_used_at"].is_null() && item["revoked_at"].is_null());
    let stored: Vec<u8> =
        sqlx::query_scalar("select secret_hash from credentials").fetch_one(&app.db).await.unwrap();
    assert_eq!(stored.len(), 32);

    app.token(&id, &secret).await;
    let list = app.get(&format!("/api/v1/orgs/{org}/credentials")).cookie(&owner).send().await.json();
    assert!(list["items"][0]["last_used_at"].is_null(), "issuing is not using");
}

#[tokio::test]
async fn credential_input_is_validated() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let path = format!("/api/v1/orgs/{}/credentials", app.owner_org);
    let fmt = |d: time::OffsetDateTime| d.format(&time::format_description::well_known::Rfc3339).unwrap();
    let soon = fmt(app.clock_now() + Duration::days(1));
    for (body, field) in [
        (json!({"description": "x", "scopes": ["org:read"]}), "body"),
        (
            json!({"description": "x", "expires_at": fmt(app.clock_now() - Duration::days(1)), "scopes": ["org:read"]}),
            "expires_at",
        ),
        (
            json!({"description": "x", "expires_at": fmt(app.clock_now() + Duration::days(400)), "scopes": ["org:read"]}),
            "expires_at",
        ),
        (json!({"description": "x", "expires_at": soon, "scopes": []}), "scopes"),
        (json!({"description": "x", "expires_at": soon, "scopes": ["root"]}), "scopes[0]"),
        (json!({"description": "", "expires_at": soon, "scopes": ["org:read"]}), "description"),
        (json!({"description": "x", "expires_at": "tomorrow", "scopes": ["org:read"]}), "expires_at"),
    ] {
        let r = app.post(&path).cookie(&owner).json(body.clone()).send().await;
        r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(r.json()["errors"][0]["field"], field, "{body}: {}", r.text());
    }
    let n: i64 = sqlx::query_scalar("select count(*) from credentials").fetch_one(&app.db).await.unwrap();
    assert_eq!(n, 0);

    // A viewer cannot mint a credential beyond the viewer role.
    let (_, viewer) = app.active_member(&owner, app.owner_org, "v@example.com", "viewer").await;
    let r = app
        .post(&path)
        .cookie(&viewer)
        .json(json!({"description": "x", "expires_at": soon, "scopes": ["stores:write"]}))
        .send()
        .await;
    r.assert_problem(StatusCode::FORBIDDEN, "insufficient_role");
    // A token cannot mint credentials either.
    let tok = app.bearer_token(&owner, app.owner_org, &["org:admin", "org:read"]).await;
    let r = app
        .post(&path)
        .bearer(&tok)
        .json(json!({"description": "x", "expires_at": soon, "scopes": ["org:read"]}))
        .send()
        .await;
    r.assert_problem(StatusCode::FORBIDDEN, "session_required");
}

#[tokio::test]
async fn client_credentials_with_basic_encoded_or_not_and_with_body_authentication() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let (id, secret) = create_credential(&app, &owner, app.owner_org, &["org:read", "stores:read"]).await;

    // RFC 6749 §2.3.1: id and secret form-URL-encoded before base64 (Go's x/oauth2 does this).
    // Our ids and secrets are made of characters that encoding leaves alone, so to show that the
    // server really decodes, encode every byte (%62%72...): a compliant decoder must accept it.
    let encoded = |s: &str| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
    for auth in [basic(&encoded(&id), &encoded(&secret)), basic(&id, &secret)] {
        let r = app
            .post(TOKEN)
            .header("authorization", &auth)
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let t = r.json();
        assert_eq!(t["token_type"], "Bearer");
        assert_eq!(t["expires_in"], 3600);
        assert_eq!(t["scope"], "org:read stores:read");
        assert!(t.str_at("/access_token").starts_with("brt_"));
        assert!(t.str_at("/refresh_token").starts_with("brr_"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("pragma"), Some("no-cache"));
    }
    let r = app
        .post(TOKEN)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", "org:read"),
        ])
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["scope"], "org:read");
    let tok = r.string_at("/access_token");

    for scheme in ["Bearer", "bearer", "BEARER"] {
        let c = app.get("/api/auth/check").header("authorization", &format!("{scheme} {tok}")).send().await;
        assert_eq!(c.status, StatusCode::OK, "{scheme}: {}", c.text());
        assert_eq!(c.json()["authMethod"], "bearer");
        assert_eq!(c.json()["scopes"], json!(["org:read"]));
    }
    let org = app.get(&format!("/api/v1/orgs/{}", app.owner_org)).bearer(&tok).send().await;
    assert_eq!(org.status, StatusCode::OK);
    let list =
        app.get(&format!("/api/v1/orgs/{}/credentials", app.owner_org)).cookie(&owner).send().await.json();
    assert!(list["items"][0]["last_used_at"].is_string(), "using a token marks its credential used");
}

#[tokio::test]
async fn token_endpoint_errors_follow_rfc_6749() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let (id, secret) = create_credential(&app, &owner, app.owner_org, &["org:read"]).await;
    let good = basic(&id, &secret);
    let cc = [("grant_type", "client_credentials")];

    let r = app.post(TOKEN).header("authorization", &good).form(&[("scope", "org:read")]).send().await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    let r = app.post(TOKEN).header("authorization", &good).form(&[("grant_type", "password")]).send().await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "unsupported_grant_type");
    let r = app.post(TOKEN).header("authorization", &basic(&id, "brs_wrong")).form(&cc).send().await;
    assert_oauth_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    let r = app.post(TOKEN).form(&[cc[0], ("client_id", &id), ("client_secret", "brs_wrong")]).send().await;
    assert_oauth_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    let r = app.post(TOKEN).header("authorization", &basic("brc_nobody", &secret)).form(&cc).send().await;
    assert_oauth_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    let r = app.post(TOKEN).form(&cc).send().await;
    assert_oauth_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    let r = app.post(TOKEN).header("authorization", "Basic !!!").form(&cc).send().await;
    assert_oauth_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    // The endpoint ignores cookies: a session is no client authentication.
    let r = app.post(TOKEN).cookie(&owner).form(&cc).send().await;
    assert_oauth_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    let r = app
        .post(TOKEN)
        .header("authorization", &good)
        .form(&[cc[0], ("client_secret", &secret)])
        .send()
        .await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    let r = app.post(TOKEN).header("authorization", &good).form(&[cc[0], cc[0]]).send().await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    let r = app
        .post(TOKEN)
        .header("authorization", &good)
        .json(json!({"grant_type": "client_credentials"}))
        .send()
        .await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    let r = app
        .post(TOKEN)
        .header("authorization", &good)
        .form(&[cc[0], ("scope", "org:read stores:write")])
        .send()
        .await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_scope");
    let r =
        app.post(TOKEN).header("authorization", &good).form(&[cc[0], ("scope", "everything")]).send().await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_scope");
    let r =
        app.post(TOKEN).header("authorization", &good).form(&[("grant_type", "refresh_token")]).send().await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    let r = app.refresh(&good, "brr_forged", None).await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");

    // Another client's refresh token is no grant of this client.
    let (id2, secret2) = create_credential(&app, &owner, app.owner_org, &["org:read"]).await;
    let other = app.token(&id2, &secret2).await;
    let r = app.refresh(&good, &other.refresh_token, None).await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");

    // A credential whose creator left the organization is no longer authorized.
    let (uid, member) = app.active_member(&owner, app.owner_org, "leaver@example.com", "member").await;
    let (id3, secret3) = create_credential(&app, &member, app.owner_org, &["org:read"]).await;
    app.delete(&format!("/api/v1/orgs/{}/members/{uid}", app.owner_org)).cookie(&owner).send().await;
    let r = app.post(TOKEN).header("authorization", &basic(&id3, &secret3)).form(&cc).send().await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "unauthorized_client");
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_the_family() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let (id, secret) = create_credential(&app, &owner, app.owner_org, &["org:read", "stores:read"]).await;
    let auth = basic(&id, &secret);
    let first = app.token(&id, &secret).await;
    let refresh1 = first.refresh_token.clone();

    let r = app.refresh(&auth, &refresh1, Some("org:read")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let second = r.json();
    assert_eq!(second["scope"], "org:read", "a refresh may narrow the scope");
    let refresh2 = second.string_at("/refresh_token");
    assert_ne!(refresh1, refresh2);
    let access2 = second.string_at("/access_token");
    assert_eq!(app.bearer_status(&access2).await, StatusCode::OK);
    // A refresh cannot widen the grant beyond what it was.
    let r = app.refresh(&auth, &refresh2, Some("org:read stores:read")).await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_scope");

    // refresh1 again: someone kept a copy. The whole family dies, the legitimate holder's too.
    let r = app.refresh(&auth, &refresh1, None).await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(app.bearer_status(&access2).await, StatusCode::UNAUTHORIZED);
    let r = app.refresh(&auth, &refresh2, None).await;
    assert_oauth_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    // Another grant of the same credential is untouched.
    let access1 = &first.access_token;
    assert_eq!(app.bearer_status(access1).await, StatusCode::UNAUTHORIZED, "same family");
    let fresh = app.token(&id, &secret).await;
    assert_eq!(app.get("/api/auth/check").bearer(&fresh.access_token).send().await.status, StatusCode::OK);
}

#[tokio::test]
async fn tokens_expire_and_never_outlive_their_credential() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let (id, secret) = create_credential(&app, &owner, app.owner_org, &["org:read"]).await;
    let t = app.token(&id, &secret).await;
    let access = t.access_token.clone();
    app.clock.advance(Duration::minutes(59));
    assert_eq!(app.bearer_status(&access).await, StatusCode::OK);
    app.clock.advance(Duration::minutes(1));
    let r = app.get("/api/auth/check").bearer(&access).send().await;
    r.assert_problem(StatusCode::UNAUTHORIZED, "invalid_token");
    assert!(r.header("www-authenticate").unwrap().contains(r#"error="invalid_token""#));
    // The refresh token still gets a new access token within its own lifetime.
    let r = app.refresh(&basic(&id, &secret), &t.refresh_token, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // 30 minutes before the credential expires, a token lives 30 minutes, not an hour.
    app.clock.advance(Duration::days(30) - Duration::minutes(90));
    let late = app.token(&id, &secret).await;
    let expires_in = late.body["expires_in"].as_i64().unwrap();
    assert!((1790..=1800).contains(&expires_in), "{expires_in}");
    app.clock.advance(Duration::minutes(31));
    assert_eq!(
        app.get("/api/auth/check").bearer(&late.access_token).send().await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = app
        .post(TOKEN)
        .header("authorization", &basic(&id, &secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await;
    assert_oauth_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
}

#[tokio::test]
async fn revoking_a_credential_or_a_token_takes_effect_at_the_next_request() {
    let app = TestApp::spawn().await;
    let other_instance = TestApp::on(&app.db_options, app.clock.clone()).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let (id, secret) = create_credential(&app, &owner, org, &["org:read"]).await;
    let a = app.token(&id, &secret).await;
    let b = app.token(&id, &secret).await;
    let access_a = &a.access_token;
    let access_b = &b.access_token;

    // RFC 7009: revoking a refresh token revokes its grant; other grants live on.
    let r = app
        .post("/api/auth/oauth2/revoke")
        .header("authorization", &basic(&id, &secret))
        .form(&[("token", a.refresh_token.as_str()), ("token_type_hint", "refresh_token")])
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(other_instance.bearer_status(access_a).await, StatusCode::UNAUTHORIZED);
    assert_eq!(other_instance.bearer_status(access_b).await, StatusCode::OK);
    let unknown = app
        .post("/api/auth/oauth2/revoke")
        .header("authorization", &basic(&id, &secret))
        .form(&[("token", "brt_unknown")])
        .send()
        .await;
    assert_eq!(unknown.status, StatusCode::OK, "an unknown token is no error (RFC 7009 §2.2)");

    let r = app.delete(&format!("/api/v1/orgs/{org}/credentials/{id}")).cookie(&owner).send().await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(other_instance.bearer_status(access_b).await, StatusCode::UNAUTHORIZED);
    let r = app
        .post(TOKEN)
        .header("authorization", &basic(&id, &secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await;
    assert_oauth_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    let listed = app.get(&format!("/api/v1/orgs/{org}/credentials")).cookie(&owner).send().await.json();
    assert!(listed["items"][0]["revoked_at"].is_string());
    let again =
        app.delete(&format!("/api/v1/orgs/{org}/credentials/brc_nothing")).cookie(&owner).send().await;
    again.assert_problem(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn scopes_and_the_creators_role_both_limit_a_token() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let members = format!("/api/v1/orgs/{org}/members");
    let tok = app.bearer_token(&owner, org, &["stores:read", "org:read"]).await;
    let r = app
        .post(&members)
        .bearer(&tok)
        .json(json!({"email": "y@example.com", "role": "viewer"}))
        .send()
        .await;
    r.assert_problem(StatusCode::FORBIDDEN, "insufficient_scope");
    assert_eq!(
        r.header("www-authenticate"),
        Some(r#"Bearer realm="berth", error="insufficient_scope", scope="org:admin""#)
    );
    assert_eq!(app.get(&members).bearer(&tok).send().await.status, StatusCode::OK);

    // An admin's org:admin credential narrows when the admin is demoted, and dies when removed.
    let (admin_id, admin) = app.active_member(&owner, org, "admin@example.com", "admin").await;
    let atok = app.bearer_token(&admin, org, &["org:admin", "org:read"]).await;
    let r = app
        .post(&members)
        .bearer(&atok)
        .json(json!({"email": "z@example.com", "role": "viewer"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "invited: {}", r.text());
    app.patch(&format!("{members}/{admin_id}")).cookie(&owner).json(json!({"role": "viewer"})).send().await;
    let r = app
        .post(&members)
        .bearer(&atok)
        .json(json!({"email": "w@example.com", "role": "viewer"}))
        .send()
        .await;
    r.assert_problem(StatusCode::FORBIDDEN, "insufficient_scope");
    assert_eq!(app.get(&members).bearer(&atok).send().await.status, StatusCode::OK);
    app.delete(&format!("{members}/{admin_id}")).cookie(&owner).send().await;
    app.get(&members).bearer(&atok).send().await.assert_problem(StatusCode::UNAUTHORIZED, "invalid_token");

    // No credentials at all: a challenge; a token in the query string: refused.
    let r = app.get(&members).send().await;
    assert_eq!(r.header("www-authenticate"), Some(r#"Bearer realm="berth""#));
    let r = app.get(&format!("{members}?access_token={tok}")).send().await;
    r.assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    // Bearer requests are not subject to the cookie CSRF guard.
    let r = app
        .get(&format!("/api/v1/orgs/{org}"))
        .bearer(&tok)
        .header("origin", "https://elsewhere.example")
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn a_credential_of_one_org_cannot_see_or_touch_another() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let a = app.owner_org;
    let b = app.create_org(&owner, "B").await;
    // The same user owns both organizations; the credential is B's and acts in B only.
    let (id, secret) = create_credential(&app, &owner, b, &["org:read", "org:admin", "stores:read"]).await;
    let tok = app.token(&id, &secret).await.access_token;
    let orgs = app.get("/api/v1/orgs").bearer(&tok).send().await.json();
    assert_eq!(orgs["items"].as_array().unwrap().len(), 1);
    assert_eq!(orgs["items"][0]["id"], b.to_string());
    let nobody = uuid::Uuid::new_v4();
    for org in [a, nobody] {
        for r in [
            app.get(&format!("/api/v1/orgs/{org}")).bearer(&tok).send().await,
            app.get(&format!("/api/v1/orgs/{org}/members")).bearer(&tok).send().await,
            app.get(&format!("/api/v1/orgs/{org}/audit-events")).bearer(&tok).send().await,
            app.post(&format!("/api/v1/orgs/{org}/members"))
                .bearer(&tok)
                .json(json!({"email": "q@example.com", "role": "viewer"}))
                .send()
                .await,
        ] {
            r.assert_problem(StatusCode::NOT_FOUND, "not_found");
        }
    }
    let exists = app.get(&format!("/api/v1/orgs/{a}")).bearer(&tok).send().await;
    let missing = app.get(&format!("/api/v1/orgs/{nobody}")).bearer(&tok).send().await;
    assert_eq!(exists.body, missing.body, "nothing tells an existing org from a missing one");
}

#[tokio::test]
async fn repeated_wrong_secrets_are_throttled_per_client() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let (id, secret) = create_credential(&app, &owner, app.owner_org, &["org:read"]).await;
    let (id2, secret2) = create_credential(&app, &owner, app.owner_org, &["org:read"]).await;
    let cc = [("grant_type", "client_credentials")];
    for _ in 0..100 {
        let r = app.post(TOKEN).header("authorization", &basic(&id, "brs_guess")).form(&cc).send().await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = app.post(TOKEN).header("authorization", &basic(&id, &secret)).form(&cc).send().await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    app.token(&id2, &secret2).await;
    app.clock.advance(Duration::hours(1));
    app.token(&id, &secret).await;
}

#[tokio::test]
async fn metadata_and_scopes_are_published() {
    let app = TestApp::spawn().await;
    let m = app.get("/.well-known/oauth-authorization-server").send().await.json();
    assert_eq!(m["issuer"], "http://berth.test");
    assert_eq!(m["token_endpoint"], "http://berth.test/api/auth/oauth2/token");
    assert_eq!(m["revocation_endpoint"], "http://berth.test/api/auth/oauth2/revoke");
    assert_eq!(m["grant_types_supported"], json!(["client_credentials", "refresh_token"]));
    assert_eq!(
        m["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post"])
    );
    let s = app.get("/api/v1/scopes").send().await.json();
    let names: Vec<&str> = s["items"].as_array().unwrap().iter().map(|i| i.str_at("/name")).collect();
    for want in ["stores:read", "stores:write", "backups:read", "backups:write", "org:read", "org:admin"] {
        assert!(names.contains(&want), "{want}");
    }
    assert_eq!(m["scopes_supported"].as_array().unwrap().len(), names.len());
}

/// The `oauth2` crate as a real client, over a real socket.
#[tokio::test]
async fn the_oauth2_crate_obtains_and_uses_a_token() {
    use oauth2::basic::BasicClient;
    use oauth2::{AuthType, ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};

    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let (id, secret) = create_credential(&app, &owner, app.owner_org, &["org:read", "stores:read"]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app.router.clone();
    tokio::spawn(async move {
        axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
            .await
            .unwrap();
    });
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for auth_type in [AuthType::BasicAuth, AuthType::RequestBody] {
        let client = BasicClient::new(ClientId::new(id.clone()))
            .set_client_secret(ClientSecret::new(secret.clone()))
            .set_auth_type(auth_type)
            .set_token_uri(TokenUrl::new(format!("http://{addr}/api/auth/oauth2/token")).unwrap());
        let token = client
            .exchange_client_credentials()
            .add_scope(Scope::new("org:read".into()))
            .request_async(&http)
            .await
            .expect("client_credentials with the oauth2 crate");
        assert_eq!(token.expires_in(), Some(std::time::Duration::from_secs(3600)));
        assert_eq!(token.scopes().unwrap()[0].as_str(), "org:read");
        let check = http
            .get(format!("http://{addr}/api/auth/check"))
            .bearer_auth(token.access_token().secret())
            .send()
            .await
            .unwrap();
        assert_eq!(check.status(), reqwest::StatusCode::OK);
        let refreshed = client
            .exchange_refresh_token(token.refresh_token().unwrap())
            .request_async(&http)
            .await
            .expect("refresh_token with the oauth2 crate");
        assert_ne!(refreshed.access_token().secret(), token.access_token().secret());
    }
    let wrong = BasicClient::new(ClientId::new(id))
        .set_client_secret(ClientSecret::new("brs_wrong".into()))
        .set_token_uri(TokenUrl::new(format!("http://{addr}/api/auth/oauth2/token")).unwrap())
        .exchange_client_credentials()
        .request_async(&http)
        .await;
    match wrong {
        Err(oauth2::RequestTokenError::ServerResponse(e)) => {
            assert_eq!(*e.error(), oauth2::basic::BasicErrorResponseType::InvalidClient)
        }
        other => panic!("expected invalid_client, got {other:?}"),
    }
}

#[tokio::test]
async fn changing_a_password_revokes_the_users_credentials_in_every_org_and_no_one_elses() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let (_, admin) = app.active_member(&owner, org, "ci@example.com", "admin").await;
    let second = app.create_org(&admin, "Second").await;
    let mine = [
        create_credential(&app, &admin, org, &["org:read"]).await,
        create_credential(&app, &admin, second, &["org:read"]).await,
    ];
    let theirs = create_credential(&app, &owner, org, &["org:read"]).await;
    let mut access = vec![];
    for (id, secret) in mine.iter().chain([&theirs]) {
        access.push(app.token(id, secret).await);
    }

    let password = crate::helpers::member_password("ci@example.com");
    let r = app
        .post("/api/v1/users/me/password")
        .cookie(&admin)
        .json(json!({"current_password": password, "new_password": "a-brand-new-password-1"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());

    for ((id, secret), tokens) in mine.iter().zip(&access) {
        assert_eq!(app.bearer_status(&tokens.access_token).await, StatusCode::UNAUTHORIZED);
        let r = app
            .post(TOKEN)
            .header("authorization", &basic(id, secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await;
        assert_oauth_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
        let r = app.refresh(&basic(id, secret), &tokens.refresh_token, None).await;
        assert_ne!(r.status, StatusCode::OK, "a refresh token of a revoked credential: {}", r.text());
    }
    assert_eq!(
        app.bearer_status(&access[2].access_token).await,
        StatusCode::OK,
        "the owner's credential lives on"
    );
    app.token(&theirs.0, &theirs.1).await;

    let audited: Vec<(uuid::Uuid, String)> = sqlx::query_as(
        "select org_id, details from audit_events where action = 'user.password_changed' and actor = 'ci@example.com'
           and details::jsonb ? 'credentials_revoked' order by org_id",
    )
    .fetch_all(&app.db)
    .await
    .unwrap();
    let revoked: Vec<(uuid::Uuid, i64)> = audited
        .iter()
        .map(|(o, d)| {
            (
                *o,
                serde_json::from_str::<serde_json::Value>(d).unwrap()["credentials_revoked"]
                    .as_i64()
                    .unwrap(),
            )
        })
        .collect();
    let mut want = vec![(org, 1), (second, 1)];
    want.sort();
    assert_eq!(revoked.into_iter().filter(|(_, n)| *n > 0).collect::<Vec<_>>(), want, "audited in each org");
}

#[tokio::test]
async fn secrets_issued_before_the_tags_work_until_they_expire() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let (id, _) = create_credential(&app, &owner, app.owner_org, &["org:read"]).await;
    // The credential and a token pair as Berth issued them before the tags.
    let (old_id, old_secret) = (untagged("brc_", 16), untagged("brs_", 32));
    let (access, refresh) = (untagged("brt_", 32), untagged("brr_", 32));
    let credential_id: uuid::Uuid = sqlx::query_scalar(
        "update credentials set client_id = $1, secret_hash = $2 where client_id = $3 returning id",
    )
    .bind(&old_id)
    .bind(token::hash(&old_secret))
    .bind(&id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    let now = app.clock_now();
    berth::db::tokens::insert_pair(
        &app.db,
        berth::db::tokens::NewPair {
            access_hash: &token::hash(&access),
            refresh_hash: &token::hash(&refresh),
            credential_id: credential_id.into(),
            family_id: uuid::Uuid::now_v7(),
            scopes: &["org:read".to_owned()],
            now,
            access_expires_at: now + Duration::HOUR,
            refresh_expires_at: now + Duration::days(30),
        },
        true,
    )
    .await
    .unwrap();

    assert_eq!(app.bearer_status(&access).await, StatusCode::OK);
    assert_eq!(
        app.bearer_status(&untagged("brt_", 32)).await,
        StatusCode::UNAUTHORIZED,
        "looked up, unknown"
    );
    let auth = basic(&old_id, &old_secret);
    let r = app.refresh(&auth, &refresh, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let next = r.string_at("/access_token");
    assert_eq!(next.len(), 4 + 64, "what is issued now is tagged");
    assert_eq!(app.bearer_status(&next).await, StatusCode::OK);
    app.token(&old_id, &old_secret).await;

    app.clock.advance(Duration::HOUR + Duration::seconds(1));
    assert_eq!(app.bearer_status(&access).await, StatusCode::UNAUTHORIZED, "expired");
}
