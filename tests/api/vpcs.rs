//! VPCs and peerings with real network namespaces. Making networks needs root and iproute2 (CI
//! has both); elsewhere the tests check that VPCs are refused with the reason instead.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::client::{Fields, pg_version as version};
use crate::helpers::TestApp;

/// Whether this host lets Berth make networks; if not, checks that creating a VPC says why.
pub async fn networks_or_refusal(app: &TestApp, cookie: &str) -> bool {
    if app.state.plane.driver.networks_available().is_ok() {
        return true;
    }
    let r = app.post_vpc(cookie, app.owner_org, "refused", "10.61.0.0/24").await;
    r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(r.json()["errors"][0]["field"], "cloud", "{}", r.text());
    let options = app.get("/api/v1/content/deploy-options").cookie(cookie).send().await.json();
    assert_eq!(options["clouds"][0]["vpcs"]["available"], false);
    assert!(options["clouds"][0]["vpcs"]["reason"].is_string());
    eprintln!("no VPC networks on this host: checked that they are refused");
    crate::helpers::root_can_run("VPC networks");
    false
}

/// The namespace of one of the app's VPCs.
pub fn netns(app: &TestApp, vpc_id: Uuid) -> String {
    berth::provision::local::net::netns_name(&app.nodes_root, vpc_id.into())
}

