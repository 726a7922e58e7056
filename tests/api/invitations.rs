use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::client::Fields;
use crate::helpers::{TestApp, TestResponse, member_password};

/// An account of its own (a member of another organization, "Elsewhere"), signed in; returns
/// its cookie.
async fn existing_account(app: &TestApp, owner: &str, email: &str) -> String {
    let elsewhere = app.create_org(owner, "Elsewhere").await;
    app.active_member(owner, elsewhere, email, "viewer").await.1
}

async fn invite(app: &TestApp, cookie: &str, body: Value) -> TestResponse {
    app.post(&format!("/api/v1/orgs/{}/members", app.owner_org)).cookie(cookie).json(body).send().await
}

async fn my_invitations(app: &TestApp, cookie: &str) -> Vec<Value> {
    let r = app.get("/api/v1/users/me/invitations").cookie(cookie).send().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()["items"].as_array().unwrap().clone()
}

async fn org_invitation(app: &TestApp, owner: &str, id: uuid::Uuid) -> Value {
    let r = app.get(&format!("/api/v1/orgs/{}/invitations", app.owner_org)).cookie(owner).send().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()["items"].as_array().unwrap().iter().find(|i| i["id"] == id.to_string()).cloned().expect("listed")
}

async fn is_member(app: &TestApp, email: &str) -> bool {
    sqlx::query_scalar(
        "select exists(select 1 from memberships m join users u on u.id = m.user_id
                       where m.org_id = $1 and u.email = $2)",
    )
    .bind(app.owner_org)
    .bind(email)
    .fetch_one(&app.db)
    .await
    .unwrap()
}

/// The org's audit events whose actor is the account with this address.
async fn events_by(app: &TestApp, email: &str) -> Vec<String> {
    sqlx::query_scalar(
        "select e.action from audit_events e join users u on u.id = e.actor_user_id
         where e.org_id = $1 and u.email = $2 order by e.id",
    )
    .bind(app.owner_org)
    .bind(email)
    .fetch_all(&app.db)
    .await
    .unwrap()
}

