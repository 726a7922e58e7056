//! A small typed client over [`TestApp`]: the request sequences the tests repeat (make a store
//! and wait for it, take a backup, make a VPC, wait for a job, get a token), each written once,
//! returning `Uuid` ids parsed once and the raw JSON kept for the tests' own assertions.

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, TestResponse, basic};

/// Fields read out of a JSON body by [JSON pointer](https://www.rfc-editor.org/rfc/rfc6901)
/// (`"/store/id"`), panicking with the pointer and the whole body when one is missing.
pub trait Fields {
    /// The string at `pointer`.
    fn str_at(&self, pointer: &str) -> &str;

    /// The UUID at `pointer`.
    fn uuid_at(&self, pointer: &str) -> Uuid;

    /// The string at `pointer`, owned.
    fn string_at(&self, pointer: &str) -> String {
        self.str_at(pointer).to_owned()
    }
}

impl Fields for Value {
    fn str_at(&self, pointer: &str) -> &str {
        self.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no string at {pointer} in {self}"))
    }

    fn uuid_at(&self, pointer: &str) -> Uuid {
        let s = self.str_at(pointer);
        s.parse().unwrap_or_else(|e| panic!("{pointer} is {s:?}, not a UUID ({e}), in {self}"))
    }
}

/// An answer of 202 Accepted: a resource (`{"<what>": {...}, "job": {...}}`) and its job.
pub struct Accepted {
    pub id: Uuid,
    pub job_id: Uuid,
    pub body: Value,
}

impl TestResponse {
    /// Asserts 202 and reads `/<what>/id` and `/job/id`.
    #[track_caller]
    pub fn accepted(&self, what: &str) -> Accepted {
        assert_eq!(self.status, StatusCode::ACCEPTED, "{}", self.text());
        let body = self.json();
        Accepted { id: body.uuid_at(&format!("/{what}/id")), job_id: body.uuid_at("/job/id"), body }
    }

    /// Asserts 202 where the answer is the job itself; returns its id.
    #[track_caller]
    pub fn accepted_job(&self) -> Uuid {
        assert_eq!(self.status, StatusCode::ACCEPTED, "{}", self.text());
        self.json().uuid_at("/id")
    }

    /// The UUID at `pointer` of the JSON body.
    pub fn uuid_at(&self, pointer: &str) -> Uuid {
        self.json().uuid_at(pointer)
    }

    /// The string at `pointer` of the JSON body.
    pub fn string_at(&self, pointer: &str) -> String {
        self.json().string_at(pointer)
    }
}

/// The newest PostgreSQL installed here.
pub fn pg_version() -> String {
    let v = berth::pg::PgBinaries::locate(None).unwrap();
    v.major.to_string()
}

/// The body of a store of `nodes` tiny nodes on this host.
pub fn store_body(name: &str, nodes: i64) -> Value {
    json!({"name": name, "vendor": "postgres", "version": pg_version(), "instance_size": "tiny",
           "volume_size": 10, "nodes": nodes, "cloud": "local", "region": "local-1"})
}

/// `/api/v1/orgs/{org}/stores/{id}`.
pub fn store_path(org: Uuid, id: Uuid) -> String {
    format!("/api/v1/orgs/{org}/stores/{id}")
}

/// A store just asked for: deploying, its job queued.
pub struct CreatedStore {
    pub org: Uuid,
    pub id: Uuid,
    pub job_id: Uuid,
    /// The admin's password, shown this once.
    pub password: String,
    /// The whole answer (`store`, `job`, `credentials`).
    pub body: Value,
}

impl CreatedStore {
    /// `/api/v1/orgs/{org}/stores/{id}`.
    pub fn path(&self) -> String {
        store_path(self.org, self.id)
    }
}

/// A store that is available, with what its creation returned.
pub struct ReadyStore {
    pub id: Uuid,
    pub password: String,
    /// The store as `GET` shows it once available.
    pub view: Value,
    pub created: CreatedStore,
}

impl ReadyStore {
    /// `/api/v1/orgs/{org}/stores/{id}`.
    pub fn path(&self) -> String {
        self.created.path()
    }

