//! `berthctl` for the rest of the API: databases and their users, the firewall, parameter
//! groups, backups and restores, VPCs, the organization, credentials, the audit trail; token
//! renewal, profiles, and a server of another major version.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::backups::{Source, count, store_with_rows};
use crate::cli::Cli;
use crate::helpers::{OWNER_PASSWORD, TestApp, node_connect};

fn words(s: &str) -> Vec<&str> {
    s.split_whitespace().collect()
}

fn pw() -> Option<String> {
    Some(format!("{OWNER_PASSWORD}\n"))
}

#[tokio::test]
async fn databases_users_the_firewall_and_parameter_groups_from_the_cli() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let cli = Cli::serve(&app).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    assert_eq!(cli.login("work").await.code, 0);
    let store = app.new_ready_store(&owner, "cli-dbs", 1).await;
    let (port, base) = (store.port(), store.path());

    let r = cli.ok(&["db", "create", "cli-dbs", "orders", "-o", "json"], None).await;
    assert_eq!(r.json()["name"], "orders");
    let r = cli.run(&["db", "list", "cli-dbs", "--no-header", "--format", "name"], None).await;
    assert!(words(&r.stdout).contains(&"orders"), "{}", r.stdout);

    // A user with a generated password, printed once, that reaches its database.
    let args = ["db-user", "create", "cli-dbs", "app", "--privileges", "readwrite", "--database", "orders"];
    let r = cli.ok(&[&args[..], &["-o", "json"]].concat(), None).await;
    let made = r.json();
    assert_eq!(made["user"]["username"], "app");
    let first = made["password"].as_str().unwrap().to_string();
    node_connect(port, "app", &first, "orders").await.expect("the printed password works");
    // A password of the user's own, from standard input; the old one stops working.
    let r = cli
        .ok(
            &["db-user", "rotate-password", "cli-dbs", "app", "--password-stdin", "-o", "json"],
            Some("a-chosen-password-42\n"),
        )
        .await;
    assert_eq!(r.json()["password"], "a-chosen-password-42");
    assert!(node_connect(port, "app", &first, "orders").await.is_err(), "the old password is refused");
    node_connect(port, "app", "a-chosen-password-42", "orders").await.expect("the new one works");
    let r = cli.run(&["db-user", "list", "cli-dbs", "-o", "json"], None).await;
    let api = app.get(&format!("{base}/db-users")).cookie(&owner).send().await.json();
    assert_eq!(r.json(), api["items"], "the API's items");

    // Dropping asks first; without a terminal, only --yes drops.
    let r = cli.run(&["db", "drop", "cli-dbs", "orders"], None).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    cli.ok(&["db-user", "drop", "cli-dbs", "app", "--yes"], None).await;
    assert!(node_connect(port, "app", "a-chosen-password-42", "orders").await.is_err(), "the user is gone");
    cli.ok(&["db", "drop", "cli-dbs", "orders", "--yes"], None).await;
    let r = cli.run(&["db", "list", "cli-dbs", "--no-header", "--format", "name"], None).await;
    assert!(!words(&r.stdout).contains(&"orders"), "{}", r.stdout);

    // The firewall: a rule added, listed as the API lists it, and removed by its source.
    let r = cli
        .ok(&["firewall", "add", "cli-dbs", "203.0.113.0/24", "--description", "office", "-o", "json"], None)
        .await;
    assert_eq!(r.json()["source"], "203.0.113.0/24");
    let listed = cli.run(&["firewall", "list", "cli-dbs", "-o", "json"], None).await.json();
    let api = app.get(&format!("{base}/firewall-rules")).cookie(&owner).send().await.json();
    assert_eq!(listed, api["items"]);
    assert!(listed.as_array().unwrap().iter().any(|r| r["description"] == "office"), "{listed}");
    cli.ok(&["firewall", "remove", "cli-dbs", "203.0.113.0/24"], None).await;
    let api = app.get(&format!("{base}/firewall-rules")).cookie(&owner).send().await.json();
    assert!(api["items"].as_array().unwrap().iter().all(|r| r["source"] != "203.0.113.0/24"), "{api}");

    // A parameter group made, applied with --wait, and in force on the server.
    let version = store.view["version"].as_str().unwrap();
    let r = cli
        .ok(
            &[
                "param-group",
                "create",
                "cli-oltp",
                "--version",
                version,
                "--set",
                "work_mem=2MB",
                "-o",
                "json",
            ],
            None,
        )
        .await;
    let group = r.json()["id"].as_str().unwrap().to_string();
    let r = cli.ok(&["param-group", "apply", "cli-dbs", "cli-oltp", "--wait", "-o", "json"], None).await;
    let job = r.json();
    assert_eq!(job["status"], "succeeded", "{job}");
    let shown = cli.run(&["parameters", "show", "cli-dbs", "-o", "json"], None).await.json();
    assert_eq!(shown["group_id"], group.as_str());
    let mut c = crate::backups::conn(port, &store.password).await;
    let work_mem: String = sqlx::query_scalar("show work_mem").fetch_one(&mut c).await.unwrap();
    assert_eq!(work_mem, "2MB");
    // An update keeps what it does not name.
    let r = cli
        .ok(&["param-group", "update", "cli-oltp", "--set", "max_connections=60", "-o", "json"], None)
        .await;
    let params = &r.json()["parameters"];
    assert!(params["work_mem"].is_string() && params["max_connections"].is_string(), "{params}");
    let r = cli.run(&["param-group", "delete", "cli-oltp"], None).await;
    assert_eq!(r.code, 2, "asks first: {}", r.stderr);
    let catalog = cli.run(&["parameters", "catalog", "--version", version, "-o", "json"], None).await.json();
    assert!(catalog.as_array().unwrap().iter().any(|p| p["name"] == "work_mem"), "{catalog}");

    // Statistics as the API gives them: the latest, and one metric over time.
    let env = app.state.job_env();
    for _ in 0..2 {
        berth::jobs::stats::collect_all(&env, time::Duration::days(7)).await.unwrap();
        app.clock.advance(time::Duration::seconds(60));
    }
    let r = cli.run(&["store", "stats", "cli-dbs", "-o", "json"], None).await;
    let api = app.get(&format!("{base}/stats/summary")).cookie(&owner).send().await.json();
    assert_eq!(r.json(), api["items"], "{}", r.stderr);
    let r = cli.run(&["store", "stats", "cli-dbs", "--metric", "connections", "-o", "json"], None).await;
    let api = app.get(&format!("{base}/stats?metric=connections")).cookie(&owner).send().await.json();
    assert_eq!(r.json(), api, "{}", r.stderr);
    assert!(!api["items"][0]["points"].as_array().unwrap().is_empty(), "{api}");
    let r = cli.run(&["store", "stats", "cli-dbs", "--metric", "nonsense"], None).await;
    assert_eq!(r.code, 1, "the server's refusal: {}", r.stderr);

    // The apply job's log and the store's jobs.
    let job_id = job["id"].as_str().unwrap();
    let log = cli.run(&["job", "log", job_id, "-o", "json"], None).await.json();
    let api = app.get(&format!("/api/v1/orgs/{org}/jobs/{job_id}")).cookie(&owner).send().await.json();
    assert_eq!(log, api["log"]);
    assert!(!log.as_array().unwrap().is_empty());
    let r = cli.run(&["job", "log", job_id, "--follow"], None).await;
    assert_eq!(r.code, 0, "a finished job's log ends at once: {}", r.stderr);
    assert_eq!(r.stdout.lines().count(), log.as_array().unwrap().len());
    let jobs = cli.run(&["job", "list", "--store", "cli-dbs", "-o", "json"], None).await.json();
    assert!(jobs.as_array().unwrap().iter().any(|j| j["id"] == job_id), "{jobs}");
    assert!(jobs.as_array().unwrap().iter().all(|j| j["store_id"] == store.id.to_string()));
}

