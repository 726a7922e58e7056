//! `berthctl` run as a person or a script would, against a real Berth on a TCP port.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use axum::http::StatusCode;
use serde_json::Value;

use crate::helpers::{OWNER_EMAIL, OWNER_PASSWORD, TestApp, test_auth_config};

#[path = "../../src/bin/berthctl/endpoints.rs"]
#[allow(dead_code)]
mod endpoints;

/// A home of its own for the CLI, and the server it talks to.
pub struct Cli {
    pub home: tempfile::TempDir,
    pub base: String,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

impl Cli {
    pub async fn serve(app: &TestApp) -> Self {
        Self::at(app.router.clone()).await
    }

    /// A home of its own for the CLI, and `router` served on a port of its own.
    pub async fn at(router: axum::Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let router = router.into_make_service_with_connect_info::<SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { home: tempfile::tempdir().unwrap(), base }
    }

    pub fn credentials(&self) -> PathBuf {
        self.home.path().join(".config/berthctl/credentials.toml")
    }

    /// [`Cli::run`], which must succeed (exit 0).
    pub async fn ok(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let r = self.run(args, stdin).await;
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        r
    }

    pub async fn run(&self, args: &[&str], stdin: Option<&str>) -> Run {
        self.run_env(args, stdin, &[]).await
    }

    /// berthctl in this home, with nothing of the caller's environment that it reads.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_berthctl"));
        cmd.args(args)
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join(".config"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for k in [
            "BERTH_URL",
            "BERTH_TOKEN",
            "BERTH_CLIENT_ID",
            "BERTH_CLIENT_SECRET",
            "BERTH_PROFILE",
            "BERTH_ORG",
        ] {
            cmd.env_remove(k);
        }
        cmd
    }

    pub async fn run_env(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command(args);
        cmd.envs(env.iter().copied());
        let input = stdin.unwrap_or_default().to_string();
        // The server runs on this test's runtime: the CLI waits elsewhere.
        let out = tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut child = cmd.spawn().expect("berthctl runs");
            child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into(),
            stderr: String::from_utf8_lossy(&out.stderr).into(),
        }
    }

    /// Runs the command until its standard error shows `seen`, then presses Ctrl-C.
    async fn interrupted(&self, args: &[&str], seen: &str) -> Run {
        use std::io::{BufRead, Read};
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::null());
        let seen = seen.to_string();
        tokio::task::spawn_blocking(move || {
            let mut child = cmd.spawn().expect("berthctl runs");
            let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
            let mut stderr = String::new();
            while !stderr.contains(&seen) {
                assert!(err.read_line(&mut stderr).unwrap() > 0, "ended before {seen:?}: {stderr}");
            }
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
            err.read_to_string(&mut stderr).unwrap();
            let out = child.wait_with_output().unwrap();
            Run {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into(),
                stderr,
            }
        })
        .await
        .unwrap()
    }

    pub async fn login(&self, profile: &str) -> Run {
        let base = self.base.clone();
        let args =
            ["login", "--url", &base, "--email", OWNER_EMAIL, "--password-stdin", "--profile", profile];
        self.run(&args, Some(&format!("{OWNER_PASSWORD}\n"))).await
    }
}