pub fn ip(args: &[&str]) -> String {
    let out = std::process::Command::new("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn namespaces() -> Vec<String> {
    ip(&["netns", "list"]).lines().filter_map(|l| l.split_whitespace().next().map(str::to_owned)).collect()
}

/// Runs `sql` with psql started inside a namespace, as the store's admin user.
async fn psql_in(ns: &str, host: &str, port: i64, password: &str, sql: &str) -> Result<String, String> {
    let port = port.to_string();
    let target = ["-h", host, "-p", &port, "-U", "dbadmin", "-d", "defaultdb", "-XAtc", sql];
    psql_args_in(ns, &target, password, "30").await
}

/// Runs `sql` with psql on a libpq URI, started inside a namespace.
async fn psql_uri_in(ns: &str, uri: &str, password: &str, sql: &str) -> Result<String, String> {
    psql_args_in(ns, &[uri, "-XqAtc", sql], password, "3").await
}

/// psql with `args`, started inside a namespace: its output, or its error.
async fn psql_args_in(
    ns: &str,
    args: &[&str],
    password: &str,
    connect_timeout: &str,
) -> Result<String, String> {
    let psql = berth::pg::PgBinaries::locate(None).unwrap().tool("psql");
    let out = tokio::process::Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(psql)
        .args(args)
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", connect_timeout)
        .output()
        .await
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[track_caller]
fn unreachable(r: Result<String, String>) {
    let e = r.expect_err("the connection should fail");
    assert!(e.contains("Network is unreachable"), "no route, not something else: {e}");
}

#[track_caller]
fn refused(r: Result<String, String>) {
    let e = r.expect_err("the connection should be refused");
    assert!(e.contains("pg_hba.conf"), "refused by the node's rules, not something else: {e}");
}

fn private_store(name: &str, nodes: i64, vpc_id: Uuid) -> Value {
    json!({"name": name, "vendor": "postgres", "version": version(), "instance_size": "tiny",
           "volume_size": 10, "nodes": nodes, "cloud": "local", "region": "local-1",
           "network": {"type": "private", "vpc_id": vpc_id}})
}

#[tokio::test]
async fn a_private_store_is_reachable_from_its_vpc_and_active_peerings_only() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    if !networks_or_refusal(&app, &owner).await {
        return;
    }
    let org = app.owner_org;
    let options = app.get("/api/v1/content/deploy-options").cookie(&owner).send().await.json();
    assert_eq!(options["clouds"][0]["vpcs"]["available"], true, "{options}");
    let a = app.create_vpc(&owner, org, "net-a", "10.61.0.0/24").await;
    let b = app.create_vpc(&owner, org, "net-b", "10.62.0.0/24").await;
    let (ns_a, ns_b) = (netns(&app, a), netns(&app, b));
    assert!(ip(&["-n", &ns_a, "-4", "addr", "show", "vpc0"]).contains("inet 10.61.0.1/24"));
    assert_eq!(ip(&["-n", &ns_a, "route", "show", "default"]).trim(), "", "no way out of the VPC");

    // A private store with a replica: both nodes in the VPC, each at its own address.
    let ready = app.ready_store(&owner, org, private_store("inner", 2, a)).await;
    let (id, password, store) = (ready.id, ready.password.clone(), &ready.view);
    assert_eq!(ready.created.body["store"]["network"], json!({"type": "private", "vpc_id": a}));
    let (primary, replica) = (ready.node("primary"), ready.node("replica"));
    let host = primary.string_at("/host");
    let port = primary["port"].as_i64().unwrap();
    assert_eq!(host, "10.61.0.2");
    assert_eq!(replica["host"], "10.61.0.3");
    assert_eq!(store["connection"]["primary"]["host"], host);
    let rules = format!("{}/firewall-rules", ready.path());
    assert_eq!(app.get(&rules).cookie(&owner).send().await.json()["items"], json!([]), "no rule by default");

    // Inside the VPC, clients connect, and the replica streams from the primary.
    psql_in(&ns_a, &host, port, &password, "create table t as select 42 as x").await.unwrap();
    let replica_port = replica["port"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match psql_in(&ns_a, "10.61.0.3", replica_port, &password, "select x from t").await {
            Ok(x) if x == "42" => break,
            other => assert!(Instant::now() < deadline, "the replica never had the row: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // From the other VPC and from the host, there is no way in.
    unreachable(psql_in(&ns_b, &host, port, &password, "select 1").await);
    assert!(crate::helpers::node_connect(port, "dbadmin", &password, "defaultdb").await.is_err());

    // Peered, the other VPC reaches it.
    let r = app
        .post(&format!("/api/v1/orgs/{org}/vpcs/{b}/peerings"))
        .cookie(&owner)
        .json(json!({"peer_vpc_id": a}))
        .send()
        .await;
    let asked = r.accepted("peering");
    let peering = asked.id;
    assert_eq!(asked.body["peering"]["peer_cidr_ipv4_block"], "10.61.0.0/24");
    app.job_succeeded(&owner, org, asked.job_id).await;
    for side in [&a, &b] {
        let p = app
            .get(&format!("/api/v1/orgs/{org}/vpcs/{side}/peerings/{peering}"))
            .cookie(&owner)
            .send()
            .await;
        assert_eq!(p.json()["status"], "active", "seen from either side: {}", p.text());
    }
    assert_eq!(psql_in(&ns_b, &host, port, &password, "select x from t").await.unwrap(), "42");

    // Firewall rules of a private store apply inside the network: narrowed to its own VPC, the
    // peered one is refused by the node; without rules again, the default is back.
    let r = app.put(&rules).cookie(&owner).json(json!([{"source": "10.61.0.0/24"}])).send().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    refused(psql_in(&ns_b, &host, port, &password, "select 1").await);
    psql_in(&ns_a, &host, port, &password, "select 1").await.unwrap();
    let r = app.put(&rules).cookie(&owner).json(json!([])).send().await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    psql_in(&ns_b, &host, port, &password, "select 1").await.unwrap();

    // A VPC that holds a store or a peering cannot go.
    let r = app.delete(&format!("/api/v1/orgs/{org}/vpcs/{a}")).cookie(&owner).send().await;
    r.assert_problem(StatusCode::CONFLICT, "vpc_in_use");
    let detail = r.string_at("/detail");
    assert!(detail.contains("store inner") && detail.contains(&peering.to_string()), "{detail}");

    // Without the peering, the other VPC is shut out again.
    let r =
        app.delete(&format!("/api/v1/orgs/{org}/vpcs/{a}/peerings/{peering}")).cookie(&owner).send().await;
    app.job_succeeded(&owner, org, r.accepted_job()).await;
    unreachable(psql_in(&ns_b, &host, port, &password, "select 1").await);
    let listed = app.get(&format!("/api/v1/orgs/{org}/vpcs/{b}/peerings")).cookie(&owner).send().await.json();
    assert_eq!(listed["items"], json!([]));

    // Deleted, the store leaves the VPC free to go; the networks go with their VPCs.
    app.delete_store(&owner, org, id).await;
    for v in [a, b] {
        app.delete_vpc(&owner, org, v).await;
        let gone = app.get(&format!("/api/v1/orgs/{org}/vpcs/{v}")).cookie(&owner).send().await;
        gone.assert_problem(StatusCode::NOT_FOUND, "not_found");
    }
    let left = namespaces();
    assert!(!left.contains(&ns_a) && !left.contains(&ns_b), "{left:?}");
}

#[tokio::test]
async fn vpc_blocks_are_checked_and_each_broken_rule_is_named() {
    let app = TestApp::spawn().await.with_workers(1).await;
    let owner = app.login_owner().await;
    if !networks_or_refusal(&app, &owner).await {
        return;
    }
    let org = app.owner_org;
    let first = app.create_vpc(&owner, org, "first", "10.63.0.0/24").await;
    for (name, cidr, says) in [
        ("over", "10.63.0.128/25", format!("overlaps VPC first ({first}")),
        ("wide", "10.0.0.0/8", "a VPC's block is /16 to /28".to_owned()),
        ("tiny", "10.64.0.0/29", "a VPC's block is /16 to /28".to_owned()),
        ("public", "8.8.8.0/24", "RFC 1918".to_owned()),
        ("hosty", "10.64.0.1/24", "the network is 10.64.0.0/24".to_owned()),
        ("v6", "fd00::/64", "IPv4".to_owned()),
    ] {
        let r = app.post_vpc(&owner, org, name, cidr).await;
        r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(r.json()["errors"][0]["field"], "cidr_ipv4_block", "{cidr}: {}", r.text());
        assert!(r.text().contains(&says), "{cidr} names {says}: {}", r.text());
    }
    app.post_vpc(&owner, org, "first", "10.65.0.0/24")
        .await
        .assert_problem(StatusCode::CONFLICT, "name_taken");
    let r = app
        .post(&format!("/api/v1/orgs/{org}/vpcs"))
        .cookie(&owner)
        .json(json!({"name": "mars", "cloud": "mars", "region": "x", "cidr_ipv4_block": "10.66.0.0/24"}))
        .send()
        .await;
    r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(r.json()["errors"][0]["field"], "cloud");
    let listed = app.get(&format!("/api/v1/orgs/{org}/vpcs")).cookie(&owner).send().await.json();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "nothing else was made: {listed}");

    // Stores: a private one needs a VPC of this organization; a public one has none.
    let stores = format!("/api/v1/orgs/{org}/stores");
    for (network, field) in [
        (json!({"type": "private"}), "network.vpc_id"),
        (json!({"type": "private", "vpc_id": Uuid::now_v7()}), "network.vpc_id"),
        (json!({"type": "public", "vpc_id": first}), "network.vpc_id"),
        (json!({"type": "secret"}), "network.type"),
    ] {
        let mut body = private_store("nowhere", 1, first);
        body["network"] = network.clone();
        let r = app.post(&stores).cookie(&owner).json(body).send().await;
        r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(r.json()["errors"][0]["field"], field, "{network}: {}", r.text());
    }
    let made: i64 = sqlx::query_scalar("select count(*) from stores").fetch_one(&app.db).await.unwrap();
    assert_eq!(made, 0, "no store was made");

    app.delete_vpc(&owner, org, first).await;
}

/// A catalog with a second region, for the rules that cross one.
fn two_regions(app: &mut TestApp) {
    let file = app.nodes_root.join("catalog.toml");
    let text = include_str!("../../src/provision/catalog.default.toml").replace(
        "[volume_size_gb]",
        "[[clouds.regions]]\ncode = \"local-2\"\nname = \"Second\"\n\n[volume_size_gb]",
    );
    std::fs::write(&file, text).unwrap();
    let catalog = berth::provision::catalog::Catalog::load(Some(&file), vec![version()]).unwrap();
    app.state.plane.catalog = std::sync::Arc::new(catalog);
    app.router = berth::build_router(app.state.clone());
}

#[tokio::test]
async fn peerings_and_stores_stay_within_one_region() {
    let mut app = TestApp::spawn().await;
    two_regions(&mut app);
    let app = app.with_workers(1).await;
    let owner = app.login_owner().await;
    if !networks_or_refusal(&app, &owner).await {
        return;
    }
    let org = app.owner_org;
    let here = app.create_vpc(&owner, org, "here", "10.67.0.0/24").await;
    // The same block in another region is another network: no overlap there.
    let r = app
        .post(&format!("/api/v1/orgs/{org}/vpcs"))
        .cookie(&owner)
        .json(json!({"name": "there", "cloud": "local", "region": "local-2", "cidr_ipv4_block": "10.67.0.0/24"}))
        .send()
        .await;
    let made = r.accepted("vpc");
    let there = made.id;
    app.wait_job(&owner, org, made.job_id).await;

    let r = app
        .post(&format!("/api/v1/orgs/{org}/vpcs/{here}/peerings"))
        .cookie(&owner)
        .json(json!({"peer_vpc_id": there}))
        .send()
        .await;
    r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(r.text().contains("one region"), "{}", r.text());
    let r = app
        .post(&format!("/api/v1/orgs/{org}/vpcs/{here}/peerings"))
        .cookie(&owner)
        .json(json!({"peer_vpc_id": here}))
        .send()
        .await;
    r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let r = app
        .post(&format!("/api/v1/orgs/{org}/vpcs/{here}/peerings"))
        .cookie(&owner)
        .json(json!({"peer_vpc_id": Uuid::now_v7()}))
        .send()
        .await;
    r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(r.text().contains("peer_org_id"), "says how to reach another organization: {}", r.text());

    let r = app
        .post(&format!("/api/v1/orgs/{org}/stores"))
        .cookie(&owner)
        .json(private_store("far", 1, there))
        .send()
        .await;
    r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(r.text().contains("local-2"), "{}", r.text());
    let peerings: i64 =
        sqlx::query_scalar("select count(*) from vpc_peerings").fetch_one(&app.db).await.unwrap();
    assert_eq!(peerings, 0);
    for v in [here, there] {
        let r = app.delete(&format!("/api/v1/orgs/{org}/vpcs/{v}")).cookie(&owner).send().await;
        app.wait_job(&owner, org, r.uuid_at("/id")).await;
    }
}

#[tokio::test]
async fn another_organization_must_accept_and_cannot_be_probed() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    if !networks_or_refusal(&app, &owner).await {
        return;
    }
    let a_org = app.owner_org;
    // Bob owns organization B and is not in A.
    let (bob_id, bob) = app.active_member(&owner, a_org, "bob@example.com", "viewer").await;
    let b_org = app.create_org(&bob, "B").await;
    let r = app.delete(&format!("/api/v1/orgs/{a_org}/members/{bob_id}")).cookie(&owner).send().await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    let mine = app.create_vpc(&owner, a_org, "mine", "10.71.0.0/24").await;
    let theirs = app.create_vpc(&bob, b_org, "theirs", "10.72.0.0/24").await;
    let clash = app.create_vpc(&bob, b_org, "clash", "10.71.0.0/25").await;

    // Asking: the same answer whether or not B has such a VPC.
    let ask = |peer: Uuid| {
        let (app, owner) = (&app, &owner);
        async move {
            app.post(&format!("/api/v1/orgs/{a_org}/vpcs/{mine}/peerings"))
                .cookie(owner)
                .json(json!({"peer_vpc_id": peer, "peer_org_id": b_org}))
                .send()
                .await
        }
    };
    let real = ask(theirs).await;
    let bogus = ask(Uuid::now_v7()).await;
    let shape = |r: &crate::helpers::TestResponse| {
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        let p = &r.json()["peering"];
        (p["status"].clone(), p["peer_cidr_ipv4_block"].clone(), r.json()["job"].clone())
    };
    assert_eq!(shape(&real), (json!("pending_acceptance"), Value::Null, Value::Null));
    assert_eq!(shape(&real), shape(&bogus));
    let pending = real.uuid_at("/peering/id");
    let bogus_id = bogus.uuid_at("/peering/id");

    // The asking side cannot accept for the other.
    let own_accept = format!("/api/v1/orgs/{a_org}/vpcs/{mine}/peerings/{pending}/accept");
    app.post(&own_accept).cookie(&owner).send().await.assert_problem(StatusCode::FORBIDDEN, "not_the_peer");

    // B sees what was asked of its VPC, with the asking block, and nothing of the bogus one.
    let b_list =
        app.get(&format!("/api/v1/orgs/{b_org}/vpcs/{theirs}/peerings")).cookie(&bob).send().await.json();
    assert_eq!(b_list["items"].as_array().unwrap().len(), 1, "{b_list}");
    assert_eq!(b_list["items"][0]["id"], pending.to_string());
    assert_eq!(b_list["items"][0]["cidr_ipv4_block"], "10.71.0.0/24");
    assert_eq!(b_list["items"][0]["org_id"], a_org.to_string());

    // Accepted, the networks are joined.
    let r = app
        .post(&format!("/api/v1/orgs/{b_org}/vpcs/{theirs}/peerings/{pending}/accept"))
        .cookie(&bob)
        .send()
        .await;
    app.job_succeeded(&bob, b_org, r.accepted("peering").job_id).await;
    let seen = app
        .get(&format!("/api/v1/orgs/{a_org}/vpcs/{mine}/peerings/{pending}"))
        .cookie(&owner)
        .send()
        .await
        .json();
    assert_eq!(seen["status"], "active");
    assert_eq!(seen["peer_cidr_ipv4_block"], "10.72.0.0/24", "shown once accepted");
    let routes = ip(&["-n", &netns(&app, mine), "route"]);
    assert!(routes.contains("10.72.0.0/24"), "{routes}");
    let again = app
        .post(&format!("/api/v1/orgs/{b_org}/vpcs/{theirs}/peerings/{pending}/accept"))
        .cookie(&bob)
        .send()
        .await;
    again.assert_problem(StatusCode::CONFLICT, "peering_not_pending");

    // Overlapping blocks cannot be joined: refused at acceptance, still pending.
    let r = app
        .post(&format!("/api/v1/orgs/{a_org}/vpcs/{mine}/peerings"))
        .cookie(&owner)
        .json(json!({"peer_vpc_id": clash, "peer_org_id": b_org}))
        .send()
        .await;
    let overlapping = r.uuid_at("/peering/id");
    let r = app
        .post(&format!("/api/v1/orgs/{b_org}/vpcs/{clash}/peerings/{overlapping}/accept"))
        .cookie(&bob)
        .send()
        .await;
    r.assert_problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(r.text().contains("overlap"), "{}", r.text());
    // Rejected, the asking side sees it so.
    let r = app
        .post(&format!("/api/v1/orgs/{b_org}/vpcs/{clash}/peerings/{overlapping}/reject"))
        .cookie(&bob)
        .send()
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let seen = app
        .get(&format!("/api/v1/orgs/{a_org}/vpcs/{mine}/peerings/{overlapping}"))
        .cookie(&owner)
        .send()
        .await
        .json();
    assert_eq!(
        (seen["status"].clone(), seen["peer_cidr_ipv4_block"].clone()),
        (json!("rejected"), Value::Null)
    );

    // Every VPC route of A answers Bob 404, as for an organization that does not exist.
    let p = format!("/api/v1/orgs/{a_org}/vpcs/{mine}/peerings/{pending}");
    let calls = [
        app.get(&format!("/api/v1/orgs/{a_org}/vpcs")).cookie(&bob).send().await,
        app.post_vpc(&bob, a_org, "intruder", "10.73.0.0/24").await,
        app.get(&format!("/api/v1/orgs/{a_org}/vpcs/{mine}")).cookie(&bob).send().await,
        app.delete(&format!("/api/v1/orgs/{a_org}/vpcs/{mine}")).cookie(&bob).send().await,
        app.get(&format!("/api/v1/orgs/{a_org}/vpcs/{mine}/peerings")).cookie(&bob).send().await,
        app.post(&format!("/api/v1/orgs/{a_org}/vpcs/{mine}/peerings"))
            .cookie(&bob)
            .json(json!({"peer_vpc_id": theirs}))
            .send()
            .await,
        app.get(&p).cookie(&bob).send().await,
        app.delete(&p).cookie(&bob).send().await,
        app.post(&format!("{p}/accept")).cookie(&bob).send().await,
        app.post(&format!("{p}/reject")).cookie(&bob).send().await,
        // And A's own ids under B's organization are not B's.
        app.get(&format!("/api/v1/orgs/{b_org}/vpcs/{mine}")).cookie(&bob).send().await,
        app.get(&format!("/api/v1/orgs/{b_org}/vpcs/{theirs}/peerings/{bogus_id}")).cookie(&bob).send().await,
    ];
    for r in calls {
        r.assert_problem(StatusCode::NOT_FOUND, "not_found");
    }

    // Either side may delete: a pending one is gone at once, an active one is taken apart.
    let r = app
        .delete(&format!("/api/v1/orgs/{a_org}/vpcs/{mine}/peerings/{bogus_id}"))
        .cookie(&owner)
        .send()
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
    let r = app
        .delete(&format!("/api/v1/orgs/{b_org}/vpcs/{theirs}/peerings/{pending}"))
        .cookie(&bob)
        .send()
        .await;
    app.job_succeeded(&bob, b_org, r.accepted_job()).await;
    assert!(!ip(&["-n", &netns(&app, mine), "route"]).contains("10.72.0.0/24"));
    let audit: Vec<String> =
        sqlx::query_scalar("select action from audit_events where action like 'vpc.%' order by id")
            .fetch_all(&app.db)
            .await
            .unwrap();
    for action in
        ["vpc.peering_requested", "vpc.peering_accepted", "vpc.peering_rejected", "vpc.peering_deleted"]
    {
        assert!(audit.iter().any(|a| a == action), "{action} in {audit:?}");
    }
    for (org, cookie, v) in [(a_org, &owner, mine), (b_org, &bob, theirs), (b_org, &bob, clash)] {
        let r = app.delete(&format!("/api/v1/orgs/{org}/vpcs/{v}")).cookie(cookie).send().await;
        app.wait_job(cookie, org, r.accepted_job()).await;
    }
}

#[tokio::test]
async fn a_crash_while_a_vpc_is_made_leaves_nothing_half_made() {
    // No workers yet: the job waits, as when Berth died before it ran.
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    if !networks_or_refusal(&app, &owner).await {
        return;
    }
    let org = app.owner_org;
    let made = app.post_vpc(&owner, org, "interrupted", "10.74.0.0/24").await.accepted("vpc");
    let (id, job) = (made.id, made.job_id);
    let ns = netns(&app, id);
    // Berth was killed inside the step: the namespace made, nothing in it yet; its worker gone.
    ip(&["netns", "add", &ns]);
    crate::helpers::strand_jobs(&app).await;
    // Left over from other crashes: a namespace of a VPC no table knows, and in this one a
    // peering link that no peering knows.
    let stray = netns(&app, Uuid::now_v7());
    ip(&["netns", "add", &stray]);
    ip(&["-n", &ns, "link", "add", "pr-0123456789ab", "type", "veth", "peer", "name", "pr-ba9876543210"]);

    // Restarted: the reconcile removes what nothing knows, and the job finishes what it began.
    berth::jobs::reconcile::at_start(&app.state.job_env()).await.unwrap();
    assert!(!namespaces().contains(&stray), "the unknown network is gone");
    let app = app.with_workers(1).await;
    let done = app.wait_job(&owner, org, job).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["attempts"], 2);
    let v = app.get(&format!("/api/v1/orgs/{org}/vpcs/{id}")).cookie(&owner).send().await.json();
    assert_eq!(v["status"], "available");
    let links: Vec<String> = ip(&["-n", &ns, "-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1).map(|n| n.split('@').next().unwrap().to_owned()))
        .collect();
    assert_eq!(links, ["lo", "vpc0"], "the network whole, the stray link gone");
    assert!(ip(&["-n", &ns, "-4", "addr", "show", "vpc0"]).contains("inet 10.74.0.1/24"));
    let ours: Vec<String> =
        namespaces().into_iter().filter(|n| n.starts_with(&ns[..ns.len() - 32])).collect();
    assert_eq!(ours, std::slice::from_ref(&ns), "this Berth's networks: exactly its VPC's");

    app.delete_vpc(&owner, org, id).await;
    assert!(!namespaces().contains(&ns));
}

#[tokio::test]
async fn a_private_store_switches_over_and_fails_over_inside_its_vpc() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    if !networks_or_refusal(&app, &owner).await {
        return;
    }
    let org = app.owner_org;
    let vpc = app.create_vpc(&owner, org, "net-ha", "10.63.0.0/24").await;
    let ns = netns(&app, vpc);
    let ready = app.ready_store(&owner, org, private_store("inner-ha", 2, vpc)).await;
    let (primary, replica) = (ready.node("primary").uuid_at("/id"), ready.node("replica").uuid_at("/id"));
    let password = ready.password.clone();
    let uri = ready.view["connection"]["multi_host_uri"].as_str().unwrap().to_owned();
    assert!(uri.contains("10.63.0.2:") && uri.contains("10.63.0.3:"), "{uri}");
    psql_uri_in(&ns, &uri, &password, "create table t as select 1 as x").await.unwrap();

    // A switchover: the replica, at its VPC address, becomes the primary.
    let r = app
        .post(&format!("{}/switchover", ready.path()))
        .cookie(&owner)
        .json(json!({"candidate_node_id": replica}))
        .send()
        .await;
    app.job_succeeded(&owner, org, r.accepted_job()).await;
    let t = app.get(&format!("{}/topology", ready.path())).cookie(&owner).send().await.json();
    assert_eq!(t["primary_node_id"], replica.to_string(), "{t}");
    assert_eq!(
        psql_uri_in(&ns, &uri, &password, "insert into t values (2); select count(*) from t").await.unwrap(),
        "2"
    );
    let spec = |node: Uuid| {
        let (db, org) = (app.db.clone(), app.owner_org);
        let plane = app.state.plane.clone();
        let now = app.clock_now();
        async move { plane.node_spec(&db, org.into(), ready.id.into(), node.into(), now).await.unwrap().unwrap() }
    };
    let old = app.state.plane.driver.replication(&spec(primary).await).await.unwrap().expect("it answers");
    let receiver = old.receiver.expect("the old primary streams");
    assert_eq!(receiver.sender_host.as_deref(), Some("10.63.0.3"), "from the new primary's VPC address");

    // The old primary has the row the new one took (streaming is asynchronous).
    let old_port = ready.node("primary")["port"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while psql_in(&ns, "10.63.0.2", old_port, &password, "select count(*) from t").await.as_deref() != Ok("2")
    {
        assert!(Instant::now() < deadline, "the old primary never had the new row");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // A failover: the new primary killed, the old one takes over again, inside the VPC.
    sqlx::query("update stores set failover_delay_seconds = 1 where id = $1")
        .bind(ready.id)
        .execute(&app.db)
        .await
        .unwrap();
    let monitor = tokio::spawn(
        berth::jobs::monitor::Monitor::new(
            app.state.job_env(),
            berth::jobs::monitor::MonitorSettings {
                probe_interval: Duration::from_millis(200),
                max_failovers: 3,
                failover_window: Duration::from_secs(3600),
            },
        )
        .run(),
    );
    let pgdata =
        app.nodes_root.join("stores").join(ready.id.to_string()).join(replica.to_string()).join("data");
    let pid = crate::helpers::postmaster_of(&pgdata).expect("the primary's postmaster");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while psql_uri_in(&ns, &uri, &password, "insert into t values (3)").await.is_err() {
        assert!(Instant::now() < deadline, "no primary took writes inside the VPC after the failover");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    monitor.abort();
    assert_eq!(psql_uri_in(&ns, &uri, &password, "select count(*) from t").await.unwrap(), "3");
    let t = app.get(&format!("{}/topology", ready.path())).cookie(&owner).send().await.json();
    assert_eq!(t["primary_node_id"], primary.to_string(), "{t}");
    let jobs = app.get(&format!("{}/jobs", ready.path())).cookie(&owner).send().await.json();
    let failover =
        jobs["items"].as_array().unwrap().iter().find(|j| j["kind"] == "failover").expect("a failover");
    app.job_succeeded(&owner, org, failover.uuid_at("/id")).await;
    app.delete_store(&owner, org, ready.id).await;
    app.delete_vpc(&owner, org, vpc).await;
}