#[tokio::test]
async fn an_existing_account_is_invited_and_becomes_a_member_only_by_accepting() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let bob = existing_account(&app, &owner, "bob@example.com").await;
    let users_before: i64 =
        sqlx::query_scalar("select count(*) from users").fetch_one(&app.db).await.unwrap();

    let r = invite(&app, &owner, json!({"email": "Bob@Example.com", "role": "member"})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    let inv = r.json();
    assert_eq!(inv["email"], "bob@example.com");
    assert_eq!(inv["role"], "member");
    assert_eq!(inv["status"], "pending");
    assert_eq!(inv["org_name"], "Acme");
    let id = inv.uuid_at("/id");
    let created = time::OffsetDateTime::parse(
        inv.str_at("/created_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let expires = time::OffsetDateTime::parse(
        inv.str_at("/expires_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(expires - created, time::Duration::days(7));
    assert!(!is_member(&app, "bob@example.com").await, "nothing but the invitation");
    let users: i64 = sqlx::query_scalar("select count(*) from users").fetch_one(&app.db).await.unwrap();
    assert_eq!(users, users_before);

    // Until accepted Bob is nobody in Acme: no access, and his sign-ins stay out of its trail.
    let acme = format!("/api/v1/orgs/{}", app.owner_org);
    app.get(&acme).cookie(&bob).send().await.assert_problem(StatusCode::NOT_FOUND, "not_found");
    let bob = app.login("bob@example.com", &member_password("bob@example.com")).await;
    assert!(
        events_by(&app, "bob@example.com").await.is_empty(),
        "{:?}",
        events_by(&app, "bob@example.com").await
    );
    let elsewhere_logins: i64 = sqlx::query_scalar(
        "select count(*) from audit_events where action = 'login' and actor = 'bob@example.com' and org_id <> $1",
    )
    .bind(app.owner_org)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(elsewhere_logins >= 2, "his logins go to the org he is in");

    // Bob sees it, and nobody else does.
    let mine = my_invitations(&app, &bob).await;
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["id"], id.to_string());
    assert_eq!(mine[0]["invited_by"], crate::helpers::OWNER_EMAIL);
    let carol = existing_account(&app, &owner, "carol@example.com").await;
    assert!(my_invitations(&app, &carol).await.is_empty());
    let accept = format!("/api/v1/users/me/invitations/{id}/accept");
    app.post(&accept).cookie(&carol).send().await.assert_problem(StatusCode::NOT_FOUND, "not_found");

    let r = app.post(&accept).cookie(&bob).send().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["status"], "accepted");
    assert!(is_member(&app, "bob@example.com").await);
    let member = app.get(&acme).cookie(&bob).send().await;
    assert_eq!(member.status, StatusCode::OK, "a member at the next request: {}", member.text());
    assert_eq!(member.json()["role"], "member");
    assert_eq!(events_by(&app, "bob@example.com").await, ["invitation.accepted"]);
    app.post(&accept).cookie(&bob).send().await.assert_problem(StatusCode::CONFLICT, "invitation_answered");
    assert!(my_invitations(&app, &bob).await.is_empty());
    assert_eq!(org_invitation(&app, &owner, id).await["status"], "accepted");
    // From now on his sign-ins are Acme's business too.
    app.login("bob@example.com", &member_password("bob@example.com")).await;
    assert_eq!(events_by(&app, "bob@example.com").await, ["invitation.accepted", "login"]);
}

#[tokio::test]
async fn the_inviter_learns_nothing_about_whether_an_account_exists() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let bob_password = member_password("bob@example.com");
    existing_account(&app, &owner, "bob@example.com").await;

    // The shape of an answer, with what differs by address alone left out.
    let shape = |r: &TestResponse| {
        let mut v = r.json();
        let o = v.as_object_mut().unwrap();
        for k in ["id", "email", "created_at", "expires_at"] {
            assert!(o.remove(k).is_some(), "{k} missing: {}", r.text());
        }
        (r.status, r.header("content-type").map(str::to_owned), v)
    };
    let exists = invite(&app, &owner, json!({"email": "bob@example.com", "role": "viewer"})).await;
    let nobody = invite(&app, &owner, json!({"email": "nobody@example.com", "role": "viewer"})).await;
    assert_eq!(exists.status, StatusCode::ACCEPTED, "{}", exists.text());
    assert_eq!(shape(&exists), shape(&nobody));
    let (a, b) = (exists.json(), nobody.json());
    assert_eq!(
        a.as_object().unwrap().keys().collect::<Vec<_>>(),
        b.as_object().unwrap().keys().collect::<Vec<_>>()
    );
    // And in the trail the inviter reads, the two are alike too.
    let details: Vec<String> = sqlx::query_scalar(
        "select details from audit_events where org_id = $1 and action = 'member.invited' order by id",
    )
    .bind(app.owner_org)
    .fetch_all(&app.db)
    .await
    .unwrap();
    assert_eq!(details.len(), 2);
    assert_eq!(details[0].replace("bob@", "x@"), details[1].replace("nobody@", "x@"));

    // A password for an existing account is no error either: an invitation, the password
    // dropped. Inviting again renews the same invitation.
    let with_pw = invite(
        &app,
        &owner,
        json!({"email": "bob@example.com", "role": "member", "password": "attacker-chosen-1"}),
    )
    .await;
    assert_eq!(with_pw.status, StatusCode::ACCEPTED, "{}", with_pw.text());
    assert_eq!(with_pw.json()["id"], a["id"], "one open invitation per address");
    assert_eq!(with_pw.json()["role"], "member");
    assert_eq!(
        app.post("/api/auth/login")
            .json(json!({"login": "bob@example.com", "password": "attacker-chosen-1"}))
            .send()
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    app.login("bob@example.com", &bob_password).await;
    assert!(!is_member(&app, "bob@example.com").await);
    let open: i64 = sqlx::query_scalar("select count(*) from invitations where status = 'pending'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(open, 2);
    // An address without an account gets nothing but the invitation; an account made for it
    // later sees it.
    let nobody_users: i64 =
        sqlx::query_scalar("select count(*) from users where email = 'nobody@example.com'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(nobody_users, 0);
    let nobody = existing_account(&app, &owner, "nobody@example.com").await;
    let theirs = my_invitations(&app, &nobody).await;
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0]["id"], b["id"]);
}

#[tokio::test]
async fn invitations_can_be_declined_revoked_and_expire() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let bob = existing_account(&app, &owner, "bob@example.com").await;
    let id_of = |r: TestResponse| {
        assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
        r.uuid_at("/id")
    };

    // Declined: no member, the org sees it declined, and the decline is not in the org's trail.
    let id = id_of(invite(&app, &owner, json!({"email": "bob@example.com", "role": "viewer"})).await);
    let r = app.post(&format!("/api/v1/users/me/invitations/{id}/decline")).cookie(&bob).send().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["status"], "declined");
    assert!(!is_member(&app, "bob@example.com").await);
    assert_eq!(org_invitation(&app, &owner, id).await["status"], "declined");
    app.post(&format!("/api/v1/users/me/invitations/{id}/accept"))
        .cookie(&bob)
        .send()
        .await
        .assert_problem(StatusCode::CONFLICT, "invitation_answered");
    assert!(events_by(&app, "bob@example.com").await.is_empty());

    // Revoked by an admin: gone from the invitee's list, cannot be accepted.
    let (_, admin) = app.active_member(&owner, org, "admin@example.com", "admin").await;
    let id = id_of(invite(&app, &admin, json!({"email": "bob@example.com", "role": "member"})).await);
    assert_eq!(my_invitations(&app, &bob).await.len(), 1);
    let revoke = format!("/api/v1/orgs/{org}/invitations/{id}");
    let (_, viewer) = app.active_member(&owner, org, "viewer@example.com", "viewer").await;
    app.delete(&revoke)
        .cookie(&viewer)
        .send()
        .await
        .assert_problem(StatusCode::FORBIDDEN, "insufficient_role");
    app.get(&format!("/api/v1/orgs/{org}/invitations"))
        .cookie(&viewer)
        .send()
        .await
        .assert_problem(StatusCode::FORBIDDEN, "insufficient_role");
    assert_eq!(app.delete(&revoke).cookie(&admin).send().await.status, StatusCode::NO_CONTENT);
    assert!(my_invitations(&app, &bob).await.is_empty());
    app.post(&format!("/api/v1/users/me/invitations/{id}/accept"))
        .cookie(&bob)
        .send()
        .await
        .assert_problem(StatusCode::CONFLICT, "invitation_answered");
    app.delete(&revoke)
        .cookie(&admin)
        .send()
        .await
        .assert_problem(StatusCode::CONFLICT, "invitation_answered");
    let revoked: i64 = sqlx::query_scalar(
        "select count(*) from audit_events where org_id = $1 and action = 'invitation.revoked' and actor = 'admin@example.com'",
    )
    .bind(org)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(revoked, 1);
    // Another organization's invitation is no invitation.
    let other = app.create_org(&owner, "Other").await;
    let r = app.delete(&format!("/api/v1/orgs/{other}/invitations/{id}")).cookie(&owner).send().await;
    r.assert_problem(StatusCode::NOT_FOUND, "not_found");
    // Only an owner withdraws an invitation to become an owner.
    let id = id_of(invite(&app, &owner, json!({"email": "bob@example.com", "role": "owner"})).await);
    app.delete(&format!("/api/v1/orgs/{org}/invitations/{id}"))
        .cookie(&admin)
        .send()
        .await
        .assert_problem(StatusCode::FORBIDDEN, "owner_only");

    // Expired after 7 days: listed as such for the org, no longer offered, not acceptable.
    app.clock.advance(time::Duration::days(7) + time::Duration::seconds(1));
    let bob = app.login("bob@example.com", &member_password("bob@example.com")).await;
    assert!(my_invitations(&app, &bob).await.is_empty());
    app.post(&format!("/api/v1/users/me/invitations/{id}/accept"))
        .cookie(&bob)
        .send()
        .await
        .assert_problem(StatusCode::CONFLICT, "invitation_expired");
    assert!(!is_member(&app, "bob@example.com").await);
    let owner = app.login_owner().await;
    assert_eq!(org_invitation(&app, &owner, id).await["status"], "expired");
    // Inviting again renews it.
    let again = id_of(invite(&app, &owner, json!({"email": "bob@example.com", "role": "owner"})).await);
    assert_eq!(again, id);
    assert_eq!(org_invitation(&app, &owner, id).await["status"], "pending");
    let r = app.post(&format!("/api/v1/users/me/invitations/{id}/accept")).cookie(&bob).send().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let role: String = sqlx::query_scalar(
        "select m.role from memberships m join users u on u.id = m.user_id where m.org_id = $1 and u.email = 'bob@example.com'",
    )
    .bind(org)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(role, "owner", "the invited role");
}

