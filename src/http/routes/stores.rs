//! Stores: managed PostgreSQL clusters. Every change that touches the data plane is a job,
//! returned by the call that started it.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rand::Rng;
use rand::distributions::Alphanumeric;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{Postgres, Transaction};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::app::AppState;
use crate::audit::{Event, RequestMeta};
use crate::db;
use crate::db::stores::{NodeRow, StoreRow};
use crate::domain::StoreNetwork;
use crate::domain::names;
use crate::domain::{Ctx, NodeState, Scope, StoreOperation, StoreStatus};
use crate::error::{ApiError, ApiResult, Problem, on_constraint};
use crate::http::extract::{ActiveUser, AppJson, AppPath, AppQuery};
use crate::http::page::PageRequest;
use crate::http::views::JobView;
use crate::jobs::{self, step};
use crate::provision::catalog::Choice;
use crate::provision::sizing;
use crate::quota::{self, Quota};
use crate::service::jobs::{Enqueue, busy, enqueue};
use crate::service::vpcs;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_stores, create_store))
        .routes(routes!(get_store, update_store, delete_store))
        .routes(routes!(add_node))
        .routes(routes!(remove_node))
        .routes(routes!(restart_node))
        .routes(routes!(repair_store))
        .routes(routes!(reveal_credentials))
}