fn live_cli_credentials(listed: &Value) -> Vec<Value> {
    listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["description"].as_str().unwrap().starts_with("berthctl@") && c["revoked_at"].is_null())
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_store_made_with_wait_is_available_and_json_output_is_the_apis_body() {
    let app = TestApp::spawn().await.with_workers(1).await;
    let cli = Cli::serve(&app).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;

    let r = cli.login("work").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mode = std::fs::metadata(cli.credentials()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(!std::fs::read_to_string(cli.credentials()).unwrap().contains(OWNER_PASSWORD));
    let listed = app.get(&format!("/api/v1/orgs/{org}/credentials")).cookie(&owner).send().await.json();
    assert_eq!(live_cli_credentials(&listed).len(), 1, "one credential for this machine: {listed}");
    let r = cli.run(&["profile", "list", "--no-header", "--format", "name,current"], None).await;
    assert_eq!(r.stdout.split_whitespace().collect::<Vec<_>>(), ["work", "true"]);

    let r = cli
        .ok(&["store", "create", "cli-one", "--nodes", "1", "--size", "tiny", "--wait", "-o", "json"], None)
        .await;
    let created = r.json();
    assert_eq!(created["status"], "available");
    let id = created["id"].as_str().unwrap().to_string();
    let api = app.get(&format!("/api/v1/orgs/{org}/stores/{id}")).cookie(&owner).send().await.json();
    let got = cli.run(&["store", "get", "cli-one", "-o", "json"], None).await.json();
    for k in ["id", "name", "status", "nodes", "connection", "version", "instance_size"] {
        assert_eq!(got[k], api[k], "{k}");
    }
    let list = cli.run(&["store", "list", "-o", "json"], None).await.json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], api["id"]);
    let table = cli.run(&["store", "list", "--no-header", "--format", "name,status"], None).await;
    assert_eq!(table.stdout.split_whitespace().collect::<Vec<_>>(), ["cli-one", "available"]);

    // A finished job does not change: the CLI's JSON is the API's body.
    let jobs = cli.run(&["job", "list", "-o", "json"], None).await.json();
    let job = jobs[0]["id"].as_str().unwrap().to_string();
    let cli_job = cli.run(&["job", "get", &job, "-o", "json"], None).await.json();
    let api_job = app.get(&format!("/api/v1/orgs/{org}/jobs/{job}")).cookie(&owner).send().await.json();
    assert_eq!(cli_job, api_job);
    let r = cli.run(&["job", "wait", &job, "--no-header", "--format", "status"], None).await;
    assert_eq!((r.code, r.stdout.trim()), (0, "succeeded"));

    // The store answers on the URI the API gives.
    let r = cli.ok(&["store", "delete", "cli-one", "--yes", "--wait", "-o", "json"], None).await;
    assert_eq!(r.json()["status"], "succeeded");
}

