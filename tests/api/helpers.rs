//! The test harness: one private PostgreSQL per test process (or `DATABASE_URL`), a migrated
//! template database, and a fresh database cloned from it for every test.

use std::os::unix::process::CommandExt;
use std::str::FromStr;
use std::sync::Arc;

use crate::client::Fields;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use berth::app::AppState;
use berth::bootstrap::ensure_first_owner;
use berth::build_router;
use berth::clock::ManualClock;
use berth::config::AuthConfig;
use berth::crypto::MasterKey;
use berth::jobs::DataPlane;
use berth::jobs::worker::Workers;
use berth::pg::{EmbeddedOptions, EmbeddedPg, PgBinaries, RunAs};
use berth::provision::Provisioner;
use berth::provision::catalog::Catalog;
use berth::provision::local::LocalDriver;
use http_body_util::BodyExt;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::OnceCell;
use tower::ServiceExt;

pub const OWNER_EMAIL: &str = "owner@example.com";
pub const OWNER_PASSWORD: &str = "correct-horse-battery-staple";
/// The session cookie's name in the tests, whose cookie is `Secure` as by default.
pub const SESSION_COOKIE: &str = "__Host-berth_session";

struct Cluster {
    admin: PgConnectOptions,
    template: String,
}

/// The folder of this test process's private control database (`pg/`, its socket in `run/`);
/// `None` with `DATABASE_URL`.
pub fn control_root() -> Option<std::path::PathBuf> {
    std::env::var_os("DATABASE_URL")
        .is_none()
        .then(|| std::env::temp_dir().join(format!("berth-test-{}", std::process::id())))
}

/// This test process's folder for store nodes; the watchdog removes it with the servers in it.
pub fn nodes_root() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("berth-test-{}", std::process::id())).join("nodes")
}

/// A folder of its own for one app's nodes, inside [`nodes_root`]. Its own folder is its own
/// driver (and its own mark on VPC namespaces), so that what one test's reconcile removes as
/// unknown is never another test's, whose rows are in another database.
fn app_nodes_root() -> std::path::PathBuf {
    let root = nodes_root().join(&uuid::Uuid::new_v4().simple().to_string()[..12]);
    std::fs::create_dir_all(&root).unwrap();
    std::fs::canonicalize(root).unwrap()
}

/// Ports for store nodes: each app gets its own slice, so tests in parallel never collide.
fn next_ports() -> std::ops::RangeInclusive<u16> {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let base = 20_000 + (std::process::id() % 50) as u16 * 400 + (n % 40) * 10;
    base..=base + 9
}

/// One master key for every app of the test process, as the instances of one deployment share
/// theirs: a token one of them made is checked by the others.
fn master_key() -> MasterKey {
    static KEY: std::sync::OnceLock<MasterKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| MasterKey::generate().0).clone()
}

pub fn test_plane(root: &std::path::Path) -> DataPlane {
    let driver = LocalDriver::discover(root.to_owned(), None).expect("the local driver").ephemeral(true);
    let backups = Arc::new(
        berth::backup::LocalBackupStore::new(nodes_root().with_file_name("backups"), &driver.isolation())
            .unwrap(),
    );
    let catalog = Catalog::load(None, driver.postgres_versions()).unwrap();
    DataPlane {
        driver: Arc::new(driver),
        catalog: Arc::new(catalog),
        master_key: master_key(),
        ports: next_ports(),
        quotas: berth::quota::Quotas::DEFAULT,
        backup_min_interval: berth::jobs::schedule::DEFAULT_MIN_INTERVAL,
        backups,
    }
}

static CLUSTER: OnceCell<Cluster> = OnceCell::const_new();