const ADMIN_USER: &str = "dbadmin";
const DATABASE: &str = "defaultdb";

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeView {
    pub id: Uuid,
    /// `primary` or `replica`.
    pub role: String,
    pub host: String,
    pub port: i32,
    pub state: NodeState,
    /// For a replica: WAL bytes received but not yet replayed, at the last health check.
    pub replication_lag_bytes: Option<i64>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub checked_at: Option<OffsetDateTime>,
    /// The node's volume is full, or a write on it failed for lack of space within the last 15
    /// minutes: its writes fail with PostgreSQL's own error until the store's `volume_size`
    /// grows (or data is removed). From the health checks.
    pub disk_full: bool,
    /// The size of the node's volume and what is used of it, at the last health check; absent
    /// where volumes are not the node's own (see the deploy options' `isolation`).
    pub disk_size_bytes: Option<i64>,
    pub disk_used_bytes: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Endpoint {
    pub host: String,
    pub port: i32,
    /// A libpq URI without the password.
    pub uri: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Connection {
    pub username: String,
    pub database: String,
    /// Reads and writes.
    pub primary: Option<Endpoint>,
    /// Reads only: the replicas.
    pub read_only: Vec<Endpoint>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoreView {
    pub id: Uuid,
    pub name: String,
    pub vendor: String,
    pub version: String,
    pub instance_size: String,
    /// GB.
    pub volume_size: i32,
    pub cloud: String,
    pub region: String,
    /// Where the nodes listen: the host's loopback (`public`) or their VPC (`private`).
    pub network: StoreNetwork,
    /// The number of nodes the store is meant to have.
    pub nodes_wanted: i32,
    pub tags: Vec<String>,
    pub deletion_protection: bool,
    pub status: StoreStatus,
    /// A node's volume is full (see its `disk_full`).
    pub disk_full: bool,
    pub nodes: Vec<NodeView>,
    pub connection: Connection,
    /// The job in progress, if any.
    pub current_job: Option<JobView>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

fn endpoint(n: &NodeRow, user: &str, db: &str) -> Endpoint {
    Endpoint {
        host: n.host.clone(),
        port: n.port,
        uri: format!("postgres://{user}@{}:{}/{db}", n.host, n.port),
    }
}

fn view(s: StoreRow, nodes: Vec<NodeRow>, current_job: Option<JobView>) -> StoreView {
    let live = |n: &&NodeRow| n.state != NodeState::Removing;
    let connection = Connection {
        primary: nodes
            .iter()
            .filter(live)
            .find(|n| n.role == "primary")
            .map(|n| endpoint(n, &s.admin_user, &s.database_name)),
        read_only: nodes
            .iter()
            .filter(live)
            .filter(|n| n.role == "replica")
            .map(|n| endpoint(n, &s.admin_user, &s.database_name))
            .collect(),
        username: s.admin_user.clone(),
        database: s.database_name.clone(),
    };
    StoreView {
        id: s.id,
        name: s.name,
        vendor: s.vendor,
        version: s.version,
        instance_size: s.instance_size,
        volume_size: s.volume_size_gb,
        cloud: s.cloud,
        region: s.region,
        network: StoreNetwork::of(s.vpc_id),
        nodes_wanted: s.node_count,
        tags: s.tags,
        deletion_protection: s.deletion_protection,
        status: s.status,
        disk_full: nodes.iter().filter(live).any(NodeRow::disk_full),
        nodes: nodes
            .into_iter()
            .map(|n| NodeView {
                disk_full: n.disk_full(),
                id: n.id,
                role: n.role,
                host: n.host,
                port: n.port,
                state: n.state,
                replication_lag_bytes: n.replication_lag_bytes,
                checked_at: n.checked_at,
                disk_size_bytes: n.disk_size_bytes,
                disk_used_bytes: n.disk_used_bytes,
            })
            .collect(),
        connection,
        current_job,
        created_at: s.created_at,
        updated_at: s.updated_at,
    }
}

async fn load_view(state: &AppState, ctx: &Ctx, id: Uuid) -> ApiResult<(StoreView, i32)> {
    let store = db::stores::get(&state.db, ctx, id).await?.ok_or(ApiError::not_found("store"))?;
    let nodes = db::stores::nodes(&state.db, ctx.org_id, &[id]).await?;
    let job = db::jobs::active_for_store(&state.db, ctx.org_id, id).await?.map(JobView::from);
    let revision = store.revision;
    Ok((view(store, nodes, job), revision))
}

fn etag(revision: i32) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{revision}\"")).expect("ascii")
}

/// What [`names::tags`] accepts, for the OpenAPI document.
fn tags_schema() -> utoipa::openapi::Array {
    let tag = utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .pattern(Some(r"^[A-Za-z0-9._:=/-]{1,64}$"));
    utoipa::openapi::ArrayBuilder::new().items(tag).max_items(Some(20)).build()
}

fn optional_tags_schema() -> utoipa::openapi::Array {
    let mut schema = tags_schema();
    schema.schema_type = utoipa::openapi::schema::SchemaType::from_iter([
        utoipa::openapi::Type::Array,
        utoipa::openapi::Type::Null,
    ]);
    schema
}

fn password() -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(32).map(char::from).collect()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoreCredentials {
    pub username: String,
    /// Returned when the store is created and by `credentials/reveal`, nowhere else.
    pub password: String,
    pub database: String,
    /// A libpq URI of the primary, without the password.
    pub uri: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoreAccepted {
    pub store: StoreView,
    pub job: JobView,
    /// Only in the response that creates the store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials: Option<StoreCredentials>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStore {
    /// 1 to 63 lower-case letters, digits and hyphens, starting with a letter and not ending
    /// with a hyphen.
    #[schema(example = "orders-db", pattern = r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub name: String,
    #[schema(example = "postgres", pattern = "^postgres$")]
    pub vendor: String,
    #[schema(example = "15")]
    pub version: String,
    #[schema(example = "small")]
    pub instance_size: String,
    /// GB.
    #[schema(example = 10)]
    pub volume_size: i64,
    /// Number of nodes: one primary and the rest streaming replicas.
    #[schema(example = 1)]
    pub nodes: i64,
    #[schema(example = "local")]
    pub cloud: String,
    #[schema(example = "local-1")]
    pub region: String,
    /// At most 20, each 1 to 64 of `A-Z a-z 0-9 - _ . : = /`.
    #[serde(default)]
    #[schema(schema_with = tags_schema)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub deletion_protection: bool,
    /// Makes the store from a backup of another store of the organization (a fork), which may
    /// have been deleted since. A full backup or a point in time needs the source's version; a
    /// logical backup loads into any version.
    #[serde(default)]
    pub restore_from: Option<RestoreFrom>,
    /// Omitted: `public`. A `private` store's nodes listen only inside its VPC, each on its own
    /// address from the VPC's block, and admit by default that VPC and the VPCs actively peered
    /// with it. Its firewall rules, when it has any, replace that default: they can narrow it
    /// (a part of a block) or list other blocks as well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<StoreNetwork>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreFrom {
    pub store_id: Uuid,
    /// This backup, to the moment it finished.
    pub backup_id: Option<Uuid>,
    /// This moment (RFC 3339): the newest full backup before it, and the archived WAL.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub point_in_time: Option<OffsetDateTime>,
}

/// The `Idempotency-Key` of a request, 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let k = v.to_str().map_err(|_| ApiError::field("Idempotency-Key", "must be visible ASCII"))?;
    if k.is_empty() || k.len() > 255 || !k.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::field("Idempotency-Key", "must be 1 to 255 visible ASCII characters"));
    }
    Ok(Some(k.to_owned()))
}