#[tokio::test]
async fn exit_codes_a_wide_credentials_file_the_version_warning_and_logout() {
    let auth = berth::config::AuthConfig { min_client_version: "0.99.0".into(), ..test_auth_config() };
    let app = TestApp::spawn_with(auth).await;
    let cli = Cli::serve(&app).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;

    let r = cli.run(&["store", "list"], None).await;
    assert_eq!(r.code, 1, "no profile yet: {}", r.stderr);
    assert!(r.stderr.contains("berthctl login"), "{}", r.stderr);
    let r = cli.login("default").await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("older than the server's minimum client version 0.99.0"), "{}", r.stderr);

    let r = cli.ok(&["store", "list"], None).await;
    assert!(r.stderr.contains("warning"), "every command warns: {}", r.stderr);
    let r = cli.run(&["version"], None).await;
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains(&format!("Server version: {}", env!("CARGO_PKG_VERSION"))), "{}", r.stdout);

    // No workers: the job stays queued, and a wait runs out.
    let r = cli.ok(&["store", "create", "queued-one", "--size", "tiny", "-o", "json"], None).await;
    let job = r.json()["job"]["id"].as_str().unwrap().to_string();
    let r = cli.run(&["job", "wait", &job, "--timeout", "1s"], None).await;
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("berthctl job wait {job}")), "{}", r.stderr);

    let r = cli.interrupted(&["job", "wait", &job], "queued").await;
    assert_eq!(r.code, 130, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("goes on. Resume with: berthctl job wait {job}")), "{}", r.stderr);

    let r = cli.run(&["store", "get", "no-such-store"], None).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not_found"), "{}", r.stderr);
    let r = cli.run(&["job", "get", "00000000-0000-0000-0000-000000000000"], None).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("HTTP 404"), "the problem's status and code: {}", r.stderr);
    assert_eq!(cli.run(&["store", "list", "--no-such-flag"], None).await.code, 2);
    let r = cli.run(&["store", "delete", "queued-one"], None).await;
    assert_eq!(r.code, 2, "no terminal, no --yes: {}", r.stderr);
    assert!(r.stderr.contains("--yes"));
    assert_eq!(cli.run(&["job", "cancel", &job], None).await.code, 0);
    let r = cli.run(&["job", "wait", &job], None).await;
    assert_eq!(r.code, 3, "a cancelled job: {}", r.stderr);

    let creds = cli.credentials();
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = cli.run(&["store", "list"], None).await;
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("mode 0644") && r.stderr.contains("chmod 600"), "{}", r.stderr);
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).unwrap();

    // The profile's credential from the environment, as CI gives it, without a file; a flag
    // beats the environment.
    let file: toml::Value = toml::from_str(&std::fs::read_to_string(&creds).unwrap()).unwrap();
    let profile = &file["profiles"]["default"];
    assert!(profile.get("access_token").is_some(), "the access token is kept for the next command");
    let ci = Cli { home: tempfile::tempdir().unwrap(), base: cli.base.clone() };
    let env = [
        ("BERTH_URL", cli.base.as_str()),
        ("BERTH_CLIENT_ID", profile["client_id"].as_str().unwrap()),
        ("BERTH_CLIENT_SECRET", profile["client_secret"].as_str().unwrap()),
    ];
    let r = ci.run_env(&["store", "list", "-o", "json", "--format", "name"], None, &env).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.json().is_array(), "{}", r.stdout);
    let r = ci.run_env(&["--url", "http://127.0.0.1:1", "store", "list"], None, &env).await;
    assert_eq!(r.code, 1, "the flag's server, which does not answer: {}", r.stderr);
    assert!(!ci.credentials().exists());

    let listed = app.get(&format!("/api/v1/orgs/{org}/credentials")).cookie(&owner).send().await.json();
    assert_eq!(live_cli_credentials(&listed).len(), 1);
    cli.ok(&["logout"], None).await;
    let listed = app.get(&format!("/api/v1/orgs/{org}/credentials")).cookie(&owner).send().await.json();
    assert!(live_cli_credentials(&listed).is_empty(), "logout revokes the credential: {listed}");
    let r = cli.run(&["store", "list"], None).await;
    assert_eq!(r.code, 1, "the profile is gone: {} {}", r.stdout, r.stderr);
}

#[tokio::test]
async fn a_credential_may_revoke_itself_and_no_other() {
    let app = TestApp::spawn().await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    let (mine, secret) = crate::helpers::create_credential(&app, &owner, org, &["org:read"]).await;
    let (other, _) = crate::helpers::create_credential(&app, &owner, org, &["org:read"]).await;
    let token = app.token(&mine, &secret).await.access_token;
    let r = app.delete(&format!("/api/v1/orgs/{org}/credentials/{other}")).bearer(&token).send().await;
    r.assert_problem(StatusCode::FORBIDDEN, "session_required");
    let listed = app.get(&format!("/api/v1/orgs/{org}/credentials")).cookie(&owner).send().await.json();
    assert!(listed["items"].as_array().unwrap().iter().all(|c| c["revoked_at"].is_null()), "nothing revoked");
    let r = app.delete(&format!("/api/v1/orgs/{org}/credentials/{mine}")).bearer(&token).send().await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(app.bearer_status(&token).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_version_is_public() {
    let app = TestApp::spawn().await;
    let r = app.get("/api/version").send().await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["api_version"], "1");
    assert_eq!(v["min_client_version"], berth::version::MIN_CLIENT_VERSION);
    assert!(v["git_commit"].as_str().is_some_and(|c| !c.is_empty()));
    assert!(v["build_date"].as_str().is_some_and(|c| !c.is_empty()));
}

#[test]
fn every_call_of_the_cli_is_in_the_openapi_document() {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json")).unwrap(),
    )
    .unwrap();
    for ep in endpoints::ALL {
        let op = &doc["paths"][ep.path][ep.method.to_lowercase()];
        assert!(op.is_object(), "{} {} is not in openapi/openapi.json", ep.method, ep.path);
    }
}