    /// The port of its first node.
    pub fn port(&self) -> i64 {
        self.view["nodes"][0]["port"].as_i64().unwrap_or_else(|| panic!("no node port in {}", self.view))
    }

    /// Its first node's id.
    pub fn node_id(&self) -> Uuid {
        self.view.uuid_at("/nodes/0/id")
    }

    /// Its node of `role`.
    pub fn node(&self, role: &str) -> Value {
        let nodes = self.view["nodes"].as_array().unwrap_or_else(|| panic!("no nodes in {}", self.view));
        nodes
            .iter()
            .find(|n| n["role"] == role)
            .unwrap_or_else(|| panic!("no {role} in {}", self.view))
            .clone()
    }

    /// The ids of its replicas, in the order the view lists them.
    pub fn replicas(&self) -> Vec<Uuid> {
        let nodes = self.view["nodes"].as_array().unwrap_or_else(|| panic!("no nodes in {}", self.view));
        nodes.iter().filter(|n| n["role"] == "replica").map(|n| n.uuid_at("/id")).collect()
    }
}

/// A backup that succeeded: as `GET` shows it.
pub struct Backup {
    pub id: Uuid,
    pub body: Value,
}

/// A token response of the token endpoint.
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub body: Value,
}

impl TestApp {
    /// Asks for a store in `org`, asserting 202 and its `Location`.
    pub async fn create_store(&self, cookie: &str, org: Uuid, body: Value) -> CreatedStore {
        let r = self.post(&format!("/api/v1/orgs/{org}/stores")).cookie(cookie).json(body).send().await;
        let Accepted { id, job_id, body } = r.accepted("store");
        assert_eq!(r.header("location"), Some(store_path(org, id).as_str()), "{body}");
        CreatedStore { org, id, job_id, password: body.string_at("/credentials/password"), body }
    }

    /// [`TestApp::create_store`] of [`store_body`] in the owner's organization.
    pub async fn new_store(&self, cookie: &str, name: &str, nodes: i64) -> CreatedStore {
        self.create_store(cookie, self.owner_org, store_body(name, nodes)).await
    }

    /// Asks for a store and waits until it is available.
    pub async fn ready_store(&self, cookie: &str, org: Uuid, body: Value) -> ReadyStore {
        let created = self.create_store(cookie, org, body).await;
        let view = self.wait_store(cookie, org, created.id, "available").await;
        ReadyStore { id: created.id, password: created.password.clone(), view, created }
    }

    /// [`TestApp::ready_store`] of [`store_body`] in the owner's organization.
    pub async fn new_ready_store(&self, cookie: &str, name: &str, nodes: i64) -> ReadyStore {
        self.ready_store(cookie, self.owner_org, store_body(name, nodes)).await
    }

    /// The store as `GET` shows it.
    pub async fn store(&self, cookie: &str, org: Uuid, id: Uuid) -> Value {
        self.get(&store_path(org, id)).cookie(cookie).send().await.json()
    }