/// Creates a store: 202 with the store (`deploying`), the job that builds it, and the database
/// credentials — the password appears here and in `credentials/reveal` only. With an
/// `Idempotency-Key`, a retry with the same key and body replays this response and starts
/// nothing; the same key with another body is 422.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores", tag = "stores",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("Idempotency-Key" = Option<String>, Header, pattern = r"^[\x21-\x7e]{1,255}$", description = "Makes retries safe: 1 to 255 visible ASCII characters")),
    request_body = CreateStore,
    responses(
        (status = 202, body = StoreAccepted, headers(("Location" = String))),
        (status = 409, description = "The name is taken, or the VPC is not available or has no address left", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field outside the catalog, a VPC that is not this organization's or not in the store's cloud and region, or an Idempotency-Key reused with another body; or `quota_exceeded`: the organization's quota of stores or nodes (named, with its limit and usage)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`capacity_exhausted`: this Berth has no node port left (`Retry-After`)", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64))),
    )
)]
async fn create_store(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    headers: HeaderMap,
    AppPath(org_id): AppPath<Uuid>,
    AppJson(body): AppJson<CreateStore>,
) -> ApiResult<Response> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let key = idempotency_key(&headers)?;
    let name = names::store_name(&body.name)?;
    let tags = names::tags(&body.tags)?;
    state.plane.catalog.validate(&Choice {
        vendor: &body.vendor,
        version: &body.version,
        instance_size: &body.instance_size,
        volume_size: body.volume_size,
        nodes: body.nodes,
        cloud: &body.cloud,
        region: &body.region,
    })?;
    let fork = match &body.restore_from {
        Some(from) => Some(fork_source(&state, &ctx, from, &body.version).await?),
        None => None,
    };
    let vpc_id = body.network.as_ref().unwrap_or(&StoreNetwork::PUBLIC).requested_vpc()?;
    let request_hash = Sha256::digest(serde_json::to_vec(&body).map_err(anyhow::Error::from)?).to_vec();
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    if let Some(key) = &key {
        if let Some(stored) = db::idempotency::claim(&mut tx, &ctx, key, &request_hash, now).await? {
            return replay(&state, &ctx, key, stored, &request_hash);
        }
    }

    let wants = [(Quota::Stores, 1), (Quota::Nodes, body.nodes)];
    quota::reserve(&mut tx, &state.plane.quotas, ctx.org_id, &wants).await?;
    if let Some(vpc_id) = vpc_id {
        vpcs::vpc_for_store(&mut tx, &ctx, vpc_id, &body.cloud, &body.region).await?;
    }
    let id = Uuid::now_v7();
    let admin_password = password();
    let bound = id.as_bytes();
    db::stores::insert(
        &mut *tx,
        &ctx,
        db::stores::NewStore {
            id,
            name: &name,
            vendor: &body.vendor,
            version: &body.version,
            instance_size: &body.instance_size,
            volume_size_gb: body.volume_size as i32,
            cloud: &body.cloud,
            region: &body.region,
            node_count: body.nodes as i32,
            tags: &tags,
            deletion_protection: body.deletion_protection,
            admin_user: ADMIN_USER,
            database_name: DATABASE,
            admin_password_enc: &state.plane.master_key.encrypt(admin_password.as_bytes(), bound),
            replication_password_enc: &state.plane.master_key.encrypt(password().as_bytes(), bound),
            now,
        },
    )
    .await
    .map_err(|e| {
        on_constraint(e, |c| {
            (c == "stores_org_name_key")
                .then(|| ApiError::conflict("name_taken", format!("a store named {name} exists")))
        })
    })?;
    if let Some(vpc_id) = vpc_id {
        // No rule: a private store admits its VPC and the VPCs peered with it.
        db::vpcs::place_store(&mut *tx, &ctx, id, vpc_id).await?;
    } else {
        // Default deny, but a new store admits this host, as a rule the user sees and can remove.
        let this_host = db::firewall::NewRule {
            id: Uuid::now_v7(),
            source: "127.0.0.1/32".parse().expect("a network"),
            description: "this host (added when the store was created)",
            expires_at: None,
            now,
        };
        db::firewall::insert(&mut *tx, &ctx, id, this_host).await?;
    }
    let (next_full_at, _) = jobs::schedule::next_times(jobs::schedule::DEFAULT_FULL_CRON, None, now);
    let schedule = db::backup_schedules::Settings {
        full_cron: jobs::schedule::DEFAULT_FULL_CRON,
        logical_cron: None,
        retention_count: Some(jobs::schedule::DEFAULT_RETENTION_COUNT),
        retention_days: Some(jobs::schedule::DEFAULT_RETENTION_DAYS),
        source: "replica",
        paused: false,
        next_full_at,
        next_logical_at: None,
    };
    db::backup_schedules::insert(&mut *tx, ctx.org_id, id, &schedule, now).await?;
    let ports = jobs::allocate_ports(&mut tx, state.plane.ports.clone(), body.nodes as usize).await?;
    let mut steps = vec![];
    let mut node_ids = vec![];
    for (i, port) in ports.iter().enumerate() {
        let node = Uuid::now_v7();
        let role = if i == 0 { "primary" } else { "replica" };
        db::stores::insert_node(&mut *tx, ctx.org_id, id, node, role, i32::from(*port), now).await?;
        let first = if fork.is_some() { step::FORK_PRIMARY } else { step::CREATE_PRIMARY };
        steps.push(step::on(if i == 0 { first } else { step::CREATE_REPLICA }, node));
        node_ids.push(node);
    }
    if let Some(vpc_id) = vpc_id {
        vpcs::place_nodes(&mut tx, &ctx, vpc_id, &node_ids).await?;
    }
    steps.push(step::FINISH_AVAILABLE.into());
    let params = match (&fork, &body.restore_from) {
        (Some(backup), Some(from)) => serde_json::json!({ "restore_from": {
            "store_id": from.store_id,
            "backup_id": backup.id,
            "point_in_time": from.point_in_time.map(|t| t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()),
        }}),
        _ => serde_json::json!({}),
    };
    let job =
        enqueue(&mut tx, &state, &ctx, Enqueue::store(id, jobs::CREATE_STORE, steps).with_params(params))
            .await?;
    Event::new("store.created", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("store:{id}"))
        .detail("name", &name)
        .detail("nodes", body.nodes)
        .detail("restored_from_backup", fork.as_ref().map(|b| b.id))
        .detail("job", job.id)
        .record_in(&mut tx, now)
        .await?;

    let store = db::stores::get(&mut *tx, &ctx, id).await?.ok_or(ApiError::not_found("store"))?;
    let nodes = db::stores::nodes(&mut *tx, ctx.org_id, &[id]).await?;
    let revision = store.revision;
    let view = view(store, nodes, Some(JobView::from(job.clone())));
    let credentials = StoreCredentials {
        username: ADMIN_USER.into(),
        password: admin_password,
        database: DATABASE.into(),
        uri: view.connection.primary.as_ref().map(|p| p.uri.clone()),
    };
    let body = StoreAccepted { store: view, job: JobView::from(job), credentials: Some(credentials) };
    let json = serde_json::to_value(&body).map_err(anyhow::Error::from)?;
    if let Some(key) = &key {
        // Stored encrypted: the first response holds the database password.
        let sealed = state.plane.master_key.encrypt(json.to_string().as_bytes(), &idempotency_aad(&ctx, key));
        let sealed = serde_json::Value::String(hex::encode(sealed));
        db::idempotency::complete(&mut tx, &ctx, key, 202, &sealed).await?;
    }
    tx.commit().await?;
    state.wake.notify_waiters();
    Ok(accepted(org_id, id, revision, json))
}