/// Starts this process's private server in the temp folder (reachable by the `postgres` user
/// when the tests run as root), removed by a watchdog when the process ends.
#[allow(clippy::zombie_processes)]
async fn start_private() -> PgConnectOptions {
    let root = std::env::temp_dir().join(format!("berth-test-{}", std::process::id()));
    let binaries =
        PgBinaries::locate(std::env::var_os("BERTH_PG_BINDIR").map(std::path::PathBuf::from).as_deref())
            .expect("PostgreSQL binaries for the tests (or set DATABASE_URL)");
    let user = std::env::var("BERTH_PG_USER").unwrap_or_else(|_| "postgres".into());
    let run_as = RunAs::when_root(&user).expect("an unprivileged user for PostgreSQL");
    let pg = EmbeddedPg::start(EmbeddedOptions {
        root: root.clone(),
        binaries,
        run_as,
        settings: vec![("max_connections".into(), "500".into())],
        ephemeral: true,
    })
    .await
    .expect("starting the test PostgreSQL");
    // When this process exits, however it exits, stop the server, remove the VPC namespaces of
    // its apps (`berth-<tag>-…`, the tag a hash of the app's folder: see `net::tag_for`), even
    // half-made ones, and remove its folder. The watchdog outlives this process by design, so it
    // is never waited for.
    let root = std::fs::canonicalize(&root).unwrap();
    let script = r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done
for f in $(find "$2" -name postmaster.pid 2>/dev/null); do
  pid=$(head -n 1 "$f") && kill -QUIT "$pid" 2>/dev/null
  while [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
done
for d in "$2"/nodes/*/; do
  tag=$(printf %s "${d%/}" | sha256sum | cut -c1-10)
  for ns in $(ip netns list 2>/dev/null | cut -d' ' -f1); do
    case "$ns" in "berth-$tag-"*) ip netns del "$ns" ;; esac
  done
  for m in $(awk -v d="${d%/}/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts); do
    umount "$m" 2>/dev/null || umount -l "$m"
  done
  for u in $(cut -d: -f1 /etc/passwd | grep "^berth-$(printf %s "$tag" | cut -c1-8)-"); do
    userdel "$u"
  done
done
rm -rf "$2""#;
    std::process::Command::new("sh")
        .args(["-c", script, "berth-test-watchdog"])
        .arg(std::process::id().to_string())
        .arg(&root)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawning the test PostgreSQL watchdog");
    pg.connect_options("postgres")
}

async fn cluster() -> &'static Cluster {
    CLUSTER
        .get_or_init(|| async {
            let admin = match std::env::var("DATABASE_URL") {
                Ok(url) => PgConnectOptions::from_str(&url).expect("DATABASE_URL"),
                Err(_) => start_private().await,
            };
            let template = format!("berth_tpl_{}", uuid::Uuid::new_v4().simple());
            create_database(&admin, &template, None).await;
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(admin.clone().database(&template))
                .await
                .expect("connecting to the template");
            berth::MIGRATOR.run(&pool).await.expect("migrating the template");
            pool.close().await;
            Cluster { admin, template }
        })
        .await
}

async fn create_database(admin: &PgConnectOptions, name: &str, template: Option<&str>) {
    let mut conn = PgConnection::connect_with(admin).await.expect("admin connection");
    let sql = match template {
        Some(t) => format!("create database \"{name}\" template \"{t}\""),
        None => format!("create database \"{name}\""),
    };
    sqlx::query(&sql).execute(&mut conn).await.expect("create database");
    conn.close().await.ok();
}

/// A fresh, migrated database of its own.
pub async fn fresh_database() -> PgConnectOptions {
    let c = cluster().await;
    let name = format!("berth_t_{}", uuid::Uuid::new_v4().simple());
    create_database(&c.admin, &name, Some(&c.template)).await;
    c.admin.clone().database(&name)
}

pub async fn pool(options: &PgConnectOptions) -> PgPool {
    PgPoolOptions::new().max_connections(8).connect_with(options.clone()).await.expect("test pool")
}

pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub clock: ManualClock,
    pub db: PgPool,
    pub db_options: PgConnectOptions,
    pub owner_org: uuid::Uuid,
    pub workers: Option<Workers>,
    /// This app's folder of store nodes (its driver's root).
    pub nodes_root: std::path::PathBuf,
}

/// In-process requests carry no peer address unless a test gives one ([`Call::peer`]),
/// so a test's requests share one address bucket: its limit is raised here for the tests that
/// are not about it, and those that are set their own ([`TestApp::spawn_with`]).
pub fn test_auth_config() -> AuthConfig {
    AuthConfig {
        hash_concurrency: Some(2),
        address_max_failures: 1000,
        refusal_delay: std::time::Duration::ZERO,
        ..AuthConfig::default()
    }
}

impl TestApp {
    /// A new Berth on a new database, with the first owner created.
    pub async fn spawn() -> Self {
        Self::spawn_with(test_auth_config()).await
    }

    /// [`TestApp::spawn`] with another authentication configuration.
    pub async fn spawn_with(auth: AuthConfig) -> Self {
        let options = fresh_database().await;
        let app = Self::on_with(&options, ManualClock::new(time::OffsetDateTime::now_utc()), auth).await;
        ensure_first_owner(&app.state, OWNER_EMAIL, Some(OWNER_PASSWORD.into()), "Acme").await.unwrap();
        let org = sqlx::query_scalar("select id from organizations").fetch_one(&app.db).await.unwrap();
        Self { owner_org: org, ..app }
    }

    /// Another Berth instance on an existing database (as a second process would be).
    pub async fn on(options: &PgConnectOptions, clock: ManualClock) -> Self {
        Self::on_with(options, clock, test_auth_config()).await
    }

    async fn on_with(options: &PgConnectOptions, clock: ManualClock, auth: AuthConfig) -> Self {
        let db = pool(options).await;
        let nodes_root = app_nodes_root();
        let plane = test_plane(&nodes_root);
        let state = AppState::new(db.clone(), auth, Arc::new(clock.clone()), plane);
        Self {
            router: build_router(state.clone()),
            state,
            clock,
            db,
            db_options: options.clone(),
            owner_org: uuid::Uuid::nil(),
            workers: None,
            nodes_root,
        }
    }

    /// Starts this app's job workers (tests of the data plane need them; others do not).
    pub async fn with_workers(mut self, count: usize) -> Self {
        self.workers =
            Some(Workers::start(self.state.job_env(), count, self.state.wake.clone()).await.unwrap());
        self
    }

    pub fn get(&self, path: &str) -> Call<'_> {
        Call::new(self, Method::GET, path)
    }
    pub fn post(&self, path: &str) -> Call<'_> {
        Call::new(self, Method::POST, path)
    }
    pub fn patch(&self, path: &str) -> Call<'_> {
        Call::new(self, Method::PATCH, path)
    }
    pub fn put(&self, path: &str) -> Call<'_> {
        Call::new(self, Method::PUT, path)
    }
    pub fn delete(&self, path: &str) -> Call<'_> {
        Call::new(self, Method::DELETE, path)
    }

    /// Logs in and returns the session cookie (`name=value`), panicking on failure.
    pub async fn login(&self, email: &str, password: &str) -> String {
        let r = self
            .post("/api/auth/login")
            .json(serde_json::json!({"login": email, "password": password}))
            .send()
            .await;
        assert_eq!(r.status, StatusCode::OK, "login as {email}: {}", r.text());
        r.session_cookie().expect("login sets the session cookie")
    }

    pub async fn login_owner(&self) -> String {
        self.login(OWNER_EMAIL, OWNER_PASSWORD).await
    }

    /// Adds a member with a known password and has them replace the initial one, so that they
    /// are a fully active user; returns (user_id, cookie).
    pub async fn active_member(
        &self,
        owner: &str,
        org: uuid::Uuid,
        email: &str,
        role: &str,
    ) -> (uuid::Uuid, String) {
        let initial = "initial-password-0001";
        let r = self
            .post(&format!("/api/v1/orgs/{org}/members"))
            .cookie(owner)
            .json(serde_json::json!({"email": email, "role": role, "password": initial}))
            .send()
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        let user_id = r.uuid_at("/member/user_id");
        let cookie = self.login(email, initial).await;
        let r = self
            .post("/api/v1/users/me/password")
            .cookie(&cookie)
            .json(serde_json::json!({"current_password": initial, "new_password": member_password(email)}))
            .send()
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text());
        (user_id, r.session_cookie().expect("the session continues under a new id"))
    }
}

pub fn member_password(email: &str) -> String {
    format!("{email}-long-password")
}

pub struct Call<'a> {
    app: &'a TestApp,
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Body>,
    peer: Option<std::net::SocketAddr>,
}

impl<'a> Call<'a> {
    fn new(app: &'a TestApp, method: Method, path: &str) -> Self {
        Self { app, method, path: path.to_owned(), headers: vec![], body: None, peer: None }
    }

    /// Sends the request as if from `ip`, as `serve`'s listener would say (`ConnectInfo`);
    /// `None` leaves it without an address, like every other in-process request.
    pub fn peer(mut self, ip: Option<&str>) -> Self {
        self.peer = ip.map(|ip| std::net::SocketAddr::new(ip.parse().expect("an IP address"), 40000));
        self
    }

    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }

    pub fn cookie(self, cookie: &str) -> Self {
        self.header("cookie", cookie)
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// An `application/x-www-form-urlencoded` body.
    pub fn form(self, pairs: &[(&str, &str)]) -> Self {
        let body: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
        self.raw("application/x-www-form-urlencoded", body)
    }

    pub fn json(mut self, v: Value) -> Self {
        self.body = Some(Body::from(v.to_string()));
        self.header("content-type", "application/json")
    }

    pub fn raw(mut self, content_type: &str, body: impl Into<String>) -> Self {
        self.body = Some(Body::from(body.into()));
        self.header("content-type", content_type)
    }

    /// A body of any bytes, with a `Content-Type` or none.
    pub fn bytes(mut self, content_type: Option<&str>, body: Vec<u8>) -> Self {
        self.body = Some(Body::from(body));
        match content_type {
            Some(t) => self.header("content-type", t),
            None => self,
        }
    }

    pub async fn send(self) -> TestResponse {
        let mut req =
            Request::builder().method(self.method).uri(&self.path).header(header::HOST, "berth.test");
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let mut req = req.body(self.body.unwrap_or_else(Body::empty)).unwrap();
        if let Some(peer) = self.peer {
            req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        }
        let res = self.app.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.unwrap().to_bytes().to_vec();
        TestResponse { status, headers, body }
    }
}

#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl TestResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn set_cookies(&self) -> Vec<&str> {
        self.headers.get_all(header::SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).collect()
    }

    /// `__Host-berth_session=value` from a `Set-Cookie` that sets (not removes) the session.
    pub fn session_cookie(&self) -> Option<String> {
        let prefix = format!("{SESSION_COOKIE}=");
        self.set_cookies()
            .into_iter()
            .filter_map(|c| c.split(';').next())
            .find(|kv| kv.starts_with(&prefix) && kv.len() > prefix.len())
            .map(str::to_owned)
    }

    /// Asserts a problem document with this status and code.
    #[track_caller]
    pub fn assert_problem(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(self.header("content-type"), Some("application/problem+json"), "{}", self.text());
        assert_eq!(self.json()["code"], code, "{}", self.text());
    }
}

/// Creates a client credential with `scopes`, expiring in 30 days; returns (client_id, secret).
pub async fn create_credential(
    app: &TestApp,
    cookie: &str,
    org: uuid::Uuid,
    scopes: &[&str],
) -> (String, String) {
    let expires = app.clock_now() + time::Duration::days(30);
    let r = app
        .post(&format!("/api/v1/orgs/{org}/credentials"))
        .cookie(cookie)
        .json(serde_json::json!({
            "description": "automation",
            "expires_at": expires.format(&time::format_description::well_known::Rfc3339).unwrap(),
            "scopes": scopes,
        }))
        .send()
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
    let j = r.json();
    (j.string_at("/client_id"), j.string_at("/client_secret"))
}

/// A secret in the form Berth made before the tags: a prefix and base64url of `random_bytes`.
pub fn untagged(prefix: &str, random_bytes: usize) -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut buf = vec![0u8; random_bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

pub fn basic(id: &str, secret: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}")))
}

impl TestApp {
    pub fn clock_now(&self) -> time::OffsetDateTime {
        use berth::clock::Clock;
        self.clock.now()
    }
}

impl TestApp {
    /// Appends the refused authentications counted so far, as the periodic flush would once
    /// their minute has ended; returns how many events that wrote.
    pub async fn flush_refusals(&self) -> usize {
        self.state.refusals.flush(&self.db, self.clock_now() + time::Duration::MINUTE).await.unwrap()
    }

    /// The status of `GET /api/auth/check` with a bearer token.
    pub async fn bearer_status(&self, token: &str) -> StatusCode {
        self.get("/api/auth/check").bearer(token).send().await.status
    }

    /// A refresh_token grant, authenticated with `basic_auth`.
    pub async fn refresh(&self, basic_auth: &str, refresh_token: &str, scope: Option<&str>) -> TestResponse {
        let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
        form.extend(scope.map(|s| ("scope", s)));
        self.post("/api/auth/oauth2/token").header("authorization", basic_auth).form(&form).send().await
    }

    /// Adds `n` viewers named `{prefix}{i}@example.com` with new accounts, each an audited change.
    pub async fn add_viewers(&self, cookie: &str, prefix: &str, n: usize) {
        for i in 0..n {
            let email = format!("{prefix}{i}@example.com");
            let r = self
                .post(&format!("/api/v1/orgs/{}/members", self.owner_org))
                .cookie(cookie)
                .json(serde_json::json!({"email": email, "role": "viewer", "password": member_password(&email)}))
                .send()
                .await;
            assert_eq!(r.status, StatusCode::CREATED, "{}", r.text());
        }
    }
}

/// How a client reaches a store node on this host.
pub fn node_options(port: i64, user: &str, password: &str, db: &str) -> PgConnectOptions {
    PgConnectOptions::new_without_pgpass()
        .host("127.0.0.1")
        .port(port as u16)
        .username(user)
        .password(password)
        .database(db)
}

/// A client connection to a store node.
pub async fn node_connect(port: i64, user: &str, password: &str, db: &str) -> sqlx::Result<PgConnection> {
    PgConnection::connect_with(&node_options(port, user, password, db)).await
}

/// Makes every job look claimed by a worker that then vanished (its process killed): running,
/// under a lease that has run out by the app's clock, for the next worker to take over. Not by
/// the database's: the app's clock stands still, so a lease one second short of the database's
/// `now()` is still unexpired to the app once the test has run for more than that second.
pub async fn strand_jobs(app: &TestApp) {
    sqlx::query(
        "update jobs set status = 'running', locked_by = 'gone:1:x/0', attempts = 1, locked_until = $1",
    )
    .bind(app.clock_now() - time::Duration::SECOND)
    .execute(&app.db)
    .await
    .unwrap();
}

/// Makes one job look as if its worker was killed inside step `step` (counted from 0) of its
/// first attempt: running, under a lease that has run out by the app's clock, for the next
/// worker to take over (see [`strand_jobs`]).
pub async fn strand_job(app: &TestApp, job: uuid::Uuid, step: i32) {
    let done = sqlx::query(
        "update jobs set status = 'running', locked_by = 'gone:1:x/0', attempts = 1, step = $2,
                         finished_at = null, error = null, locked_until = $3
         where id = $1",
    )
    .bind(job)
    .bind(step)
    .bind(app.clock_now() - time::Duration::SECOND)
    .execute(&app.db)
    .await
    .unwrap();
    assert_eq!(done.rows_affected(), 1, "no job {job}");
}

/// Whether a test of what only root can do (OS users, volumes, network namespaces) can run here.
/// Not as root, it says on stderr what is skipped and the test returns; but where CI says it
/// runs as root (`BERTH_TESTS_EXPECT_ROOT=1`, set by `.ci/run`), a skip would hide that nothing
/// was tested, and fails instead.
#[track_caller]
pub fn root_can_run(what: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var_os("BERTH_TESTS_EXPECT_ROOT").is_none_or(|v| v != "1"),
        "{what} needs root, and BERTH_TESTS_EXPECT_ROOT=1 says these tests run as root"
    );
    eprintln!("skipped: {what} needs root");
    false
}

/// The postmaster running in `pgdata`, if any (a pid file naming another process does not count).
pub fn postmaster_of(pgdata: &std::path::Path) -> Option<i32> {
    let text = std::fs::read_to_string(pgdata.join("postmaster.pid")).ok()?;
    let pid: i32 = text.lines().next()?.trim().parse().ok()?;
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
    (cwd == std::fs::canonicalize(pgdata).ok()?).then_some(pid)
}
