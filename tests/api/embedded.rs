//! The binary as a new user runs it: no configuration, its own PostgreSQL, a generated owner
//! password printed once, and the same data on the next start.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::client::Fields;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Berth {
    child: Child,
    stdout: Vec<String>,
}

/// A failed assertion must not leave Berth (and its PostgreSQL) running.
impl Drop for Berth {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
            let _ = self.child.wait();
        }
    }
}

/// Starts the binary and reads its stdout until it says it is listening.
fn start(data_dir: &std::path::Path, port: u16) -> Berth {
    let child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .env_remove("DATABASE_URL")
        .env_remove("BERTH_ADMIN_PASSWORD")
        .env_remove("BERTH_ADMIN_EMAIL")
        .env("BERTH_DATA_DIR", data_dir)
        .env("BERTH_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting berth");
    wait_listening(child)
}

fn wait_listening(child: Child) -> Berth {
    let mut berth = Berth { child, stdout: vec![] };
    let mut lines = BufReader::new(berth.child.stdout.take().unwrap()).lines();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else {
            panic!("berth exited before listening: {:?}", berth.stdout)
        };
        let done = line.contains("listening on");
        berth.stdout.push(line);
        if done {
            return berth;
        }
    }
    panic!("berth did not start: {:?}", berth.stdout);
}

fn stop(mut b: Berth) {
    kill(Pid::from_raw(b.child.id() as i32), Signal::SIGTERM).unwrap();
    let status = b.child.wait().unwrap();
    assert!(status.success(), "berth exited with {status}");
}

async fn login(client: &reqwest::Client, port: u16, password: &str) -> reqwest::StatusCode {
    client
        .post(format!("http://127.0.0.1:{port}/api/auth/login"))
        .json(&serde_json::json!({"login": "admin@localhost", "password": password}))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn the_embedded_default_starts_prints_the_password_once_and_reuses_its_data() {
    let dir = tempfile::Builder::new().prefix("berth-embedded-").tempdir().unwrap();
    let port = free_port();
    let first = tokio::task::spawn_blocking({
        let p = dir.path().to_owned();
        move || start(&p, port)
    })
    .await
    .unwrap();
    let password = first
        .stdout
        .iter()
        .find_map(|l| l.strip_prefix("Password:"))
        .map(|p| p.trim().to_owned())
        .unwrap_or_else(|| panic!("no generated password in {:?}", first.stdout));
    assert!(password.len() >= 20);
    assert!(first.stdout.iter().any(|l| l.contains("/api/swagger")));

    let client = reqwest::Client::new();
    let status: serde_json::Value =
        client.get(format!("http://127.0.0.1:{port}/api/status")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status, serde_json::json!({"alive": true}));
    assert_eq!(login(&client, port, &password).await, reqwest::StatusCode::OK);
    let pid_file = dir.path().join("pg/postmaster.pid");
    assert!(pid_file.exists(), "the embedded server runs in the data folder");

    tokio::task::spawn_blocking(move || stop(first)).await.unwrap();
    assert!(!pid_file.exists(), "stopping Berth stops its PostgreSQL cleanly");

    let second = tokio::task::spawn_blocking({
        let p = dir.path().to_owned();
        move || start(&p, port)
    })
    .await
    .unwrap();
    assert!(
        !second.stdout.iter().any(|l| l.contains(&password) || l.starts_with("Password:")),
        "the password is printed on the first run only: {:?}",
        second.stdout
    );
    assert_eq!(login(&client, port, &password).await, reqwest::StatusCode::OK, "same data, same owner");
    tokio::task::spawn_blocking(move || stop(second)).await.unwrap();
}

#[test]
fn without_binaries_or_database_it_says_what_to_install() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .env_remove("DATABASE_URL")
        .env("PATH", "/nonexistent")
        .env("BERTH_DATA_DIR", dir.path())
        .env("BERTH_PG_BINDIR", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("BERTH_PG_BINDIR") && err.contains("does not hold initdb"), "{err}");

    assert_eq!(err.trim().lines().count(), 1, "one clear line: {err}");
}