/// The backup a fork starts from, checked: a store of the organization (deleted or not), a good
/// backup, and a version the backup can run on.
async fn fork_source(
    state: &AppState,
    ctx: &Ctx,
    from: &RestoreFrom,
    version: &str,
) -> ApiResult<db::backups::BackupRow> {
    let source = db::stores::get_by_id(&state.db, ctx.org_id, from.store_id).await?.ok_or_else(|| {
        ApiError::field("restore_from.store_id", "no store of this organization has that id")
    })?;
    let backup = crate::service::backups::resolve_backup(
        state,
        ctx,
        source.id,
        from.backup_id,
        from.point_in_time,
        "restore_from.",
    )
    .await?;
    let major = |v: &str| v.split('.').next().unwrap_or_default().to_owned();
    if backup.kind == "full" && major(version) != major(&source.version) {
        return Err(ApiError::field(
            "version",
            format!(
                "a full backup of PostgreSQL {} restores into that version only; a logical backup loads into any",
                source.version
            ),
        ));
    }
    Ok(backup)
}

fn idempotency_aad(ctx: &Ctx, key: &str) -> Vec<u8> {
    [ctx.org_id.as_bytes().as_slice(), ctx.user_id.as_bytes(), key.as_bytes()].concat()
}

fn accepted(org_id: Uuid, id: Uuid, revision: i32, json: serde_json::Value) -> Response {
    let mut res = (StatusCode::ACCEPTED, axum::Json(json)).into_response();
    let location = format!("/api/v1/orgs/{org_id}/stores/{id}");
    res.headers_mut().insert(header::LOCATION, HeaderValue::from_str(&location).expect("ascii"));
    res.headers_mut().insert(header::ETAG, etag(revision));
    res
}