#[tokio::test]
async fn backups_are_downloaded_checked_scheduled_and_restored_from_the_cli() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let cli = Cli::serve(&app).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    assert_eq!(cli.login("work").await.code, 0);
    let Source { id, password, port, base } = store_with_rows(&app, &owner, "cli-bk", 100).await;

    let r = cli.ok(&["backup", "create", "cli-bk", "--kind", "full", "--wait", "-o", "json"], None).await;
    let made = r.json();
    assert_eq!(made["status"], "succeeded", "the backup once taken: {made}");
    let listed = cli.run(&["backup", "list", "cli-bk", "-o", "json"], None).await.json();
    let backup = listed[0].clone();
    assert_eq!(backup, made, "{listed}");
    let backup_id = backup["id"].as_str().unwrap().to_string();

    // The download is the archive, checked as it comes.
    let to = cli.home.path().join("base.tar.gz");
    cli.ok(&["backup", "download", "cli-bk", &backup_id, "--to", to.to_str().unwrap()], None).await;
    let bytes = std::fs::read(&to).unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "a gzip archive");
    assert_eq!(hex::encode(Sha256::digest(&bytes)), backup["sha256"].as_str().unwrap());
    let r = cli.run(&["backup", "verify", "cli-bk", &backup_id, "-o", "json"], None).await;
    assert_eq!((r.code, &r.json()["valid"]), (0, &json!(true)), "{}", r.stderr);

    cli.ok(
        &[
            "backup",
            "schedule",
            "cli-bk",
            "set",
            "--full-cron",
            "0 4 * * *",
            "--keep-count",
            "3",
            "-o",
            "json",
        ],
        None,
    )
    .await;
    let shown = cli.run(&["backup", "schedule", "cli-bk", "-o", "json"], None).await.json();
    let api = app.get(&format!("{base}/backup-schedule")).cookie(&owner).send().await.json();
    assert_eq!(shown, api);
    assert_eq!((&shown["full_cron"], &shown["retention"]["count"]), (&json!("0 4 * * *"), &json!(3)));
    let w = cli.run(&["backup", "restore-window", "cli-bk", "-o", "json"], None).await.json();
    assert!(w["earliest"].is_string(), "{w}");

    // A restore asks first; with --yes, the rows written after the backup are gone.
    sqlx::raw_sql("insert into t values (-1)")
        .execute(&mut crate::backups::conn(port, &password).await)
        .await
        .unwrap();
    let r = cli.run(&["backup", "restore", "cli-bk", "--backup", &backup_id], None).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(count(port, &password).await, 101, "nothing restored");
    let r = cli
        .ok(&["backup", "restore", "cli-bk", "--backup", &backup_id, "--yes", "--wait", "-o", "json"], None)
        .await;
    assert_eq!(r.json()["kind"], "restore");
    app.wait_store(&owner, org, id, "available").await;
    assert_eq!(count(port, &password).await, 100);

    // A fork from the backup: a new store holding what the backup held.
    let r = cli
        .ok(
            &[
                "store",
                "create",
                "cli-fork",
                "--size",
                "tiny",
                "--from-store",
                "cli-bk",
                "--from-backup",
                &backup_id,
                "--wait",
                "-o",
                "json",
            ],
            None,
        )
        .await;
    let fork = r.json();
    let fork_id = fork["id"].as_str().unwrap();
    let fork_port = fork["nodes"][0]["port"].as_i64().unwrap();
    let revealed = app
        .post(&format!("/api/v1/orgs/{org}/stores/{fork_id}/credentials/reveal"))
        .cookie(&owner)
        .send()
        .await
        .json();
    assert_eq!(count(fork_port, revealed["password"].as_str().unwrap()).await, 100);

    // An archive that no longer matches its checksum is not kept, and verify fails (exit 3).
    let path = app.state.plane.backups.readable(&format!("{id}/{backup_id}.tar.gz")).await.unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let bad = cli.home.path().join("bad.tar.gz");
    let r = cli.run(&["backup", "download", "cli-bk", &backup_id, "--to", bad.to_str().unwrap()], None).await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("SHA-256"), "{}", r.stderr);
    let left: Vec<_> = std::fs::read_dir(cli.home.path()).unwrap().filter_map(|e| e.ok()).collect();
    assert!(
        left.iter().all(|e| !e.file_name().to_string_lossy().starts_with("bad")),
        "nothing kept of a bad download"
    );
    let r = cli.run(&["backup", "verify", "cli-bk", &backup_id], None).await;
    assert_eq!(r.code, 3, "{}", r.stderr);
}