#[tokio::test]
async fn it_serves_https_with_the_given_certificate() {
    let dir = tempfile::Builder::new().prefix("berth-tls-").tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    let port = free_port();
    let data = dir.path().join("data");
    let child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .env_remove("DATABASE_URL")
        .env("BERTH_DATA_DIR", &data)
        .env("BERTH_LISTEN", format!("127.0.0.1:{port}"))
        .env("BERTH_TLS_CERT", &cert_path)
        .env("BERTH_TLS_KEY", &key_path)
        .env_remove("BERTH_ADMIN_EMAIL")
        .env("BERTH_ADMIN_PASSWORD", "a-long-enough-password")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let berth = tokio::task::spawn_blocking(move || wait_listening(child)).await.unwrap();
    assert!(berth.stdout.iter().any(|l| l.contains("https://")), "{:?}", berth.stdout);

    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .resolve("localhost", format!("127.0.0.1:{port}").parse().unwrap())
        .build()
        .unwrap();
    let r = client.get(format!("https://localhost:{port}/api/status")).send().await.unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let login = client
        .post(format!("https://localhost:{port}/api/auth/login"))
        .json(&serde_json::json!({"login": "admin@localhost", "password": "a-long-enough-password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), reqwest::StatusCode::OK);
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/api/status")).await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success(), "no plain HTTP on the TLS port");
    tokio::task::spawn_blocking(move || stop(berth)).await.unwrap();
}

fn start_with(data_dir: &std::path::Path, port: u16, env: &[(&str, &str)]) -> Berth {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.env_remove("DATABASE_URL")
        .env_remove("BERTH_ADMIN_EMAIL")
        .env("BERTH_DATA_DIR", data_dir)
        .env("BERTH_LISTEN", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    wait_listening(cmd.spawn().unwrap())
}

fn postmasters(dir: &std::path::Path) -> usize {
    walk(dir).into_iter().filter(|p| p.ends_with("postmaster.pid")).count()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// SIGKILL in the middle of creating a three-node store: after a restart the job finishes, the
/// store is available with exactly three nodes, and no server runs that the tables do not know.
#[tokio::test]
async fn a_store_survives_berth_being_killed_mid_creation() {
    let dir = tempfile::Builder::new().prefix("berth-crash-").tempdir().unwrap();
    let data = dir.path().to_owned();
    let port = free_port();
    let env = [("BERTH_ADMIN_PASSWORD", "crash-test-password"), ("BERTH_NODE_PORTS", "24100-24199")];
    let berth = tokio::task::spawn_blocking({
        let data = data.clone();
        move || start_with(&data, port, &env)
    })
    .await
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let login = http
        .post(format!("{base}/api/auth/login"))
        .json(&serde_json::json!({"login": "admin@localhost", "password": "crash-test-password"}))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let me: serde_json::Value = login.json().await.unwrap();
    let org = me.uuid_at("/organizations/0/id");
    let version = crate::client::pg_version();
    let created: serde_json::Value = http
        .post(format!("{base}/api/v1/orgs/{org}/stores"))
        .header("cookie", &cookie)
        .json(&serde_json::json!({"name": "crashy", "vendor": "postgres", "version": version, "instance_size": "tiny",
                                  "volume_size": 10, "nodes": 3, "cloud": "local", "region": "local-1"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (store, job) = (created.uuid_at("/store/id"), created.uuid_at("/job/id"));
    let password = created.string_at("/credentials/password");

    // Kill it once the primary exists and before the replicas are done.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let j: serde_json::Value = http
            .get(format!("{base}/api/v1/orgs/{org}/jobs/{job}"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if j["steps"][0]["state"] == "done" {
            assert_ne!(j["status"], "succeeded", "the job finished before the kill; nothing was tested");
            break;
        }
        assert!(Instant::now() < deadline, "the primary was never created: {j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut killed = berth;
    kill(Pid::from_raw(killed.child.id() as i32), Signal::SIGKILL).unwrap();
    killed.child.wait().unwrap();

    let berth = tokio::task::spawn_blocking({
        let data = data.clone();
        move || start_with(&data, port, &env)
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    let s = loop {
        let s: serde_json::Value = http
            .get(format!("{base}/api/v1/orgs/{org}/stores/{store}"))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if s["status"] == "available" {
            break s;
        }
        assert_ne!(s["status"], "failed", "{s}");
        assert!(Instant::now() < deadline, "store still {} after the restart", s["status"]);
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let nodes = s["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{s}");
    assert!(nodes.iter().all(|n| n["state"] == "running"), "{s}");
    assert_eq!(postmasters(&data.join("stores")), 3, "exactly the three nodes run");
    for n in nodes {
        let opts = sqlx::postgres::PgConnectOptions::new_without_pgpass()
            .host("127.0.0.1")
            .port(n["port"].as_u64().unwrap() as u16)
            .username("dbadmin")
            .password(&password)
            .database("defaultdb");
        use sqlx::Connection;
        sqlx::PgConnection::connect_with(&opts).await.expect("every node answers");
    }

    let d = http
        .delete(format!("{base}/api/v1/orgs/{org}/stores/{store}"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(d.status(), reqwest::StatusCode::ACCEPTED);
    let deadline = Instant::now() + Duration::from_secs(120);
    while http
        .get(format!("{base}/api/v1/orgs/{org}/stores/{store}"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .status()
        != reqwest::StatusCode::NOT_FOUND
    {
        assert!(Instant::now() < deadline, "the store was not deleted");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::task::spawn_blocking(move || stop(berth)).await.unwrap();
    assert_eq!(postmasters(&data), 0, "no server is left running");
}