fn replay(
    state: &AppState,
    ctx: &Ctx,
    key: &str,
    stored: db::idempotency::Stored,
    request_hash: &[u8],
) -> ApiResult<Response> {
    if stored.request_hash != request_hash {
        return Err(ApiError::field("Idempotency-Key", "was used with another request body; use a new key"));
    }
    let sealed = stored
        .response
        .as_str()
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(|| anyhow::anyhow!("stored response"))?;
    let plain = state.plane.master_key.decrypt(&sealed, &idempotency_aad(ctx, key))?;
    let json: serde_json::Value = serde_json::from_slice(&plain).map_err(anyhow::Error::from)?;
    let status = StatusCode::from_u16(stored.status as u16).unwrap_or(StatusCode::ACCEPTED);
    let mut res = (status, axum::Json(json)).into_response();
    res.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(res)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StoreQuery {
    /// Only stores in this status.
    status: Option<StoreStatus>,
    /// Only stores with this tag.
    tag: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(
        pattern = r"^-?[0-9]{1,19}_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
    )]
    cursor: Option<String>,
    /// Page size, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoreList {
    pub items: Vec<StoreView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The organization's stores, oldest first.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/stores", tag = "stores",
    security(("session" = []), ("bearer" = ["stores:read"])),
    params(("org_id" = Uuid, Path), StoreQuery),
    responses(
        (status = 200, body = StoreList),
        (status = 422, description = "Invalid filter", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn list_stores(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath(org_id): AppPath<Uuid>,
    AppQuery(q): AppQuery<StoreQuery>,
) -> ApiResult<AppJson<StoreList>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresRead)?;
    let page = PageRequest::new(q.cursor.as_deref(), q.limit, 100)?;
    let filter = db::stores::ListFilter {
        status: q.status,
        tag: q.tag.as_deref(),
        after: page.after,
        limit: page.fetch(),
    };
    let rows = db::stores::list(&state.db, &ctx, &filter).await?;
    let (rows, next_cursor) = page.finish(rows, |s| (s.created_at, s.id));
    let ids: Vec<Uuid> = rows.iter().map(|s| s.id).collect();
    let mut nodes = db::stores::nodes(&state.db, ctx.org_id, &ids).await?;
    let mut items = Vec::with_capacity(rows.len());
    for s in rows {
        let (mine, rest): (Vec<_>, Vec<_>) = nodes.into_iter().partition(|n| n.store_id == s.id);
        nodes = rest;
        let job = db::jobs::active_for_store(&state.db, ctx.org_id, s.id).await?.map(JobView::from);
        items.push(view(s, mine, job));
    }
    Ok(AppJson(StoreList { items, next_cursor }))
}

/// One store, with its nodes, endpoints and the job in progress. `ETag` is its revision.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org_id}/stores/{store_id}", tag = "stores",
    security(("session" = []), ("bearer" = ["stores:read"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    responses(
        (status = 200, body = StoreView, headers(("ETag" = String))),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn get_store(
    State(state): State<AppState>,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(Uuid, Uuid)>,
) -> ApiResult<Response> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresRead)?;
    let (view, revision) = load_view(&state, &ctx, store_id).await?;
    let mut res = axum::Json(view).into_response();
    res.headers_mut().insert(header::ETAG, etag(revision));
    Ok(res)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateStore {
    /// As in [`CreateStore`].
    #[schema(pattern = r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub name: Option<String>,
    /// As in [`CreateStore`]: the whole new set.
    #[schema(schema_with = optional_tags_schema)]
    pub tags: Option<Vec<String>>,
    pub deletion_protection: Option<bool>,
    /// A new size is applied by a job that restarts the nodes, replicas first.
    pub instance_size: Option<String>,
    /// GB.
    pub volume_size: Option<i64>,
}

/// Changes a store. With `If-Match`, only if the store is still at that revision (412 if not).
/// Name, tags and deletion protection change at once; a size change starts a job (202). A new
/// instance size must hold the store's parameter group.
#[utoipa::path(
    patch, path = "/api/v1/orgs/{org_id}/stores/{store_id}", tag = "stores",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), ("If-Match" = Option<String>, Header, description = "The ETag of the store as read")),
    request_body = UpdateStore,
    responses(
        (status = 200, description = "Changed", body = StoreView, headers(("ETag" = String))),
        (status = 202, description = "A size change is under way", body = StoreAccepted, headers(("ETag" = String))),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A job is in progress, or the name is taken", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "The store changed since it was read", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field, or an instance size that cannot hold the store's parameter group (the parameter and bound are named)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn update_store(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    headers: HeaderMap,
    AppPath((org_id, store_id)): AppPath<(Uuid, Uuid)>,
    AppJson(body): AppJson<UpdateStore>,
) -> ApiResult<Response> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let name = body.name.as_deref().map(names::store_name).transpose()?;
    let tags = body.tags.as_deref().map(names::tags).transpose()?;
    let mut tx = state.db.begin().await?;
    let store =
        db::stores::get_for_update(&mut tx, &ctx, store_id).await?.ok_or(ApiError::not_found("store"))?;
    if let Some(want) = headers.get(header::IF_MATCH) {
        if want != etag(store.revision) && want != "*" {
            return Err(ApiError::Domain(crate::domain::Error::PreconditionFailed));
        }
    }
    let size = body.instance_size.as_deref().filter(|s| *s != store.instance_size);
    let volume = body.volume_size.filter(|v| *v != i64::from(store.volume_size_gb));
    if volume.is_some_and(|v| v < i64::from(store.volume_size_gb)) {
        return Err(ApiError::field(
            "volume_size",
            format!("a volume grows and never shrinks: it is {} GB", store.volume_size_gb),
        ));
    }
    if size.is_some() || volume.is_some() {
        state.plane.catalog.validate(&Choice {
            vendor: &store.vendor,
            version: &store.version,
            instance_size: size.unwrap_or(&store.instance_size),
            volume_size: volume.unwrap_or(i64::from(store.volume_size_gb)),
            nodes: i64::from(store.node_count),
            cloud: &store.cloud,
            region: &store.region,
        })?;
    }
    if let Some(size) = size.and_then(|s| state.plane.catalog.instance_size(s)) {
        if let Some(group) = db::parameter_groups::of_store(&mut *tx, ctx.org_id, store_id).await? {
            sizing::check_resize(size, &group)?;
        }
    }
    let resizing = size.is_some() || volume.is_some();
    if resizing {
        store.status.check(StoreOperation::Resize)?;
    }
    let now = state.clock.now();
    let patch = db::stores::Patch {
        name: name.as_deref(),
        tags: tags.as_deref(),
        deletion_protection: body.deletion_protection,
        instance_size: size,
        volume_size_gb: volume.map(|v| v as i32),
        node_count: None,
        status: resizing.then_some(StoreStatus::Modifying),
    };
    let revision = db::stores::update(&mut *tx, &ctx, store_id, store.revision, patch, now)
        .await
        .map_err(|e| {
            on_constraint(e, |c| {
                (c == "stores_org_name_key")
                    .then(|| ApiError::conflict("name_taken", "a store of that name exists"))
            })
        })?
        .ok_or(ApiError::Domain(crate::domain::Error::PreconditionFailed))?;
    let mut job = None;
    if resizing {
        let mut steps: Vec<String> = vec![];
        if size.is_some() {
            let mut nodes = db::stores::nodes(&mut *tx, ctx.org_id, &[store_id]).await?;
            // Replicas first, so the primary restarts last and once.
            nodes.sort_by_key(|n| n.role == "primary");
            // A restart also brings each volume to its new size.
            steps.extend(nodes.iter().map(|n| step::on(step::RECONFIGURE_NODE, n.id)));
        } else {
            let nodes = db::stores::nodes(&mut *tx, ctx.org_id, &[store_id]).await?;
            steps.extend(nodes.iter().map(|n| step::on(step::GROW_VOLUME, n.id)));
        }
        steps.push(step::FINISH_AVAILABLE.into());
        job =
            Some(enqueue(&mut tx, &state, &ctx, Enqueue::store(store_id, jobs::RESIZE_STORE, steps)).await?);
    }
    Event::new("store.updated", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("store:{store_id}"))
        .detail("name", &name)
        .detail("tags", &tags)
        .detail("deletion_protection", body.deletion_protection)
        .detail("instance_size", size)
        .detail("volume_size", volume)
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    let (view, _) = load_view(&state, &ctx, store_id).await?;
    let mut res = match job {
        Some(job) => {
            state.wake.notify_waiters();
            (
                StatusCode::ACCEPTED,
                axum::Json(StoreAccepted { store: view, job: job.into(), credentials: None }),
            )
                .into_response()
        }
        None => axum::Json(view).into_response(),
    };
    res.headers_mut().insert(header::ETAG, etag(revision));
    Ok(res)
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// Also delete the store's backups and archived WAL. By default they are kept until their
    /// retention runs out, so that the store can be made again from them (`restore_from`).
    #[serde(default)]
    delete_backups: bool,
}

/// Starts a store's deletion: its servers are stopped and their data removed; its backups are
/// kept unless `delete_backups=true`. 409 while deletion protection is on.
#[utoipa::path(
    delete, path = "/api/v1/orgs/{org_id}/stores/{store_id}", tag = "stores",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), DeleteQuery),
    responses(
        (status = 202, body = JobView),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Deletion protection is on, a job is in progress, or the store is being deleted (`store_busy`)", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn delete_store(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(Uuid, Uuid)>,
    AppQuery(q): AppQuery<DeleteQuery>,
) -> ApiResult<(StatusCode, AppJson<JobView>)> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    if q.delete_backups {
        ctx.require(Scope::BackupsWrite)?;
    }
    let mut tx = state.db.begin().await?;
    let store =
        db::stores::get_for_update(&mut tx, &ctx, store_id).await?.ok_or(ApiError::not_found("store"))?;
    if store.deletion_protection {
        return Err(ApiError::conflict("deletion_protected", "deletion protection is on; turn it off first"));
    }
    store.status.check(StoreOperation::Delete)?;
    let mut nodes = db::stores::nodes(&mut *tx, ctx.org_id, &[store_id]).await?;
    nodes.sort_by_key(|n| n.role == "primary");
    let mut steps: Vec<String> = nodes.iter().map(|n| step::on(step::REMOVE_NODE, n.id)).collect();
    if q.delete_backups {
        steps.push(step::DELETE_BACKUPS.into());
    }
    steps.push(step::FINISH_DELETED.into());
    let job = enqueue(&mut tx, &state, &ctx, Enqueue::store(store_id, jobs::DELETE_STORE, steps)).await?;
    db::stores::set_status(&mut *tx, ctx.org_id, store_id, StoreStatus::Deleting, state.clock.now()).await?;
    Event::new("store.deleted", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("store:{store_id}"))
        .detail("job", job.id)
        .detail("delete_backups", q.delete_backups)
        .record_in(&mut tx, state.clock.now())
        .await?;
    tx.commit().await?;
    state.wake.notify_waiters();
    Ok((StatusCode::ACCEPTED, AppJson(job.into())))
}