#[tokio::test]
async fn the_organization_members_credentials_and_audit_trail_from_the_cli() {
    let app = TestApp::spawn().await;
    let cli = Cli::serve(&app).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    assert_eq!(cli.login("work").await.code, 0);

    let orgs = cli.run(&["org", "list", "-o", "json"], None).await.json();
    assert!(orgs.as_array().unwrap().iter().any(|o| o["id"] == org.to_string()), "{orgs}");
    let got = cli.run(&["org", "get", "-o", "json"], None).await.json();
    let api = app.get(&format!("/api/v1/orgs/{org}")).cookie(&owner).send().await.json();
    assert_eq!((&got["id"], &got["name"]), (&api["id"], &api["name"]));
    let r =
        cli.run(&["org", "create", "second-org", "--password-stdin", "-o", "json"], pw().as_deref()).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!((&r.json()["name"], &r.json()["role"]), (&json!("second-org"), &json!("owner")));

    // Members: an invitation for an address, an account at once with an initial password.
    let r = cli.ok(&["member", "add", "invited@example.com", "--role", "member", "-o", "json"], None).await;
    let invitation = r.json()["id"].as_str().unwrap().to_string();
    let listed = cli.run(&["invitation", "list", "-o", "json"], None).await.json();
    assert!(listed.as_array().unwrap().iter().any(|i| i["id"] == invitation.as_str()), "{listed}");
    assert_eq!(cli.run(&["invitation", "revoke", &invitation], None).await.code, 0);
    let initial = cli.home.path().join("initial");
    std::fs::write(&initial, "an-initial-password-7\n").unwrap();
    let r = cli
        .ok(
            &[
                "member",
                "add",
                "new@example.com",
                "--role",
                "viewer",
                "--initial-password-file",
                initial.to_str().unwrap(),
                "--password-stdin",
                "-o",
                "json",
            ],
            pw().as_deref(),
        )
        .await;
    assert_eq!(r.json()["member"]["must_change_password"], true);
    app.login("new@example.com", "an-initial-password-7").await;
    let r = cli.run(&["member", "set-role", "new@example.com", "member", "-o", "json"], None).await;
    assert_eq!((r.code, &r.json()["role"]), (0, &json!("member")), "{}", r.stderr);
    // Making and unmaking an owner take the password session, as in the browser.
    let owner_args = ["member", "set-role", "new@example.com", "owner", "--password-stdin", "-o", "json"];
    let r = cli.run(&owner_args, pw().as_deref()).await;
    assert_eq!((r.code, &r.json()["role"]), (0, &json!("owner")), "{}", r.stderr);
    let r = cli.run(&["member", "set-role", "new@example.com", "admin"], None).await;
    assert_eq!(r.code, 2, "unmaking an owner asks for the password: {}", r.stderr);
    cli.ok(&["member", "set-role", "new@example.com", "admin", "--password-stdin"], pw().as_deref()).await;
    assert_eq!(cli.run(&["member", "remove", "new@example.com"], None).await.code, 2);
    assert_eq!(cli.run(&["member", "remove", "new@example.com", "--yes"], None).await.code, 0);
    let r = cli.run(&["member", "list", "--no-header", "--format", "email"], None).await;
    assert!(!words(&r.stdout).contains(&"new@example.com"), "{}", r.stdout);

    // A credential for CI: shown once, limited to its scope, and revoked.
    let r = cli
        .ok(
            &[
                "credential",
                "create",
                "ci-pipeline",
                "--scope",
                "stores:read",
                "--password-stdin",
                "-o",
                "json",
            ],
            pw().as_deref(),
        )
        .await;
    let made = r.json();
    assert_eq!(made["scopes"], json!(["stores:read"]));
    let (id, secret) = (made["client_id"].as_str().unwrap(), made["client_secret"].as_str().unwrap());
    let ci = Cli { home: tempfile::tempdir().unwrap(), base: cli.base.clone() };
    let mut env =
        vec![("BERTH_URL", cli.base.as_str()), ("BERTH_CLIENT_ID", id), ("BERTH_CLIENT_SECRET", secret)];
    let r = ci.run_env(&["store", "list"], None, &env).await;
    assert_eq!(r.code, 2, "without org:read it cannot find its organization: {}", r.stderr);
    assert!(r.stderr.contains("--org"), "{}", r.stderr);
    let org_id = org.to_string();
    env.push(("BERTH_ORG", &org_id));
    let r = ci.run_env(&["store", "list"], None, &env).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = ci.run_env(&["db", "create", "nowhere", "x"], None, &env).await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    let listed =
        cli.run(&["credential", "list", "--password-stdin", "-o", "json"], pw().as_deref()).await.json();
    assert!(listed.as_array().unwrap().iter().any(|c| c["client_id"] == id), "{listed}");
    cli.ok(&["credential", "revoke", id, "--yes", "--password-stdin"], pw().as_deref()).await;
    let r = ci.run_env(&["store", "list"], None, &env).await;
    assert_eq!(r.code, 1, "a revoked credential: {}", r.stderr);
    // Without the password there is no session to manage credentials with.
    let r = cli.run(&["credential", "list"], None).await;
    assert_eq!(r.code, 2, "{}", r.stderr);

    // The audit trail holds what was done, and its chain holds until it is tampered with.
    let r = cli
        .ok(&["audit", "list", "--action", "credential.", "--no-header", "--format", "action"], None)
        .await;
    let actions = words(&r.stdout);
    assert!(
        actions.contains(&"credential.created") && actions.contains(&"credential.revoked"),
        "{actions:?}"
    );
    let r = cli.run(&["audit", "verify", "-o", "json"], None).await;
    assert_eq!((r.code, &r.json()["valid"]), (0, &json!(true)), "{}", r.stderr);
    sqlx::query("update audit_events set actor = 'someone-else@example.com' where id = (select min(id) from audit_events where org_id = $1)")
        .bind(org)
        .execute(&app.db)
        .await
        .unwrap();
    let r = cli.run(&["audit", "verify"], None).await;
    assert_eq!(r.code, 3, "{}", r.stderr);

    // The service and the catalog.
    let s = cli.run(&["system", "status", "-o", "json"], None).await.json();
    assert_eq!(s["database"]["reachable"], true, "{s}");
    let q = cli.run(&["quotas", "-o", "json"], None).await.json();
    assert!(q.as_array().unwrap().iter().any(|q| q["quota"] == "stores"), "{q}");
    let r = cli.run(&["ca"], None).await;
    assert!(r.stdout.starts_with("-----BEGIN CERTIFICATE-----"), "{}", r.stdout);
    let o = cli.run(&["deploy-options", "-o", "json"], None).await.json();
    let api = app.get("/api/v1/content/deploy-options").cookie(&owner).send().await.json();
    assert_eq!(o, api);
}

