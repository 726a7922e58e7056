use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::client::Fields;
use crate::helpers::TestApp;

/// Connects to the node from a chosen loopback source address, as dbadmin, and runs a query.
async fn connect_from(source: &str, port: i64, password: &str) -> Result<(), String> {
    connect_as_from(source, port, "dbadmin", password, "defaultdb").await
}

pub async fn connect_as_from(
    source: &str,
    port: i64,
    user: &str,
    password: &str,
    db: &str,
) -> Result<(), String> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let stream =
        socket.connect(format!("127.0.0.1:{port}").parse().unwrap()).await.map_err(|e| e.to_string())?;
    let mut cfg = tokio_postgres::Config::new();
    cfg.user(user).password(password).dbname(db);
    let (client, conn) =
        cfg.connect_raw(stream, tokio_postgres::NoTls).await.map_err(|e| format!("{e:?}"))?;
    tokio::spawn(conn);
    client.simple_query("select 1").await.map_err(|e| e.to_string())?;
    Ok(())
}

#[track_caller]
fn refused(r: Result<(), String>) {
    let e = r.expect_err("the connection should be refused");
    assert!(e.contains("pg_hba.conf"), "refused by the firewall, not something else: {e}");
}

#[tokio::test]
async fn rules_are_enforced_by_the_node_itself() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let ready = app.new_ready_store(&owner, "walled", 1).await;
    let (id, password, port) = (ready.id, ready.password.clone(), ready.port());
    let rules = format!("/api/v1/orgs/{org}/stores/{id}/firewall-rules");

    // A new store admits this host, by a rule that is listed like any other.
    let listed = app.get(&rules).cookie(&owner).send().await.json();
    assert_eq!(listed["items"][0]["source"], "127.0.0.1/32");
    let default_rule = listed.uuid_at("/items/0/id");
    connect_from("127.0.0.1", port, &password).await.unwrap();
    refused(connect_from("127.0.0.2", port, &password).await);

    let r = app
        .post(&rules)
        .cookie(&owner)
        .json(json!({"source": "127.0.0.2", "description": "app server"}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    assert_eq!(r.json()["source"], "127.0.0.2/32", "a bare address is one host");
    let rule2 = r.uuid_at("/id");
    connect_from("127.0.0.2", port, &password).await.expect("allowed source connects");
    refused(connect_from("127.0.0.3", port, &password).await);

    // Removing a rule shuts its source out at once.
    let r = app.delete(&format!("{rules}/{default_rule}")).cookie(&owner).send().await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    refused(connect_from("127.0.0.1", port, &password).await);
    let r = app.delete(&format!("{rules}/{rule2}")).cookie(&owner).send().await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    refused(connect_from("127.0.0.2", port, &password).await);

    // The whole set at once.
    let r = app
        .put(&rules)
        .cookie(&owner)
        .json(json!([{"source": "127.0.0.0/30"}, {"source": "::1", "description": "v6 loopback"}]))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let listed = r.json();
    let sources: Vec<&str> =
        listed["items"].as_array().unwrap().iter().map(|i| i.str_at("/source")).collect();
    assert_eq!(sources, ["127.0.0.0/30", "::1/128"]);
    connect_from("127.0.0.3", port, &password).await.expect("inside 127.0.0.0/30");
    refused(connect_from("127.0.0.4", port, &password).await);

    // An expiring rule removes itself.
    let soon = (app.clock_now() + time::Duration::minutes(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let r = app
        .post(&rules)
        .cookie(&owner)
        .json(json!({"source": "127.0.0.4/32", "expires_at": soon}))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    connect_from("127.0.0.4", port, &password).await.unwrap();
    app.clock.advance(time::Duration::minutes(2));
    berth::jobs::reconcile::check_all(&app.state.job_env()).await.unwrap();
    refused(connect_from("127.0.0.4", port, &password).await);
    assert_eq!(app.get(&rules).cookie(&owner).send().await.json()["items"].as_array().unwrap().len(), 2);

    app.delete_store(&owner, org, id).await;
}

#[tokio::test]
async fn bad_rules_are_422_or_409_and_change_nothing() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let id = app.new_store(&owner, "rules", 1).await.id;
    let rules = format!("/api/v1/orgs/{org}/stores/{id}/firewall-rules");
    let past = (app.clock_now() - time::Duration::minutes(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    for (body, field, hint) in [
        (json!({"source": "10.1.2.3/8"}), "source", Some("10.0.0.0/8")),
        (json!({"source": "2001:db8::1/32"}), "source", Some("2001:db8::/32")),
        (json!({"source": "300.0.0.1"}), "source", None),
        (json!({"source": "0.0.0.0/0 trust\nhost all all"}), "source", None),
        (json!({"source": "10.0.0.0/8", "expires_at": past}), "expires_at", None),
        (json!({"source": "10.0.0.0/8", "port": 1}), "port", None),
    ] {
        let r = app.post(&rules).cookie(&owner).json(body.clone()).send().await;
        r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let errors: Value = r.json();
        assert_eq!(errors["errors"][0]["field"], field, "{body}: {}", r.text());
        if let Some(h) = hint {
            assert!(r.text().contains(h), "names the canonical form {h}: {}", r.text());
        }
    }
    app.post(&rules)
        .cookie(&owner)
        .json(json!({"source": "127.0.0.1"}))
        .send()
        .await
        .assert_problem(StatusCode::CONFLICT, "duplicate_rule");
    let r = app
        .put(&rules)
        .cookie(&owner)
        .json(json!([{"source": "10.0.0.0/8"}, {"source": "10.0.0.0/8"}]))
        .send()
        .await;
    r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(r.json()["errors"][0]["field"], "[1].source");
    let listed = app.get(&rules).cookie(&owner).send().await.json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "nothing changed");
}