/// Locks a store that can take a node operation, or says why not.
async fn store_for_node_op(
    tx: &mut Transaction<'_, Postgres>,
    ctx: &Ctx,
    store_id: Uuid,
) -> ApiResult<StoreRow> {
    let store = db::stores::get_for_update(tx, ctx, store_id).await?.ok_or(ApiError::not_found("store"))?;
    store.status.check(StoreOperation::ChangeNodes)?;
    Ok(store)
}

/// Adds a streaming replica, within the organization's quota of nodes.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/nodes", tag = "stores",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    responses(
        (status = 202, body = StoreAccepted),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A job is in progress, the store has the most nodes allowed, or its VPC has no address left", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`quota_exceeded`: the organization's quota of nodes (with its limit and usage)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`capacity_exhausted`: this Berth has no node port left (`Retry-After`)", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64))),
    )
)]
async fn add_node(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(Uuid, Uuid)>,
) -> ApiResult<Response> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let mut tx = state.db.begin().await?;
    let store = store_for_node_op(&mut tx, &ctx, store_id).await?;
    let nodes = db::stores::nodes(&mut *tx, ctx.org_id, &[store_id]).await?;
    let (_, max) = state.plane.catalog.node_range();
    if nodes.len() as u32 >= max {
        return Err(ApiError::conflict("too_many_nodes", format!("a store has at most {max} nodes")));
    }
    // Checked before taking a port, for a clear answer; the unique index decides races.
    if let Some(active) = db::jobs::active_for_store(&mut *tx, ctx.org_id, store_id).await? {
        return Err(busy(Some(&active)).into());
    }
    quota::reserve(&mut tx, &state.plane.quotas, ctx.org_id, &[(Quota::Nodes, 1)]).await?;
    let port = jobs::allocate_ports(&mut tx, state.plane.ports.clone(), 1).await?[0];
    let node = Uuid::now_v7();
    let now = state.clock.now();
    db::stores::insert_node(&mut *tx, ctx.org_id, store_id, node, "replica", i32::from(port), now).await?;
    if let Some(vpc_id) = store.vpc_id {
        vpcs::place_nodes(&mut tx, &ctx, vpc_id, &[node]).await?;
    }
    let steps = vec![step::on(step::CREATE_REPLICA, node), step::FINISH_AVAILABLE.into()];
    let job = enqueue(&mut tx, &state, &ctx, Enqueue::store(store_id, jobs::ADD_NODE, steps)).await?;
    let change = NodeChange { action: "store.node_added", node, node_count: nodes.len() as i32 + 1 };
    finish_node_change(&state, &meta, &user, &ctx, tx, &store, job, change).await
}