#[tokio::test]
async fn an_account_changes_its_password_and_answers_an_invitation_from_the_cli() {
    let app = TestApp::spawn().await;
    let cli = Cli::serve(&app).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let email = "dana@example.com";
    app.post(&format!("/api/v1/orgs/{org}/members"))
        .cookie(&owner)
        .json(json!({"email": email, "role": "member", "password": "initial-password-0001"}))
        .send()
        .await;

    // The initial password is changed first, without any profile: the account's own call.
    let base = cli.base.clone();
    let args = ["password", "--url", &base, "--email", email, "--password-stdin"];
    let r = cli.ok(&args, Some("initial-password-0001\nfirst-own-password-1\n")).await;
    assert!(r.stderr.contains("berthctl login"), "no profile of the account to renew: {}", r.stderr);
    let login = ["login", "--url", &base, "--email", email, "--password-stdin", "--profile", "dana"];
    cli.ok(&login, Some("first-own-password-1\n")).await;
    let me = cli.run(&["whoami", "-o", "json"], None).await.json();
    assert_eq!(me["login"], email, "{me}");

    // Invited to a second organization: listed, and accepted.
    let second = app.post("/api/v1/orgs").cookie(&owner).json(json!({"name": "second"})).send().await.json();
    let second = second["id"].as_str().unwrap().to_string();
    let invited = app
        .post(&format!("/api/v1/orgs/{second}/members"))
        .cookie(&owner)
        .json(json!({"email": email, "role": "viewer"}))
        .send()
        .await
        .json();
    let invitation = invited["id"].as_str().unwrap();
    let pw = Some("first-own-password-1\n");
    let r = cli
        .run(&["invitation", "mine", "--password-stdin", "--no-header", "--format", "id,org_name"], pw)
        .await;
    assert_eq!((r.code, words(&r.stdout)), (0, vec![invitation, "second"]), "{}", r.stderr);
    let r = cli.run(&["invitation", "accept", invitation, "--password-stdin", "-o", "json"], pw).await;
    assert_eq!((r.code, &r.json()["status"]), (0, &json!("accepted")), "{}", r.stderr);
    let members = app.get(&format!("/api/v1/orgs/{second}/members")).cookie(&owner).send().await.json();
    assert!(members["items"].as_array().unwrap().iter().any(|m| m["email"] == email), "{members}");

    // A new password revokes every credential the account made; the profile signs in again.
    let before = tokens(&cli, "dana")["client_id"].as_str().unwrap().to_string();
    cli.ok(&["password", "--password-stdin"], Some("first-own-password-1\nsecond-own-password-2\n")).await;
    let after = tokens(&cli, "dana")["client_id"].as_str().unwrap().to_string();
    assert_ne!(before, after, "a new credential for the profile");
    let listed = app.get(&format!("/api/v1/orgs/{org}/credentials")).cookie(&owner).send().await.json();
    let old = listed["items"].as_array().unwrap().iter().find(|c| c["client_id"] == before.as_str()).unwrap();
    assert!(old["revoked_at"].is_string(), "{old}");
    assert_eq!(cli.run(&["whoami"], None).await.code, 0, "the profile works on");
    app.login(email, "second-own-password-2").await;
    // Mistyped on a terminal or too short: the server's rules, nothing changed.
    let r = cli.run(&["password", "--password-stdin"], Some("second-own-password-2\nshort\n")).await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    app.login(email, "second-own-password-2").await;
    let scopes = cli.run(&["credential", "scopes", "-o", "json"], None).await.json();
    assert!(scopes.as_array().unwrap().iter().any(|s| s["name"] == "stores:read"), "{scopes}");
}