#[tokio::test]
async fn switchover_topology_history_events_and_node_maintenance_from_the_cli() {
    let app = TestApp::spawn().await.with_workers(2).await;
    let cli = Cli::serve(&app).await;
    let owner = app.login_owner().await;
    let org = app.owner_org;
    assert_eq!(cli.login("ha").await.code, 0);
    cli.ok(&["store", "create", "cli-ha", "--nodes", "2", "--size", "tiny", "--wait", "-o", "json"], None)
        .await;
    let t = cli.run(&["topology", "cli-ha", "-o", "json"], None).await.json();
    let api = app
        .get(&format!("/api/v1/orgs/{org}/stores/{}/topology", t["store_id"].as_str().unwrap()))
        .cookie(&owner)
        .send()
        .await
        .json();
    assert_eq!(t["primary_node_id"], api["primary_node_id"], "the API's body");
    let old = t["primary_node_id"].as_str().unwrap().to_string();
    let replica = t["nodes"].as_array().unwrap().iter().find(|n| n["role"] == "replica").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    let r = cli.ok(&["switchover", "cli-ha", "--candidate", &replica, "--wait", "-o", "json"], None).await;
    assert_eq!(r.json()["status"], "succeeded");
    let t = cli.run(&["topology", "cli-ha", "-o", "json"], None).await.json();
    assert_eq!(t["primary_node_id"], replica.as_str());
    let h = cli
        .run(&["history", "cli-ha", "--no-header", "--format", "kind,from_node_id,to_node_id"], None)
        .await;
    assert_eq!(
        h.stdout.split_whitespace().collect::<Vec<_>>(),
        ["switchover", old.as_str(), replica.as_str()]
    );
    let e = cli.run(&["events", "cli-ha", "-o", "json"], None).await.json();
    assert!(e.as_array().unwrap().iter().any(|e| e["kind"] == "switchover"), "{e}");

    // A failover asks first: without a terminal it needs --yes, and nothing happens.
    let r = cli.run(&["failover", "cli-ha", "--candidate", &old], None).await;
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--yes"), "{}", r.stderr);
    // Refused by the server while the primary answers: its problem, exit 1.
    let r = cli.run(&["failover", "cli-ha", "--candidate", &old, "--yes"], None).await;
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("primary_healthy"), "{}", r.stderr);

    let r = cli.ok(&["node", "maintenance", "cli-ha", &old, "on", "-o", "json"], None).await;
    let nodes = r.json()["nodes"].as_array().unwrap().clone();
    assert!(nodes.iter().any(|n| n["id"] == old.as_str() && n["maintenance"] == true), "{nodes:?}");
    let r = cli.ok(&["ha", "set", "cli-ha", "--failover-delay", "9", "-o", "json"], None).await;
    assert_eq!(r.json()["failover_delay"], 9);
    let r = cli.run(&["ha", "pause", "cli-ha", "-o", "json"], None).await;
    assert_eq!(r.json()["paused"], true);
    let r = cli.ok(&["node", "restart", "cli-ha", "primary", "--wait", "-o", "json"], None).await;
    assert_eq!(r.json()["kind"], "restart_node");
    // Connection info as the API gives it, and psql on the store with the password revealed.
    let c = cli.run(&["store", "connection", "cli-ha", "-o", "json"], None).await.json();
    let id = t["store_id"].as_str().unwrap();
    let api = app.get(&format!("/api/v1/orgs/{org}/stores/{id}")).cookie(&owner).send().await.json();
    assert_eq!(c, api["connection"]);
    let r = cli.run(&["psql", "cli-ha", "--", "-XAtc", "select 40 + 2"], None).await;
    assert_eq!((r.code, r.stdout.trim()), (0, "42"), "{}", r.stderr);
    let revealed: i64 =
        sqlx::query_scalar("select count(*) from audit_events where action = 'store.credentials_revealed'")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(revealed, 1, "revealing the password is audited");
    cli.ok(&["store", "delete", "cli-ha", "--yes", "--wait"], None).await;
}
