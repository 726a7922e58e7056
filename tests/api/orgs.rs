use axum::http::StatusCode;
use serde_json::json;

use crate::client::Fields;
use crate::helpers::{TestApp, member_password};

#[tokio::test]
async fn creating_an_org_makes_the_caller_its_owner() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let r = app.post("/api/v1/orgs").cookie(&owner).json(json!({"name": "  Second "})).send().await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["name"], "Second");
    assert_eq!(r.json()["role"], "owner");
    let list = app.get("/api/v1/orgs").cookie(&owner).send().await.json();
    let names: Vec<&str> = list["items"].as_array().unwrap().iter().map(|o| o.str_at("/name")).collect();
    assert_eq!(names, ["Acme", "Second"]);
    for bad in [
        json!({"name": ""}),
        json!({"name": "x".repeat(101)}),
        json!({"name": 5}),
        json!({"name": "a", "x": 1}),
    ] {
        let r = app.post("/api/v1/orgs").cookie(&owner).json(bad.clone()).send().await;
        r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    let count: i64 =
        sqlx::query_scalar("select count(*) from organizations").fetch_one(&app.db).await.unwrap();
    assert_eq!(count, 2, "rejected requests created nothing");
}

#[tokio::test]
async fn another_orgs_ids_answer_404_on_every_route() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let a = app.owner_org;
    let (a_member, _) = app.active_member(&owner, a, "a-member@example.com", "member").await;
    // Mallory owns org B and is not in A.
    let (mallory_id, mallory) = app.active_member(&owner, a, "mallory@example.com", "viewer").await;
    let b = app.create_org(&mallory, "B").await;
    assert_eq!(
        app.delete(&format!("/api/v1/orgs/{a}/members/{mallory_id}")).cookie(&owner).send().await.status,
        StatusCode::NO_CONTENT
    );

    let nobody = uuid::Uuid::new_v4();
    for org in [a.to_string(), nobody.to_string()] {
        let calls = [
            app.get(&format!("/api/v1/orgs/{org}")).cookie(&mallory).send().await,
            app.get(&format!("/api/v1/orgs/{org}/members")).cookie(&mallory).send().await,
            app.post(&format!("/api/v1/orgs/{org}/members"))
                .cookie(&mallory)
                .json(json!({"email": "m2@example.com", "role": "owner"}))
                .send()
                .await,
            app.patch(&format!("/api/v1/orgs/{org}/members/{a_member}"))
                .cookie(&mallory)
                .json(json!({"role": "owner"}))
                .send()
                .await,
            app.delete(&format!("/api/v1/orgs/{org}/members/{a_member}")).cookie(&mallory).send().await,
            app.get(&format!("/api/v1/orgs/{org}/ca.pem")).cookie(&mallory).send().await,
        ];
        for r in calls {
            r.assert_problem(StatusCode::NOT_FOUND, "not_found");
        }
    }
    // The same answer for an org that exists and one that does not.
    let exists = app.get(&format!("/api/v1/orgs/{a}")).cookie(&mallory).send().await;
    let missing = app.get(&format!("/api/v1/orgs/{nobody}")).cookie(&mallory).send().await;
    assert_eq!(exists.body, missing.body);
    // Org B's owner cannot reach A's member through B's id either.
    let via_b = app
        .patch(&format!("/api/v1/orgs/{b}/members/{a_member}"))
        .cookie(&mallory)
        .json(json!({"role": "viewer"}))
        .send()
        .await;
    via_b.assert_problem(StatusCode::NOT_FOUND, "not_found");
    let role: String = sqlx::query_scalar("select role from memberships where user_id = $1")
        .bind(a_member)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(role, "member", "nothing changed");
    let bad_id = app.get("/api/v1/orgs/not-a-uuid").cookie(&owner).send().await;
    bad_id.assert_problem(StatusCode::BAD_REQUEST, "bad_request");
}