/// The profile's tokens as the credentials file keeps them.
fn tokens(cli: &Cli, profile: &str) -> toml::Table {
    let file: toml::Table = toml::from_str(&std::fs::read_to_string(cli.credentials()).unwrap()).unwrap();
    file["profiles"][profile].as_table().unwrap().clone()
}

fn set_tokens(cli: &Cli, profile: &str, access: &str, expires_at: i64) {
    let mut file: toml::Table = toml::from_str(&std::fs::read_to_string(cli.credentials()).unwrap()).unwrap();
    let p = file["profiles"][profile].as_table_mut().unwrap();
    p.insert("access_token".into(), access.into());
    p.insert("access_expires_at".into(), expires_at.into());
    std::fs::write(cli.credentials(), toml::to_string(&file).unwrap()).unwrap();
}

#[tokio::test]
async fn tokens_are_renewed_when_expired_or_refused_and_profiles_switch() {
    let app = TestApp::spawn().await;
    let cli = Cli::serve(&app).await;
    assert_eq!(cli.login("a").await.code, 0);
    assert_eq!(cli.login("b").await.code, 0);
    let r = cli.run(&["profile", "list", "--no-header", "--format", "name,current"], None).await;
    assert_eq!(words(&r.stdout), ["a", "false", "b", "true"], "the last login is current");
    cli.ok(&["profile", "use", "a"], None).await;
    let shown = cli.run(&["profile", "show", "-o", "json"], None).await.json();
    assert_eq!((&shown["name"], &shown["current"]), (&json!("a"), &json!(true)));
    assert!(shown.get("client_secret").is_none(), "never the secret: {shown}");
    let shown = cli.run(&["profile", "show", "b", "-o", "json"], None).await.json();
    assert_eq!(shown["current"], false);
    assert_ne!(cli.run(&["profile", "use", "nobody"], None).await.code, 0);

    assert_eq!(cli.run(&["store", "list"], None).await.code, 0);
    let first = tokens(&cli, "a");
    let access = first["access_token"].as_str().unwrap().to_string();
    assert_eq!(cli.run(&["store", "list"], None).await.code, 0);
    assert_eq!(tokens(&cli, "a")["access_token"].as_str(), Some(access.as_str()), "a live token is reused");

    // Expired by the clock: renewed with the refresh token before the call.
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    set_tokens(&cli, "a", &access, now - 60);
    cli.ok(&["store", "list"], None).await;
    let renewed = tokens(&cli, "a");
    assert_ne!(renewed["access_token"].as_str(), Some(access.as_str()));
    assert!(renewed["access_expires_at"].as_integer().unwrap() > now);
    assert_ne!(renewed["refresh_token"], first["refresh_token"], "the refresh token rotates");
    assert_eq!(app.bearer_status(&access).await, axum::http::StatusCode::OK, "the old token was not revoked");

    // A token the server refuses although the clock says it is live: one retry with a new one.
    set_tokens(&cli, "a", "not-a-token", now + 3000);
    cli.ok(&["store", "list"], None).await;
    let again = tokens(&cli, "a")["access_token"].as_str().unwrap().to_string();
    assert_ne!(again, "not-a-token");
    assert_eq!(app.bearer_status(&again).await, axum::http::StatusCode::OK);
}

