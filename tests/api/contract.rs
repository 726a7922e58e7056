//! The API contract, checked from the outside: schemathesis (tests/contract/) fuzzes every
//! operation of the OpenAPI document that Berth serves, once with a bearer token and once with
//! a session cookie, against a real Berth over TCP with its workers and a running store. It fails
//! on any 5xx, any status the document does not list for the operation, any response that breaks
//! its schema, any schema-violating request accepted and any schema-valid request refused
//! (tests/contract/schemathesis.toml says which refusals the schema cannot foresee, and why).
//!
//! The seed is fixed so that CI is repeatable; `BERTH_CONTRACT_SEED=<n>` explores others and
//! `BERTH_CONTRACT_EXAMPLES=<n>` sets the cases per operation and phase.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::client::store_body;
use crate::helpers::TestApp;

const DEFAULT_SEED: &str = "15";
/// Cases per operation and phase: about 3,000 per run of the two here, over 86 operations.
const DEFAULT_EXAMPLES: &str = "10";
/// What the issue asks of the two runs together.
const AT_LEAST_CASES: usize = 5_000;
/// Operations that must have succeeded at least once in each run: most of them, though not
/// those that need what the fuzzer cannot make (another organization's VPC to peer with, a
/// backup that finished).
const MIN_OPERATIONS_ANSWERED: usize = 30;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The fuzzer, installed on first use (`tests/contract/install`: python3 and PyPI).
fn schemathesis() -> PathBuf {
    let install = repo().join("tests/contract/install");
    let status = Command::new(&install).status().expect("running tests/contract/install");
    assert!(
        status.success(),
        "tests/contract/install failed: the contract test needs python3, python3-venv and PyPI"
    );
    repo().join("target/contract-venv/bin/schemathesis")
}

/// Runs schemathesis against `base` with one security scheme of the document (`auth`: its
/// section of schemathesis's configuration); returns how many cases it generated, panicking
/// with its report on any failure. Given as a scheme rather than a header, the credential is
/// left out where the fuzzer tries an operation without it.
fn fuzz(tool: &Path, base: &str, label: &str, auth: &str, exclude: &[&str]) -> usize {
    let seed = std::env::var("BERTH_CONTRACT_SEED").unwrap_or_else(|_| DEFAULT_SEED.into());
    let examples = std::env::var("BERTH_CONTRACT_EXAMPLES").unwrap_or_else(|_| DEFAULT_EXAMPLES.into());
    let settings = std::fs::read_to_string(repo().join("tests/contract/schemathesis.toml")).unwrap();
    let config = tempfile::NamedTempFile::new().unwrap();
    let reports = tempfile::tempdir().unwrap();
    let events = reports.path().join("events.ndjson");
    std::fs::write(config.path(), format!("{settings}\n{auth}\n")).unwrap();
    let mut cmd = Command::new(tool);
    // Its cache and reports go to the run's folder, not the checkout.
    cmd.current_dir(reports.path())
        .arg("--config-file")
        .arg(config.path())
        .arg("run")
        .arg(format!("{base}/api/openapi.json"))
        .args(["--header", &format!("Origin: {base}")])
        .args(["--max-examples", &examples, "--seed", &seed])
        .args(["--report", "ndjson", "--report-ndjson-path"])
        .arg(&events);
    for name in exclude {
        cmd.args(["--exclude-name", name]);
    }
    // No terminal: a plain report, no progress bars.
    let out = cmd.env("NO_COLOR", "1").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "schemathesis with {label} failed (seed {seed}):\n{stdout}\n{stderr}");
    let generated = stdout
        .lines()
        .find_map(|l| l.trim().split_once(" generated").and_then(|(n, _)| n.trim().parse::<usize>().ok()))
        .unwrap_or_else(|| panic!("no case count in schemathesis's report:\n{stdout}"));
    let answered = operations_answered(&events);
    eprintln!(
        "contract with {label}: {generated} cases, seed {seed}, {answered} operations answered with a 2xx"
    );
    // A credential the server refused would pass every check with 401s alone.
    assert!(
        answered >= MIN_OPERATIONS_ANSWERED,
        "with {label}, only {answered} operations ever answered a 2xx"
    );
    generated
}

/// Operations (of the run whose events schemathesis wrote to `events`) that answered at least
/// one request with a success.
fn operations_answered(events: &Path) -> usize {
    let mut answered = std::collections::BTreeSet::new();
    for line in std::fs::read_to_string(events).unwrap().lines() {
        let event: serde_json::Value = serde_json::from_str(line).unwrap();
        let recorder = &event["ScenarioFinished"]["recorder"];
        let Some(interactions) = recorder["interactions"].as_object() else { continue };
        let success = interactions
            .values()
            .any(|i| i["response"]["status_code"].as_u64().is_some_and(|s| (200..300).contains(&s)));
        if success {
            answered.insert(recorder["label"].as_str().unwrap_or_default().to_owned());
        }
    }
    answered.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_keeps_to_the_served_document() {
    let tool = tokio::task::spawn_blocking(schemathesis).await.unwrap();
    let mut app = TestApp::spawn().await.with_workers(1).await;
    let org = app.owner_org;
    let owner = app.login_owner().await;
    // A running store, protected from the fuzzer's deletes, so that the operations on a store's
    // databases, users and parameters get past "not running".
    let mut create = store_body("contract", 1);
    create["deletion_protection"] = serde_json::json!(true);
    app.ready_store(&owner, org, create).await;
    // With the store running, the workers stop: what the fuzzer starts queues and waits.
    app.workers.take().unwrap().shutdown().await;
    let all = [
        "org:read",
        "org:admin",
        "stores:read",
        "stores:write",
        "backups:read",
        "backups:write",
        "backups:download",
        "vpcs:read",
        "vpcs:write",
    ];
    let token = app.bearer_token(&owner, org, &all).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = app.router.clone().into_make_service_with_connect_info::<SocketAddr>();
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    let cases = tokio::task::spawn_blocking(move || {
        let bearer = fuzz(
            &tool,
            &base,
            "a bearer token",
            &format!("[auth.openapi.bearer]\nbearer = \"{token}\""),
            &[],
        );
        // Signing out would end the session the rest of the run needs; the bearer run has
        // fuzzed it, without a session.
        let (_, session) = owner.split_once('=').unwrap();
        let session = format!("[auth.openapi.session]\napi_key = \"{session}\"");
        let cookie = fuzz(&tool, &base, "a session cookie", &session, &["POST /api/auth/logout"]);
        bearer + cookie
    })
    .await
    .unwrap();
    server.abort();
    assert!(cases >= AT_LEAST_CASES, "{cases} cases, fewer than the {AT_LEAST_CASES} the contract asks");
}