/// An organization is read from the principal that authenticated the request, in the same
/// statement: what it says must be current at the very next request, and a user in no
/// organization must still sign in.
#[tokio::test]
async fn the_callers_organizations_are_current_at_the_next_request() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let (id, member) = app.active_member(&owner, org, "m@example.com", "member").await;
    let mine = app.get(&format!("/api/v1/orgs/{org}")).cookie(&member).send().await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.text());
    assert_eq!(mine.json()["role"], "member");
    assert_eq!(mine.json()["name"], "Acme");
    let created: String = sqlx::query_scalar("select to_char(created_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') from organizations where id = $1")
        .bind(org)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert!(mine.string_at("/created_at").starts_with(&created), "{}", mine.text());

    let members = format!("/api/v1/orgs/{org}/members/{id}");
    let r = app.patch(&members).cookie(&owner).json(json!({"role": "admin"})).send().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let mine = app.get(&format!("/api/v1/orgs/{org}")).cookie(&member).send().await;
    assert_eq!(mine.json()["role"], "admin", "the new role at the next request");
    let list = app.get("/api/v1/orgs").cookie(&member).send().await.json();
    assert_eq!(list["items"][0]["role"], "admin");

    assert_eq!(app.delete(&members).cookie(&owner).send().await.status, StatusCode::NO_CONTENT);
    app.get(&format!("/api/v1/orgs/{org}"))
        .cookie(&member)
        .send()
        .await
        .assert_problem(StatusCode::NOT_FOUND, "not_found");
    let list = app.get("/api/v1/orgs").cookie(&member).send().await.json();
    assert_eq!(list["items"], json!([]));
    // Signed in again, in no organization at all.
    let again = app.login("m@example.com", &member_password("m@example.com")).await;
    let check = app.get("/api/auth/check").cookie(&again).send().await;
    assert_eq!(check.status, StatusCode::OK, "{}", check.text());
    assert_eq!(check.json()["organizations"], json!([]));
}