#[tokio::test]
async fn a_server_of_another_major_version_is_refused_before_any_other_call() {
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    let router = axum::Router::new()
        .route(
            "/api/version",
            axum::routing::get(|| async {
                axum::Json(json!({
                    "version": "99.0.0", "git_commit": "x", "build_date": "2099-01-01",
                    "api_version": "99", "min_client_version": "99.0.0"
                }))
            }),
        )
        .fallback(move |uri: axum::http::Uri| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(uri.path().to_string());
                axum::http::StatusCode::NOT_FOUND
            }
        });
    let cli = Cli::at(router).await;
    let env = [("BERTH_URL", cli.base.as_str()), ("BERTH_TOKEN", "any")];
    for args in [&["store", "list"][..], &["version"], &["api", "GET", "/api/v1/orgs"]] {
        let r = cli.run_env(args, None, &env).await;
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains("another major version (99.0.0)"), "{}", r.stderr);
    }
    assert!(seen.lock().unwrap().is_empty(), "no call past /api/version: {:?}", seen.lock().unwrap());
    let r: Value = {
        let r = cli
            .run(&["login", "--url", &cli.base, "--email", "a@example.com", "--password-stdin"], Some("x\n"))
            .await;
        assert_eq!(r.code, 1, "{}", r.stderr);
        json!(r.stderr)
    };
    assert!(r.as_str().unwrap().contains("another major version"), "{r}");
    assert!(seen.lock().unwrap().is_empty(), "no password sent: {:?}", seen.lock().unwrap());
}