/// Removes a node. The primary cannot be removed while replicas exist (remove them first, or
/// delete the store).
#[utoipa::path(
    delete, path = "/api/v1/orgs/{org_id}/stores/{store_id}/nodes/{node_id}", tag = "stores",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), ("node_id" = Uuid, Path)),
    responses(
        (status = 202, body = StoreAccepted),
        (status = 404, description = "No such store or node for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The primary, or a job is in progress", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn remove_node(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id, node_id)): AppPath<(Uuid, Uuid, Uuid)>,
) -> ApiResult<Response> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let mut tx = state.db.begin().await?;
    let store = store_for_node_op(&mut tx, &ctx, store_id).await?;
    let nodes = db::stores::nodes(&mut *tx, ctx.org_id, &[store_id]).await?;
    let node = nodes.iter().find(|n| n.id == node_id).ok_or(ApiError::not_found("node"))?;
    if node.role == "primary" {
        let detail = if nodes.len() > 1 {
            "the primary cannot be removed while the store has replicas; remove the replicas first"
        } else {
            "the primary is the store's last node; delete the store instead"
        };
        return Err(ApiError::conflict("primary_node", detail));
    }
    let steps = vec![step::on(step::REMOVE_NODE, node_id), step::FINISH_AVAILABLE.into()];
    let job = enqueue(&mut tx, &state, &ctx, Enqueue::store(store_id, jobs::REMOVE_NODE, steps)).await?;
    let change =
        NodeChange { action: "store.node_removed", node: node_id, node_count: nodes.len() as i32 - 1 };
    finish_node_change(&state, &meta, &user, &ctx, tx, &store, job, change).await
}

struct NodeChange {
    action: &'static str,
    node: Uuid,
    node_count: i32,
}

/// The common end of adding or removing a node: the store is `modifying` with its new node
/// count, the change is audited, and the answer is 202 with the store and the job.
#[allow(clippy::too_many_arguments)]
async fn finish_node_change(
    state: &AppState,
    meta: &RequestMeta,
    user: &ActiveUser,
    ctx: &Ctx,
    mut tx: Transaction<'_, Postgres>,
    store: &StoreRow,
    job: db::jobs::JobRow,
    change: NodeChange,
) -> ApiResult<Response> {
    let now = state.clock.now();
    let patch = db::stores::Patch {
        name: None,
        tags: None,
        deletion_protection: None,
        instance_size: None,
        volume_size_gb: None,
        node_count: Some(change.node_count),
        status: Some(StoreStatus::Modifying),
    };
    db::stores::update(&mut *tx, ctx, store.id, store.revision, patch, now).await?;
    Event::new(change.action, meta)
        .in_ctx(ctx, &user.principal.email)
        .target(format!("store:{}", store.id))
        .detail("node", change.node)
        .detail("job", job.id)
        .record_in(&mut tx, now)
        .await?;
    tx.commit().await?;
    state.wake.notify_waiters();
    let (view, revision) = load_view(state, ctx, store.id).await?;
    let json = serde_json::to_value(StoreAccepted { store: view, job: job.into(), credentials: None })
        .map_err(anyhow::Error::from)?;
    Ok(accepted(ctx.org_id, store.id, revision, json))
}