#[tokio::test]
async fn roles_limit_what_members_may_do() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let members = format!("/api/v1/orgs/{org}/members");
    let (_, viewer) = app.active_member(&owner, org, "viewer@example.com", "viewer").await;
    let (admin_id, admin) = app.active_member(&owner, org, "admin@example.com", "admin").await;

    assert_eq!(app.get(&format!("/api/v1/orgs/{org}")).cookie(&viewer).send().await.status, StatusCode::OK);
    assert_eq!(app.get(&members).cookie(&viewer).send().await.status, StatusCode::OK);
    let r = app
        .post(&members)
        .cookie(&viewer)
        .json(json!({"email": "v2@example.com", "role": "viewer"}))
        .send()
        .await;
    r.assert_problem(StatusCode::FORBIDDEN, "insufficient_role");

    // An admin manages members but not owners.
    let r = app
        .post(&members)
        .cookie(&admin)
        .json(json!({"email": "m@example.com", "role": "member"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "invited");
    let r = app
        .post(&members)
        .cookie(&admin)
        .json(json!({"email": "o@example.com", "role": "owner"}))
        .send()
        .await;
    r.assert_problem(StatusCode::FORBIDDEN, "owner_only");
    let owner_id = app.user_id(&owner).await;
    let r = app
        .patch(&format!("{members}/{owner_id}"))
        .cookie(&admin)
        .json(json!({"role": "viewer"}))
        .send()
        .await;
    r.assert_problem(StatusCode::FORBIDDEN, "owner_only");
    let r = app.delete(&format!("{members}/{owner_id}")).cookie(&admin).send().await;
    r.assert_problem(StatusCode::FORBIDDEN, "owner_only");
    let r = app
        .patch(&format!("{members}/{admin_id}"))
        .cookie(&admin)
        .json(json!({"role": "owner"}))
        .send()
        .await;
    r.assert_problem(StatusCode::FORBIDDEN, "owner_only");

    // A demotion takes effect at the admin's next request.
    let r = app
        .patch(&format!("{members}/{admin_id}"))
        .cookie(&owner)
        .json(json!({"role": "viewer"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["role"], "viewer");
    let r = app
        .post(&members)
        .cookie(&admin)
        .json(json!({"email": "m3@example.com", "role": "member"}))
        .send()
        .await;
    r.assert_problem(StatusCode::FORBIDDEN, "insufficient_role");
    let r =
        app.patch(&format!("{members}/{admin_id}")).cookie(&owner).json(json!({"role": "root"})).send().await;
    r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

#[tokio::test]
async fn the_last_owner_can_be_neither_removed_nor_demoted() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let members = format!("/api/v1/orgs/{org}/members");
    let owner_id = app.user_id(&owner).await;

    app.delete(&format!("{members}/{owner_id}"))
        .cookie(&owner)
        .send()
        .await
        .assert_problem(StatusCode::CONFLICT, "last_owner");
    app.patch(&format!("{members}/{owner_id}"))
        .cookie(&owner)
        .json(json!({"role": "admin"}))
        .send()
        .await
        .assert_problem(StatusCode::CONFLICT, "last_owner");

    let (second_id, second) = app.active_member(&owner, org, "second@example.com", "owner").await;
    let r = app
        .patch(&format!("{members}/{owner_id}"))
        .cookie(&owner)
        .json(json!({"role": "admin"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "with two owners one may step down");
    app.delete(&format!("{members}/{second_id}"))
        .cookie(&second)
        .send()
        .await
        .assert_problem(StatusCode::CONFLICT, "last_owner");
    let owners: i64 = sqlx::query_scalar("select count(*) from memberships where role = 'owner'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(owners, 1);
}

#[tokio::test]
async fn a_new_member_with_an_initial_password_must_change_it_first() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let initial = "initial-password-for-new";
    let r = app
        .post(&format!("/api/v1/orgs/{org}/members"))
        .cookie(&owner)
        .json(json!({"email": "New.Person@Example.com", "role": "member", "password": initial}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let added = r.json();
    assert_eq!(added["member"]["email"], "new.person@example.com");
    assert_eq!(added["member"]["role"], "member");
    assert_eq!(added["member"]["must_change_password"], true);
    assert!(!r.text().contains(initial), "the password is not echoed");

    let r = app
        .post("/api/auth/login")
        .json(json!({"login": "new.person@example.com", "password": initial}))
        .send()
        .await;
    assert_eq!(r.json()["mustChangePassword"], true);
    let cookie = r.session_cookie().unwrap();
    app.get("/api/v1/orgs")
        .cookie(&cookie)
        .send()
        .await
        .assert_problem(StatusCode::FORBIDDEN, "password_change_required");
    assert_eq!(app.get("/api/auth/check").cookie(&cookie).send().await.status, StatusCode::OK);
    let r = app
        .post("/api/v1/users/me/password")
        .cookie(&cookie)
        .json(json!({"current_password": initial, "new_password": member_password("new")}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let cookie = r.session_cookie().unwrap();
    assert_eq!(app.get("/api/v1/orgs").cookie(&cookie).send().await.status, StatusCode::OK);

    // A member already, with or without a password: 409.
    for body in [
        json!({"email": "new.person@example.com", "role": "viewer"}),
        json!({"email": "new.person@example.com", "role": "viewer", "password": "another-password-1"}),
    ] {
        let again = app.post(&format!("/api/v1/orgs/{org}/members")).cookie(&owner).json(body).send().await;
        again.assert_problem(StatusCode::CONFLICT, "already_member");
    }
}

#[tokio::test]
async fn bad_member_input_is_422_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let path = format!("/api/v1/orgs/{}/members", app.owner_org);
    for bad in [
        json!({"email": "not-an-email", "role": "viewer"}),
        json!({"email": "a@example.com", "role": "superuser"}),
        json!({"email": "a@example.com", "role": "viewer", "password": "short"}),
        json!({"email": "a@example.com", "role": "viewer", "admin": true}),
        json!({"email": "a@example.com"}),
        json!({"email": "'; drop table users; --@x", "role": "viewer"}),
    ] {
        let r = app.post(&path).cookie(&owner).json(bad.clone()).send().await;
        r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    let users: i64 = sqlx::query_scalar("select count(*) from users").fetch_one(&app.db).await.unwrap();
    assert_eq!(users, 1);
}

#[tokio::test]
async fn a_bearer_token_cannot_create_logins_or_owners_a_session_can() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let members = format!("/api/v1/orgs/{org}/members");
    let (member_id, _) = app.active_member(&owner, org, "m@example.com", "member").await;
    let tok = app.bearer_token(&owner, org, &["org:read", "org:admin"]).await;
    let users = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from users").fetch_one(&app.db).await.unwrap()
    };
    let before = users().await;

    for body in [
        json!({"email": "new@example.com", "role": "viewer", "password": "a-long-password-1"}),
        json!({"email": "new@example.com", "role": "owner"}),
        json!({"email": "m@example.com", "role": "owner"}),
    ] {
        let r = app.post(&members).bearer(&tok).json(body.clone()).send().await;
        r.assert_problem(StatusCode::FORBIDDEN, "session_required");
    }
    let r =
        app.patch(&format!("{members}/{member_id}")).bearer(&tok).json(json!({"role": "owner"})).send().await;
    r.assert_problem(StatusCode::FORBIDDEN, "session_required");
    assert_eq!(users().await, before, "no account was made");
    let role: String = sqlx::query_scalar("select role from memberships where user_id = $1")
        .bind(member_id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(role, "member", "the role is unchanged");
    // What a token may still do with org:admin: invite, and change roles below owner.
    let r = app
        .post(&members)
        .bearer(&tok)
        .json(json!({"email": "new@example.com", "role": "admin"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text());
    assert_eq!(users().await, before, "an invitation is no account");
    let r =
        app.patch(&format!("{members}/{member_id}")).bearer(&tok).json(json!({"role": "admin"})).send().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    // The owner's session may do both.
    let r = app
        .post(&members)
        .cookie(&owner)
        .json(json!({"email": "new@example.com", "role": "viewer", "password": "a-long-password-1"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let r = app
        .patch(&format!("{members}/{member_id}"))
        .cookie(&owner)
        .json(json!({"role": "owner"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["role"], "owner");
}