#[tokio::test]
async fn invitations_are_answered_by_their_signed_in_invitee_only() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let bob = existing_account(&app, &owner, "bob@example.com").await;
    let r = invite(&app, &owner, json!({"email": "bob@example.com", "role": "viewer"})).await;
    let id = r.uuid_at("/id");
    // A token of Bob's (in the org he is in) cannot answer for him.
    let elsewhere: uuid::Uuid = sqlx::query_scalar("select id from organizations where name = 'Elsewhere'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let tok = app.bearer_token(&bob, elsewhere, &["org:read"]).await;
    for r in [
        app.get("/api/v1/users/me/invitations").bearer(&tok).send().await,
        app.post(&format!("/api/v1/users/me/invitations/{id}/accept")).bearer(&tok).send().await,
        app.post(&format!("/api/v1/users/me/invitations/{id}/decline")).bearer(&tok).send().await,
    ] {
        r.assert_problem(StatusCode::FORBIDDEN, "session_required");
    }
    // A cross-site accept is refused like any cookie-authenticated change.
    app.post(&format!("/api/v1/users/me/invitations/{id}/accept"))
        .cookie(&bob)
        .header("origin", "https://evil.example")
        .send()
        .await
        .assert_problem(StatusCode::FORBIDDEN, "cross_site_request");
    // Unknown ids and bad ids are 4xx problems.
    app.post(&format!("/api/v1/users/me/invitations/{}/accept", uuid::Uuid::now_v7()))
        .cookie(&bob)
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    for bad in ["not-a-uuid/accept".to_owned(), format!("{id}/maybe")] {
        let r = app.post(&format!("/api/v1/users/me/invitations/{bad}")).cookie(&bob).send().await;
        r.assert_problem(StatusCode::BAD_REQUEST, "bad_request");
    }
    assert!(!is_member(&app, "bob@example.com").await);
}