/// Restarts one node.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/nodes/{node_id}/restart", tag = "stores",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path), ("node_id" = Uuid, Path)),
    responses(
        (status = 202, body = JobView),
        (status = 404, description = "No such store or node for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A job is in progress", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn restart_node(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id, node_id)): AppPath<(Uuid, Uuid, Uuid)>,
) -> ApiResult<(StatusCode, AppJson<JobView>)> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let mut tx = state.db.begin().await?;
    store_for_node_op(&mut tx, &ctx, store_id).await?;
    let nodes = db::stores::nodes(&mut *tx, ctx.org_id, &[store_id]).await?;
    nodes.iter().find(|n| n.id == node_id).ok_or(ApiError::not_found("node"))?;
    let steps = vec![step::on(step::RESTART_NODE, node_id), step::FINISH_AVAILABLE.into()];
    let job = enqueue(&mut tx, &state, &ctx, Enqueue::store(store_id, jobs::RESTART_NODE, steps)).await?;
    Event::new("store.node_restarted", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("store:{store_id}"))
        .detail("node", node_id)
        .record_in(&mut tx, state.clock.now())
        .await?;
    tx.commit().await?;
    state.wake.notify_waiters();
    Ok((StatusCode::ACCEPTED, AppJson(job.into())))
}

/// Rebuilds the nodes that are not running: replicas are copied afresh from the primary; a
/// primary is started again.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/repair", tag = "stores",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    responses(
        (status = 202, body = JobView),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A job is in progress", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn repair_store(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(Uuid, Uuid)>,
) -> ApiResult<(StatusCode, AppJson<JobView>)> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let mut tx = state.db.begin().await?;
    let store =
        db::stores::get_for_update(&mut tx, &ctx, store_id).await?.ok_or(ApiError::not_found("store"))?;
    store.status.check(StoreOperation::Repair)?;
    let mut nodes = db::stores::nodes(&mut *tx, ctx.org_id, &[store_id]).await?;
    // The primary first: replicas are rebuilt from it.
    nodes.sort_by_key(|n| n.role != "primary");
    let mut steps: Vec<String> = nodes
        .iter()
        .filter(|n| n.state != NodeState::Running)
        .map(|n| step::on(step::REBUILD_NODE, n.id))
        .collect();
    steps.push(step::FINISH_AVAILABLE.into());
    let job = enqueue(&mut tx, &state, &ctx, Enqueue::store(store_id, jobs::REPAIR_STORE, steps)).await?;
    Event::new("store.repaired", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("store:{store_id}"))
        .detail("job", job.id)
        .record_in(&mut tx, state.clock.now())
        .await?;
    tx.commit().await?;
    state.wake.notify_waiters();
    Ok((StatusCode::ACCEPTED, AppJson(job.into())))
}

/// The store's database credentials, password included. Audited.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org_id}/stores/{store_id}/credentials/reveal", tag = "stores",
    security(("session" = []), ("bearer" = ["stores:write"])),
    params(("org_id" = Uuid, Path), ("store_id" = Uuid, Path)),
    responses(
        (status = 200, body = StoreCredentials),
        (status = 404, description = "No such store for the caller", body = Problem, content_type = "application/problem+json"),
    )
)]
async fn reveal_credentials(
    State(state): State<AppState>,
    meta: RequestMeta,
    user: ActiveUser,
    AppPath((org_id, store_id)): AppPath<(Uuid, Uuid)>,
) -> ApiResult<AppJson<StoreCredentials>> {
    let ctx = user.in_org(org_id)?;
    ctx.require(Scope::StoresWrite)?;
    let (view, _) = load_view(&state, &ctx, store_id).await?;
    let secrets =
        db::stores::secrets(&state.db, ctx.org_id, store_id).await?.ok_or(ApiError::not_found("store"))?;
    let password = state.plane.master_key.decrypt(&secrets.admin_password_enc, store_id.as_bytes())?;
    let password = secrecy::SecretString::from(String::from_utf8(password).map_err(anyhow::Error::from)?);
    Event::new("store.credentials_revealed", &meta)
        .in_ctx(&ctx, &user.principal.email)
        .target(format!("store:{store_id}"))
        .record(&state.db, state.clock.now())
        .await?;
    Ok(AppJson(StoreCredentials {
        username: view.connection.username,
        password: password.expose_secret().to_owned(),
        database: view.connection.database,
        uri: view.connection.primary.map(|p| p.uri),
    }))
}