    /// Polls the store until its status is `want`, or until it is gone for `"gone"` (failing
    /// the test on `failed`).
    pub async fn wait_store(&self, cookie: &str, org: Uuid, id: Uuid, want: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let r = self.get(&store_path(org, id)).cookie(cookie).send().await;
            if want == "gone" && r.status == StatusCode::NOT_FOUND {
                return Value::Null;
            }
            let s = r.json();
            if s["status"] == want {
                return s;
            }
            assert_ne!(s["status"], "failed", "store failed: {s}");
            assert!(Instant::now() < deadline, "store still {} after 180 s: {s}", s["status"]);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Deletes the store, asserting 202, and waits until it is gone.
    pub async fn delete_store(&self, cookie: &str, org: Uuid, id: Uuid) {
        let d = self.delete(&store_path(org, id)).cookie(cookie).send().await;
        assert_eq!(d.status, StatusCode::ACCEPTED, "{}", d.text());
        self.wait_store(cookie, org, id, "gone").await;
    }

    /// Polls a job until it ends. The tests' clock stands still, so a job waiting out a retry's
    /// backoff would wait forever: an attempt that failed fails the test at once, with the job.
    pub async fn wait_job(&self, cookie: &str, org: Uuid, job: Uuid) -> Value {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let j = self.get(&format!("/api/v1/orgs/{org}/jobs/{job}")).cookie(cookie).send().await.json();
            if matches!(j["status"].as_str(), Some("succeeded" | "failed" | "cancelled")) {
                return j;
            }
            assert!(!(j["status"] == "queued" && j["error"].is_string()), "an attempt failed: {j}");
            assert!(Instant::now() < deadline, "job still {} after 180 s", j["status"]);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// [`TestApp::wait_job`], asserting that the job succeeded; returns it.
    pub async fn job_succeeded(&self, cookie: &str, org: Uuid, job: Uuid) -> Value {
        let j = self.wait_job(cookie, org, job).await;
        assert_eq!(j["status"], "succeeded", "{j}");
        j
    }

    /// Takes a backup of `kind` of the store and waits for it to succeed.
    pub async fn take_backup(&self, cookie: &str, org: Uuid, store: Uuid, kind: &str) -> Backup {
        let base = store_path(org, store);
        let r = self.post(&format!("{base}/backups")).cookie(cookie).json(json!({"kind": kind})).send().await;
        let Accepted { id, job_id, .. } = r.accepted("backup");
        self.job_succeeded(cookie, org, job_id).await;
        let body = self.get(&format!("{base}/backups/{id}")).cookie(cookie).send().await.json();
        Backup { id, body }
    }

    /// `POST /vpcs` of a VPC on this host.
    pub async fn post_vpc(&self, cookie: &str, org: Uuid, name: &str, cidr: &str) -> TestResponse {
        self.post(&format!("/api/v1/orgs/{org}/vpcs"))
            .cookie(cookie)
            .json(json!({"name": name, "cloud": "local", "region": "local-1", "cidr_ipv4_block": cidr}))
            .send()
            .await
    }

    /// Makes a VPC and waits until its network is made; returns its id.
    pub async fn create_vpc(&self, cookie: &str, org: Uuid, name: &str, cidr: &str) -> Uuid {
        let r = self.post_vpc(cookie, org, name, cidr).await;
        let Accepted { id, job_id, body } = r.accepted("vpc");
        assert_eq!(r.header("location"), Some(format!("/api/v1/orgs/{org}/vpcs/{id}").as_str()));
        assert_eq!(body["vpc"]["status"], "creating");
        self.job_succeeded(cookie, org, job_id).await;
        let v = self.get(&format!("/api/v1/orgs/{org}/vpcs/{id}")).cookie(cookie).send().await.json();
        assert_eq!(v["status"], "available", "{v}");
        id
    }

    /// Deletes a VPC, asserting 202, and waits for its job to succeed.
    pub async fn delete_vpc(&self, cookie: &str, org: Uuid, id: Uuid) {
        let r = self.delete(&format!("/api/v1/orgs/{org}/vpcs/{id}")).cookie(cookie).send().await;
        self.job_succeeded(cookie, org, r.accepted_job()).await;
    }

    /// Makes an organization, asserting 201; returns its id.
    pub async fn create_org(&self, cookie: &str, name: &str) -> Uuid {
        let r = self.post("/api/v1/orgs").cookie(cookie).json(json!({"name": name})).send().await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        r.uuid_at("/id")
    }

    /// The id of the user signed in with `cookie`.
    pub async fn user_id(&self, cookie: &str) -> Uuid {
        self.get("/api/v1/users/me").cookie(cookie).send().await.uuid_at("/id")
    }

    /// client_credentials with HTTP Basic, asserting 200.
    pub async fn token(&self, id: &str, secret: &str) -> Tokens {
        let r = self
            .post("/api/auth/oauth2/token")
            .header("authorization", &basic(id, secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        let body = r.json();
        Tokens {
            access_token: body.string_at("/access_token"),
            refresh_token: body.string_at("/refresh_token"),
            body,
        }
    }

    /// A client credential of `scopes` and an access token of it.
    pub async fn bearer_token(&self, cookie: &str, org: Uuid, scopes: &[&str]) -> String {
        let (id, secret) = crate::helpers::create_credential(self, cookie, org, scopes).await;
        self.token(&id, &secret).await.access_token
    }
}