#[tokio::test]
async fn vpcs_and_peerings_from_the_cli() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let owner = app.login_owner().await;
    if !crate::vpcs::networks_or_refusal(&app, &owner).await {
        return;
    }
    let cli = Cli::serve(&app).await;
    assert_eq!(cli.login("work").await.code, 0);
    for (name, cidr) in [("cli-a", "10.71.0.0/24"), ("cli-b", "10.72.0.0/24")] {
        let r = cli.ok(&["vpc", "create", name, "--cidr", cidr, "--wait", "-o", "json"], None).await;
        assert_eq!(r.json()["status"], "available", "the VPC once made");
    }
    let r = cli.run(&["vpc", "list", "--no-header", "--format", "name,status"], None).await;
    assert_eq!(words(&r.stdout), ["cli-a", "available", "cli-b", "available"], "{}", r.stdout);
    // A private store inside a VPC, by the VPC's name.
    let r = cli
        .ok(
            &["store", "create", "cli-private", "--size", "tiny", "--vpc", "cli-a", "--wait", "-o", "json"],
            None,
        )
        .await;
    let private = r.json();
    let a = cli.run(&["vpc", "get", "cli-a", "-o", "json"], None).await.json();
    assert_eq!(
        (&private["network"]["type"], &private["network"]["vpc_id"]),
        (&json!("private"), &a["id"]),
        "{private}"
    );
    assert!(private["nodes"][0]["host"].as_str().unwrap().starts_with("10.71.0."), "{private}");
    assert_eq!(cli.run(&["store", "delete", "cli-private", "--yes", "--wait"], None).await.code, 0);

    let r = cli.ok(&["peering", "create", "cli-a", "cli-b", "-o", "json"], None).await;
    let accepted = r.json();
    assert!(
        accepted["peering"]["id"].is_string() && accepted["job"]["id"].is_string(),
        "the API's body: {accepted}"
    );
    cli.ok(&["job", "wait", accepted["job"]["id"].as_str().unwrap()], None).await;
    let listed = cli.run(&["peering", "list", "cli-a", "-o", "json"], None).await.json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["status"], "active", "{listed}");
    let peering = listed[0]["id"].as_str().unwrap().to_string();
    assert_eq!(cli.run(&["peering", "delete", "cli-a", &peering], None).await.code, 2, "asks first");
    cli.ok(&["peering", "delete", "cli-a", &peering, "--yes", "--wait"], None).await;
    for name in ["cli-a", "cli-b"] {
        cli.ok(&["vpc", "delete", name, "--yes", "--wait"], None).await;
    }
}

#[tokio::test]
async fn man_pages_and_completions_cover_every_command() {
    let cli = Cli::at(axum::Router::new()).await;
    let dir = cli.home.path().join("man");
    cli.ok(&["man", "--dir", dir.to_str().unwrap()], None).await;
    for page in ["berthctl.1", "berthctl-backup.1", "berthctl-backup-restore.1", "berthctl-db-user-create.1"]
    {
        let text = std::fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page} is a man page");
    }
    let restore = std::fs::read_to_string(dir.join("berthctl-backup-restore.1")).unwrap();
    assert!(restore.contains("to\\-time"), "the flags are documented: {restore}");
    for shell in ["bash", "zsh", "fish"] {
        let r = cli.ok(&["completion", shell], None).await;
        for word in ["db-user", "rotate-password", "restore-window", "param-group", "peering"] {
            assert!(r.stdout.contains(word), "{shell} completes {word}");
        }
    }
}
